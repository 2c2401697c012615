//! What a live viewer is sent: [`LiveEvent`]s made from accepted events by the
//! [`LiveEncoder`], [`LiveSnapshot`]s of the window, and the [`LiveMessage`] envelope every
//! transport carries them in.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::EventRecord;

/// One event as a live viewer sees it: no IP, no user-agent string, no user id, no props but
/// the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub source: String,
    pub path: Option<String>,
    pub referrer_host: Option<String>,
    pub utm_source: Option<String>,
    pub device_type: Option<String>,
    pub browser_name: Option<String>,
    pub country: Option<String>,
    /// A pseudonymous, stable hash of the user id (signed in) or else the session id; none
    /// for an event with neither, which counts as no visitor.
    pub visitor_id: Option<String>,
    /// RFC 3339, UTC.
    #[schemars(with = "String")]
    pub occurred_at: DateTime<Utc>,
}

/// A page and how many current visitors are on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivePage {
    pub path: String,
    pub visitors: u64,
}

/// What the site looks like now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveSnapshot {
    /// Distinct visitors seen in the last `windowSeconds`.
    pub current_visitors: u64,
    /// The latest events, newest first (at most 20).
    pub recent_events: Vec<LiveEvent>,
    /// Each current visitor counted once, on its latest page; most visitors first, then by
    /// path; the 100 busiest pages.
    pub active_pages: Vec<ActivePage>,
    pub window_seconds: i64,
    /// RFC 3339, UTC.
    #[schemars(with = "String")]
    pub at: DateTime<Utc>,
}

/// Turns events into [`LiveEvent`]s: the visitor hash is keyed, so that the ids of a
/// deployment cannot be matched to user or session ids without its key, and stable, so that
/// every node of the deployment (given the same key) names a visitor alike.
pub struct LiveEncoder {
    key: Vec<u8>,
}

impl LiveEncoder {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    pub fn encode(&self, event: &EventRecord) -> LiveEvent {
        let visitor = match (&event.user_id, event.session_id) {
            (Some(user), _) => Some(self.visitor_id("user", user)),
            (None, Some(session)) => Some(self.visitor_id("session", &session.to_string())),
            (None, None) => None,
        };
        LiveEvent {
            event_id: event.id,
            event_type: event.event_type.clone(),
            source: event.source.clone(),
            path: event.page_path(),
            referrer_host: event.enrichment.referrer_host.clone(),
            utm_source: event.attribution.utm_source.clone(),
            device_type: event.enrichment.device_type.clone(),
            browser_name: event.enrichment.browser_name.clone(),
            country: event.enrichment.country.clone(),
            visitor_id: visitor,
            occurred_at: event.occurred_at,
        }
    }

    fn visitor_id(&self, kind: &str, id: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(&self.key);
        hash.update(kind.as_bytes());
        hash.update([0]);
        hash.update(id.as_bytes());
        let digest = hash.finalize();
        digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// One item of a live stream, the same on every transport: `{"type": …, "data": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The site when the viewer connected (SSE `/api/live` only).
    Connected(LiveSnapshot),
    /// An event accepted just now.
    NewEvent(LiveEvent),
    /// The site now, every five seconds.
    Stats(LiveSnapshot),
}

impl LiveMessage {
    /// The message as one line of JSON, as every transport sends it.
    pub fn to_json(&self) -> String {
        // Strings, numbers, a uuid and times: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned())
    }
}
