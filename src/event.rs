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
}
