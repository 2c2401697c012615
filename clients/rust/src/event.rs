//! An event as a service tracks it.

use serde::Serialize;
use serde_json::{Map, Value};

/// One event for Sluice's `eventIngestion.trackBatch`, built with chained setters:
///
/// ```
/// use sluice_tracker::Event;
/// let event = Event::new("story_generated").user("user-123").prop("model", "x");
/// assert_eq!(event.event_type(), "story_generated");
/// ```
///
/// Each event gets its `props.occurred_at` when it is made: the time it happened, however
/// long it waits, and what makes a resend of it (a batch sent again after a timeout) the
/// same event to Sluice's fingerprint, stored once. Two events alike in type, user,
/// session, entity and props within one second are one event to Sluice.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    event_type: String,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_type: Option<String>,
    props: Map<String, Value>,
}

impl Event {
    /// An event of `event_type` (1 to 100 characters), from source `api`, happening now.
    pub fn new(event_type: impl Into<String>) -> Self {
        let mut props = Map::new();
        props.insert(
            "occurred_at".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        Self {
            event_type: event_type.into(),
            source: "api",
            user_id: None,
            session_id: None,
            entity_id: None,
            entity_type: None,
            props,
        }
    }

    /// The user the event is about. Sluice takes it only from a `SERVICE` token or the admin
    /// token (Sluice's docs/identity-and-limits.md); from any other caller the event is refused.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// The analytics session the event belongs to.
    pub fn session(mut self, session_id: uuid::Uuid) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// The entity the event is about: a CUID and its type (`asset`, `project`, …).
    pub fn entity(mut self, id: impl Into<String>, entity_type: impl Into<String>) -> Self {
        self.entity_id = Some(id.into());
        self.entity_type = Some(entity_type.into());
        self
    }

    /// The source: `api` (the default), `system`, `webhook`, `web` or `mobile`.
    pub fn source(mut self, source: &'static str) -> Self {
        self.source = source;
        self
    }

    /// One property; a value that cannot be JSON is left out.
    pub fn prop(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.props.insert(key.into(), value);
        }
        self
    }

    pub fn event_type(&self) -> &str {
        &self.event_type
    }
}
