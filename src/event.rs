//! The domain model: an accepted analytics event as it is buffered, written and read back.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::api::types::Attribution;

/// An event that passed validation and was given its id.
///
/// Identity fields are stamped by the server from the caller's credentials; clients never
/// send them. Text-valued enums (`source`, `entity_type`) are stored by their wire names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub id: Uuid,
    pub event_type: String,
    pub source: String,
    pub actor_id: Option<String>,
    pub actor_type: Option<String>,
    pub user_id: Option<String>,
    pub creator_id: Option<String>,
    pub brand_id: Option<String>,
    pub entity_id: Option<String>,
    pub entity_type: Option<String>,
    pub session_id: Option<Uuid>,
    pub props: Option<Value>,
    pub attribution: Attribution,
    pub idempotency_key: Option<Uuid>,
    pub dedup_fingerprint: Option<String>,
    /// When the event happened: `props.occurred_at` if the client sent it, else `received_at`.
    pub occurred_at: DateTime<Utc>,
    /// When Sluice accepted the event.
    pub received_at: DateTime<Utc>,
    /// What the server derived about the event's client.
    pub enrichment: Enrichment,
}

/// Facts about the client derived at ingestion: device from the user agent, place from
/// trusted CDN headers or a GeoIP database, the referrer's host, and the client address as
/// the operator chose to keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Enrichment {
    pub browser_name: Option<String>,
    pub browser_version: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    /// desktop, mobile, tablet, tv, console, wearable, bot or other.
    pub device_type: Option<String>,
    pub is_bot: bool,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    /// Truncated (/24, /48) by default; full or absent when so configured.
    pub ip_address: Option<String>,
    pub referrer_host: Option<String>,
}
