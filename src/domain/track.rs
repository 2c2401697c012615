//! An event as a client submits it (`track`, one item of `trackBatch`), what it is about,
//! and what became of it. These are the procedures' wire shapes and the pipeline's input and
//! answer alike, so they live below both.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use validator::Validate;

use super::Attribution;
use super::rules::{cuid, uuid};

/// Where an event was produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    #[default]
    Web,
    Api,
    Mobile,
    System,
    Webhook,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Api => "api",
            Self::Mobile => "mobile",
            Self::System => "system",
            Self::Webhook => "webhook",
        }
    }
}

/// The kind of domain object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntityType {
    Project,
    Asset,
    License,
    Creator,
    Brand,
    User,
    Royalty,
    Payout,
    Post,
    Category,
}

impl EntityType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Asset => "asset",
            Self::License => "license",
            Self::Creator => "creator",
            Self::Brand => "brand",
            Self::User => "user",
            Self::Royalty => "royalty",
            Self::Payout => "payout",
            Self::Post => "post",
            Self::Category => "category",
        }
    }
}

/// The input of `eventIngestion.track`, one item of `eventIngestion.trackBatch`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Validate, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackEventInput {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub event_type: String,
    #[serde(default)]
    pub source: EventSource,
    #[validate(custom(function = "cuid"))]
    #[schemars(extend("format" = "cuid"))]
    pub entity_id: Option<String>,
    pub entity_type: Option<EntityType>,
    #[validate(custom(function = "uuid"))]
    #[schemars(extend("format" = "uuid"))]
    pub session_id: Option<String>,
    pub props: Option<Map<String, Value>>,
    #[validate(nested)]
    pub attribution: Option<Attribution>,
    #[validate(custom(function = "uuid"))]
    #[schemars(extend("format" = "uuid"))]
    pub idempotency_key: Option<String>,
    /// The user a trusted server tracks for: only from a SERVICE JWT or the admin token;
    /// from anyone else it is an unknown field.
    #[validate(length(min = 1, max = 255, message = "must be 1 to 255 characters"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// What happened to one tracked event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TrackStatus {
    /// New event, buffered for writing (or written, in durable mode).
    Accepted,
    /// The idempotency key was seen before; the original event id is returned.
    Replayed,
    /// The dedup fingerprint matched a recent event; nothing new was stored.
    Duplicate,
    /// The session or user opted out (or bots are dropped); nothing was stored.
    Suppressed,
}

/// The output of `eventIngestion.track`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackEventOutput {
    pub event_id: Option<uuid::Uuid>,
    pub tracked: bool,
    pub status: TrackStatus,
}
