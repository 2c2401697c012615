//! Events for tests (the crate's unit tests and the integration suites).

use chrono::Utc;

use super::{Attribution, EventRecord};

/// A minimal accepted event of `event_type`, for tests to adjust.
pub fn event(event_type: &str) -> EventRecord {
    EventRecord {
        id: uuid::Uuid::now_v7(),
        event_type: event_type.to_owned(),
        source: "web".into(),
        actor_id: None,
        actor_type: Some("anonymous".into()),
        user_id: None,
        creator_id: None,
        brand_id: None,
        entity_id: None,
        entity_type: None,
        session_id: None,
        props: None,
        attribution: Attribution::default(),
        idempotency_key: None,
        dedup_fingerprint: None,
        occurred_at: Utc::now(),
        received_at: Utc::now(),
        enrichment: Default::default(),
    }
}
