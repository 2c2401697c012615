//! The live hub: every accepted event, at acceptance, for the live views (DESIGN.md "Live
//! analytics").
//!
//! The hub keeps what a viewer needs when it connects — the visitors of the last five
//! minutes with their latest page, and a ring of the most recent events for `Last-Event-ID`
//! replay — and broadcasts each new event to the connected viewers. Nothing here waits on a
//! viewer: publishing is a short lock and a `broadcast` send, and a viewer that falls more
//! than [`VIEWER_QUEUE`] events behind is told it lagged and dropped by its transport.
//!
//! Memory is bounded whatever the traffic: at most [`RECENT_EVENTS`] events in the ring
//! and [`MAX_VISITORS`] visitors in the window. Past that many distinct visitors within five
//! minutes, new ones are not tracked until older ones expire (counted in
//! [`LiveHub::untracked_visitors`]), so `currentVisitors` saturates at the bound rather than
//! growing the process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::EventRecord;
use crate::url_parts::path_of;

/// How far back "current" visitors reach.
pub const WINDOW_SECONDS: i64 = 300;
/// Events kept for replay and for the snapshot's recent list.
pub const RECENT_EVENTS: usize = 1_000;
/// Events a snapshot lists.
pub const SNAPSHOT_EVENTS: usize = 20;
/// Most visitors tracked in the window.
pub const MAX_VISITORS: usize = 100_000;
/// Events a viewer may fall behind before it is dropped.
pub const VIEWER_QUEUE: usize = 1_024;

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
    /// Each current visitor counted once, on its latest page; most visitors first.
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
            path: page_path(event),
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

/// `props.path`, else `props.page`, else the landing page's path.
fn page_path(event: &EventRecord) -> Option<String> {
    #[derive(Deserialize)]
    struct PageProps {
        path: Option<String>,
        page: Option<String>,
    }
    let from_props = event
        .props
        .as_ref()
        .and_then(|props| serde_json::from_str::<PageProps>(props.as_str()).ok())
        .and_then(|props| props.path.or(props.page));
    from_props.or_else(|| event.attribution.landing_page.as_deref().map(path_of))
}

struct Seen {
    at: DateTime<Utc>,
    path: Option<String>,
}

#[derive(Default)]
struct Window {
    recent: VecDeque<LiveEvent>,
    visitors: HashMap<String, Seen>,
}

impl Window {
    fn expire(&mut self, now: DateTime<Utc>) {
        let cutoff = now - Duration::seconds(WINDOW_SECONDS);
        self.visitors.retain(|_, seen| seen.at > cutoff);
    }
}

