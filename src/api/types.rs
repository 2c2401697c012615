//! The wire types of the `eventIngestion` procedures (camelCase JSON), with their derive rules.
//!
//! Inputs are validated in two steps: these derive rules (shape and formats), then the
//! configurable business rules in [`crate::pipeline::validation`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use validator::{Validate, ValidationError};

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

/// Marketing attribution sent with an event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, Validate, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attribution {
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_source: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_medium: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_campaign: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_term: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_content: Option<String>,
    /// An absolute URL, or "".
    #[validate(custom(function = "url_or_empty"))]
    pub referrer: Option<String>,
    /// An absolute URL, or "".
    #[validate(custom(function = "url_or_empty"))]
    pub landing_page: Option<String>,
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

/// The input of `eventIngestion.trackBatch`.
//
// Items stay raw JSON here so that each one is validated on its own and a bad item cannot
// fail the others; the published schema describes them as TrackEventInput.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackBatchInput {
    #[schemars(with = "Vec<TrackEventInput>", length(min = 1, max = 50))]
    pub events: Vec<Value>,
}

/// Whether one batch item was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SettledStatus {
    Fulfilled,
    Rejected,
}

/// The error of a rejected batch item: the same shape as a procedure error.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ItemError {
    pub code: i32,
    pub message: String,
    pub data: Value,
}

/// The outcome of one batch item, in input order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct BatchItemResult {
    pub index: usize,
    pub status: SettledStatus,
    pub data: Option<TrackEventOutput>,
    pub error: Option<ItemError>,
}

/// The output of `eventIngestion.trackBatch`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct TrackBatchOutput {
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub results: Vec<BatchItemResult>,
}

/// The input of `eventIngestion.setConsent`: the caller's session (and, when signed in, the
/// user) opts in or out of analytics.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Validate, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetConsentInput {
    #[validate(custom(function = "uuid"))]
    #[schemars(extend("format" = "uuid"))]
    pub session_id: Option<String>,
    /// true: analytics allowed; false: opted out, later events are not stored.
    pub granted: bool,
}

/// The output of `eventIngestion.setConsent`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SetConsentOutput {
    pub granted: bool,
    /// Whom the decision was recorded for.
    pub subjects: Vec<crate::storage::ConsentSubject>,
}

/// The output of `eventIngestion.diagnostics`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DiagnosticsReport {
    pub database: crate::diagnostics::DatabaseDiagnosis,
    /// Buffer, counters, rates, health and pool, as getStats reports them.
    pub pipeline: crate::pipeline::stats::StatsReport,
}

/// The output of `eventIngestion.forceFlush`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ForceFlushOutput {
    /// True when the buffer was emptied into the database.
    pub flushed: bool,
    pub message: String,
    /// Events written by this flush.
    pub persisted: u64,
}

/// Accepts a CUID v1 (`c` + at least 8 more lowercase alphanumerics) or a cuid2 (a lowercase
/// letter then lowercase alphanumerics, 2 to 32 characters in all).
fn cuid(value: &str) -> Result<(), ValidationError> {
    let well_formed = (2..=32).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        Err(ValidationError::new("cuid").with_message("Invalid cuid".into()))
    }
}

fn uuid(value: &str) -> Result<(), ValidationError> {
    uuid::Uuid::try_parse(value)
        .map(drop)
        .map_err(|_| ValidationError::new("uuid").with_message("Invalid uuid".into()))
}

fn url_or_empty(value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || is_absolute_url(value) {
        Ok(())
    } else {
        Err(ValidationError::new("url").with_message("Invalid url".into()))
    }
}

fn is_absolute_url(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !rest.starts_with('/')
        && !value.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuid_accepts_v1_and_cuid2_and_rejects_the_rest() {
        assert!(cuid("cjld2cjxh0000qzrmn831i7rn").is_ok());
        assert!(cuid("tz4a98xxat96iws9zmbrgj3a").is_ok());
        for bad in [
            "",
            "a",
            "Cjld2cjxh0000qzrmn831i7rn",
            "1abc",
            "abc-def",
            "c😀abc",
        ] {
            assert!(cuid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_absolute_or_empty() {
        assert!(url_or_empty("").is_ok());
        assert!(url_or_empty("https://example.com/a?b=c").is_ok());
        for bad in [
            "example.com",
            "https://",
            "https:///x",
            "not a url",
            "http://a b",
        ] {
            assert!(url_or_empty(bad).is_err(), "{bad}");
        }
    }
}