/// The hub every node's accepted events go through.
pub struct LiveHub {
    window: Mutex<Window>,
    sender: broadcast::Sender<LiveEvent>,
    untracked_visitors: AtomicU64,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveHub {
    pub fn new() -> Self {
        Self {
            window: Mutex::new(Window::default()),
            sender: broadcast::channel(VIEWER_QUEUE).0,
            untracked_visitors: AtomicU64::new(0),
        }
    }

    /// Records `event` (seen at `now`) and sends it to every viewer; never waits.
    pub fn publish(&self, event: LiveEvent, now: DateTime<Utc>) {
        {
            let mut window = self.lock();
            if let Some(visitor) = &event.visitor_id {
                let seen = Seen {
                    at: now,
                    path: event.path.clone(),
                };
                if let Some(known) = window.visitors.get_mut(visitor) {
                    *known = seen;
                } else {
                    if window.visitors.len() >= MAX_VISITORS {
                        window.expire(now);
                    }
                    if window.visitors.len() < MAX_VISITORS {
                        window.visitors.insert(visitor.clone(), seen);
                    } else {
                        self.untracked_visitors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if window.recent.len() == RECENT_EVENTS {
                window.recent.pop_front();
            }
            window.recent.push_back(event.clone());
        }
        // No receiver is not an error: nobody is watching.
        let _ = self.sender.send(event);
    }

    /// A viewer's stream of new events; subscribe before taking the snapshot or replay, so
    /// that nothing falls between them (the transport skips ids it already sent).
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    /// The site now.
    pub fn snapshot(&self, now: DateTime<Utc>) -> LiveSnapshot {
        let mut window = self.lock();
        window.expire(now);
        let mut pages: HashMap<&str, u64> = HashMap::new();
        for seen in window.visitors.values() {
            if let Some(path) = &seen.path {
                *pages.entry(path.as_str()).or_default() += 1;
            }
        }
        let mut active_pages: Vec<ActivePage> = pages
            .into_iter()
            .map(|(path, visitors)| ActivePage {
                path: path.to_owned(),
                visitors,
            })
            .collect();
        active_pages.sort_by(|a, b| b.visitors.cmp(&a.visitors).then(a.path.cmp(&b.path)));
        LiveSnapshot {
            current_visitors: window.visitors.len() as u64,
            recent_events: window
                .recent
                .iter()
                .rev()
                .take(SNAPSHOT_EVENTS)
                .cloned()
                .collect(),
            active_pages,
            window_seconds: WINDOW_SECONDS,
            at: now,
        }
    }

    /// The events after `last_id`, oldest first; `None` when the hub no longer holds it (the
    /// viewer then starts from a snapshot).
    pub fn replay_after(&self, last_id: Uuid) -> Option<Vec<LiveEvent>> {
        let window = self.lock();
        let at = window
            .recent
            .iter()
            .position(|event| event.event_id == last_id)?;
        Some(window.recent.iter().skip(at + 1).cloned().collect())
    }

    /// Visitors not tracked because the window was full.
    pub fn untracked_visitors(&self) -> u64 {
        self.untracked_visitors.load(Ordering::Relaxed)
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.sender.receiver_count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Props;
    use crate::domain::test_support::event;
    use chrono::TimeZone;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
            .single()
            .expect("time")
            + Duration::seconds(second)
    }

    fn view(encoder: &LiveEncoder, session: Uuid, path: &str) -> LiveEvent {
        let mut record = event("page_viewed");
        record.session_id = Some(session);
        record.props = Some(Props::from_json_text(format!(
            r#"{{"path":"{path}","x":1}}"#
        )));
        encoder.encode(&record)
    }

    #[test]
    fn each_visitor_counts_once_on_its_latest_page() {
        let (hub, encoder) = (LiveHub::new(), LiveEncoder::new(b"key"));
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        hub.publish(view(&encoder, a, "/"), at(0));
        hub.publish(view(&encoder, b, "/pricing"), at(1));
        hub.publish(view(&encoder, c, "/"), at(2));
        hub.publish(view(&encoder, a, "/pricing"), at(3));
        let snapshot = hub.snapshot(at(4));
        assert_eq!(snapshot.current_visitors, 3);
        assert_eq!(
            snapshot.active_pages,
            vec![
                ActivePage {
                    path: "/pricing".into(),
                    visitors: 2
                },
                ActivePage {
                    path: "/".into(),
                    visitors: 1
                },
            ]
        );
        assert_eq!(snapshot.recent_events.len(), 4);
        assert_eq!(snapshot.recent_events[0].path.as_deref(), Some("/pricing"));
    }

    #[test]
    fn visitors_leave_the_window_after_five_minutes() {
        let (hub, encoder) = (LiveHub::new(), LiveEncoder::new(b"key"));
        hub.publish(view(&encoder, Uuid::now_v7(), "/old"), at(0));
        hub.publish(view(&encoder, Uuid::now_v7(), "/new"), at(100));
        assert_eq!(hub.snapshot(at(299)).current_visitors, 2);
        let later = hub.snapshot(at(350));
        assert_eq!(later.current_visitors, 1);
        assert_eq!(later.active_pages[0].path, "/new");
    }

    #[test]
    fn live_events_carry_no_personal_data() {
        let encoder = LiveEncoder::new(b"key");
        let mut record = event("signup_completed");
        record.user_id = Some("alice@example.com".into());
        record.enrichment.ip_address = Some("203.0.113.9".into());
        record.props = Some(Props::from_json_text(
            r#"{"page":"/signup","email":"alice@example.com"}"#,
        ));
        let live = encoder.encode(&record);
        let text = serde_json::to_string(&live).expect("json");
        assert!(
            !text.contains("alice") && !text.contains("203.0.113"),
            "{text}"
        );
        assert_eq!(live.path.as_deref(), Some("/signup"));
        let visitor = live.visitor_id.expect("a signed-in visitor");
        assert_eq!(visitor.len(), 16);
        assert_eq!(
            encoder.encode(&record).visitor_id.as_deref(),
            Some(visitor.as_str())
        );
        assert_ne!(
            LiveEncoder::new(b"other key")
                .encode(&record)
                .visitor_id
                .as_deref(),
            Some(visitor.as_str()),
            "another deployment's key names the visitor differently"
        );
        let mut anonymous = event("server_ping");
        anonymous.attribution.landing_page = Some("https://shop.example/boots?utm_source=x".into());
        let anonymous = encoder.encode(&anonymous);
        assert_eq!(anonymous.visitor_id, None);
        assert_eq!(anonymous.path.as_deref(), Some("/boots"));
    }

    #[test]
    fn replay_starts_after_the_last_id_the_viewer_saw() {
        let (hub, encoder) = (LiveHub::new(), LiveEncoder::new(b"key"));
        let events: Vec<LiveEvent> = (0..5)
            .map(|_| view(&encoder, Uuid::now_v7(), "/"))
            .collect();
        for event in &events {
            hub.publish(event.clone(), at(0));
        }
        let replayed = hub.replay_after(events[1].event_id).expect("held");
        assert_eq!(replayed, events[2..].to_vec());
        assert_eq!(hub.replay_after(Uuid::now_v7()), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let (hub, encoder) = (LiveHub::new(), LiveEncoder::new(b"key"));
        for _ in 0..RECENT_EVENTS + 10 {
            let mut record = event("x");
            record.session_id = None;
            hub.publish(encoder.encode(&record), at(0));
        }
        assert_eq!(hub.lock().recent.len(), RECENT_EVENTS);
        let mut window = hub.lock();
        for index in 0..MAX_VISITORS {
            window.visitors.insert(
                index.to_string(),
                Seen {
                    at: at(0),
                    path: None,
                },
            );
        }
        drop(window);
        hub.publish(view(&encoder, Uuid::now_v7(), "/"), at(1));
        assert_eq!(hub.untracked_visitors(), 1);
        assert_eq!(hub.snapshot(at(1)).current_visitors, MAX_VISITORS as u64);
        // Once the old visitors expire, new ones are tracked again.
        hub.publish(view(&encoder, Uuid::now_v7(), "/"), at(400));
        assert_eq!(hub.snapshot(at(400)).current_visitors, 1);
    }
}
