//! The live hub: every accepted event, at acceptance, for the live views
//! (docs/live-and-metrics.md "Live analytics").
//!
//! The hub keeps what a viewer needs when it connects — the visitors of the last five
//! minutes with their latest page, and a ring of the most recent events for `Last-Event-ID`
//! replay — and broadcasts the new events to the connected viewers in [`LiveBatch`]es.
//! Nothing here waits on a viewer: publishing is a short lock, and a viewer that falls more
//! than [`BATCH_QUEUE`] batches behind finds out it lagged and is dropped by its feed.
//!
//! Batches are what make a hundred viewers cheap: one task gathers the events published
//! while the last batch went out (at most one batch per [`BATCH_PAUSE`]; after a quiet
//! spell an event goes at once), and every viewer receives the same batch, so a transport
//! frames (and compresses) it once for all of them and writes it to each in one write.
//!
//! Memory is bounded whatever the traffic: at most [`RECENT_EVENTS`] events in the ring,
//! [`BATCH_QUEUE`] batches of at most [`MAX_EVENTS_PER_BATCH`] in the broadcast, and
//! [`MAX_VISITORS`] visitors in the window. Past that
//! many distinct visitors within five minutes, new ones are not tracked until older ones
//! expire (counted in [`LiveHub::untracked_visitors`]), so `currentVisitors` saturates at the
//! bound rather than growing the process. So is time: publishing costs the same with a full
//! window as with an empty one (see `window.rs`), so a flood of new visitors cannot slow
//! ingestion down.
//!
//! Across nodes, [`relay`] carries each node's events to the others' hubs.

mod event;
pub mod relay;
mod window;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, Weak};

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::{Notify, broadcast, watch};
use uuid::Uuid;

pub use event::{ActivePage, LiveEncoder, LiveEvent, LiveMessage, LiveSnapshot};

/// How far back "current" visitors reach.
pub const WINDOW_SECONDS: i64 = 300;
/// Events kept for replay and for the snapshot's recent list.
pub const RECENT_EVENTS: usize = 1_000;
/// Events a snapshot lists.
pub const SNAPSHOT_EVENTS: usize = 20;
/// Most visitors tracked in the window.
pub const MAX_VISITORS: usize = 100_000;
/// Most pages a snapshot lists (the busiest).
pub const ACTIVE_PAGES: usize = 100;
/// Batches a viewer may fall behind before it is dropped.
pub const BATCH_QUEUE: usize = 32;
/// Most events in one batch.
pub const MAX_EVENTS_PER_BATCH: usize = 1_024;
/// Least time between two batches while events keep coming.
pub const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// An event in the hub: its place in the hub's order and its message, serialized once for
/// every viewer.
#[derive(Debug)]
pub struct LiveEntry {
    /// 1 for the first event this hub published, then one more for each.
    pub seq: u64,
    pub event: LiveEvent,
    /// The `new_event` [`LiveMessage`] as JSON.
    pub message_json: String,
}

/// Events published one after another, sent to every viewer as one.
#[derive(Debug)]
pub struct LiveBatch {
    /// In publishing order; never empty.
    pub entries: Vec<Arc<LiveEntry>>,
    /// The batch as the event-stream transports frame it, plain and compressed: built by
    /// the first viewer that sends it and shared by every other.
    pub framed: OnceLock<Bytes>,
    pub compressed: OnceLock<Bytes>,
}

impl LiveBatch {
    fn new(entries: Vec<Arc<LiveEntry>>) -> Self {
        Self {
            entries,
            framed: OnceLock::new(),
            compressed: OnceLock::new(),
        }
    }

    /// The `seq` of its first and last events.
    pub fn seqs(&self) -> (u64, u64) {
        let seq = |entry: Option<&Arc<LiveEntry>>| entry.map_or(0, |entry| entry.seq);
        (seq(self.entries.first()), seq(self.entries.last()))
    }
}

struct Window {
    published: u64,
    recent: VecDeque<Arc<LiveEntry>>,
    visitors: window::Visitors,
    /// Published, not yet batched (only while someone is viewing).
    unbatched: Vec<Arc<LiveEntry>>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            published: 0,
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            visitors: window::Visitors::new(Duration::seconds(WINDOW_SECONDS), MAX_VISITORS),
            unbatched: Vec::new(),
        }
    }
}

impl Window {
    fn snapshot(&mut self, now: DateTime<Utc>) -> LiveSnapshot {
        self.visitors.expire_all(now);
        LiveSnapshot {
            current_visitors: self.visitors.len() as u64,
            recent_events: self
                .recent
                .iter()
                .rev()
                .take(SNAPSHOT_EVENTS)
                .map(|entry| entry.event.clone())
                .collect(),
            active_pages: self.visitors.busiest_pages(ACTIVE_PAGES),
            window_seconds: WINDOW_SECONDS,
            at: now,
        }
    }
}

/// What a viewer starts from: the site now, the events it missed (when it said which it saw
/// last and the hub still holds that one), and the stream of every event after those: the
/// batches' events with a `seq` above `joined_at` (a batch sent after the viewer joined may
/// still hold events from before).
pub struct Joined {
    pub snapshot: LiveSnapshot,
    pub replay: Vec<Arc<LiveEntry>>,
    pub receiver: broadcast::Receiver<Arc<LiveBatch>>,
    pub joined_at: u64,
}

/// The hub every node's accepted events go through.
pub struct LiveHub {
    window: Mutex<Window>,
    sender: broadcast::Sender<Arc<LiveBatch>>,
    /// Wakes the batcher when the first unbatched event arrives.
    wake: Arc<Notify>,
    batcher: Once,
    untracked_visitors: AtomicU64,
    closed: watch::Sender<bool>,
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
            sender: broadcast::channel(BATCH_QUEUE).0,
            wake: Arc::new(Notify::new()),
            batcher: Once::new(),
            untracked_visitors: AtomicU64::new(0),
            closed: watch::channel(false).0,
        }
    }

    /// Records `event` (seen at `now`) and sends it to every viewer; never waits.
    pub fn publish(&self, event: LiveEvent, now: DateTime<Utc>) {
        let message = LiveMessage::NewEvent(event);
        let message_json = message.to_json();
        let LiveMessage::NewEvent(event) = message else {
            return;
        };
        let mut window = self.lock();
        if let Some(visitor) = &event.visitor_id {
            let tracked = window.visitors.see(visitor, event.path.as_deref(), now);
            if tracked == window::Tracked::WindowFull {
                self.untracked_visitors.fetch_add(1, Ordering::Relaxed);
            }
        }
        window.published += 1;
        let entry = Arc::new(LiveEntry {
            seq: window.published,
            event,
            message_json,
        });
        if window.recent.len() == RECENT_EVENTS {
            window.recent.pop_front();
        }
        window.recent.push_back(entry.clone());
        // Queued under the lock that `join` takes, so a viewer gets each event once: in its
        // snapshot or replay (seq up to `joined_at`) or in a batch.
        if self.sender.receiver_count() > 0 {
            window.unbatched.push(entry);
            if window.unbatched.len() == 1 {
                self.wake.notify_one();
            }
        }
    }

    /// Starts a viewer: its snapshot, replay and stream are taken together, under the lock
    /// `publish` holds, so every event is in exactly one of them (or in the snapshot's
    /// recent list, for a viewer without `last_id`).
    /// Starts the batcher on first use, so it must run inside the Tokio runtime.
    pub fn join(self: &Arc<Self>, now: DateTime<Utc>, last_id: Option<Uuid>) -> Joined {
        self.batcher.call_once(|| {
            tokio::spawn(batch_events(Arc::downgrade(self), self.wake.clone()));
        });
        let mut window = self.lock();
        let receiver = self.sender.subscribe();
        let replay = last_id
            .and_then(|last_id| {
                let at = window
                    .recent
                    .iter()
                    .position(|entry| entry.event.event_id == last_id)?;
                Some(window.recent.iter().skip(at + 1).cloned().collect())
            })
            .unwrap_or_default();
        Joined {
            snapshot: window.snapshot(now),
            replay,
            receiver,
            joined_at: window.published,
        }
    }

    /// The site now.
    pub fn snapshot(&self, now: DateTime<Utc>) -> LiveSnapshot {
        self.lock().snapshot(now)
    }

    /// How many events this hub has published: the `seq` of the latest.
    pub fn published(&self) -> u64 {
        self.lock().published
    }

    /// Visitors not tracked because the window was full.
    pub fn untracked_visitors(&self) -> u64 {
        self.untracked_visitors.load(Ordering::Relaxed)
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Ends every viewer's stream: the server is stopping.
    pub fn close(&self) {
        self.closed.send_replace(true);
        self.wake.notify_one();
    }

    /// Becomes `true` when the hub closes.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sends the unbatched events as batches: at once after a quiet spell, else at most one
/// batch per [`BATCH_PAUSE`], gathering what arrived meanwhile. Ends with the hub.
async fn batch_events(hub: Weak<LiveHub>, wake: Arc<Notify>) {
    let mut last_sent: Option<tokio::time::Instant> = None;
    loop {
        wake.notified().await;
        if let Some(due) = last_sent.map(|sent| sent + BATCH_PAUSE) {
            tokio::time::sleep_until(due).await;
        }
        let Some(hub) = hub.upgrade() else { return };
        if *hub.closed.borrow() {
            return;
        }
        let unbatched = std::mem::take(&mut hub.lock().unbatched);
        if unbatched.is_empty() {
            continue;
        }
        for chunk in unbatched.chunks(MAX_EVENTS_PER_BATCH) {
            // No viewer left is not an error.
            let _ = hub.sender.send(Arc::new(LiveBatch::new(chunk.to_vec())));
        }
        last_sent = Some(tokio::time::Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Props;
    use crate::domain::test_support::event;
    use chrono::TimeZone;

    /// A fixed time, `second` seconds on (the window's tests use it too).
    pub(super) fn at(second: i64) -> DateTime<Utc> {
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

    #[tokio::test]
    async fn replay_starts_after_the_last_id_the_viewer_saw() {
        let (hub, encoder) = (Arc::new(LiveHub::new()), LiveEncoder::new(b"key"));
        let events: Vec<LiveEvent> = (0..5)
            .map(|_| view(&encoder, Uuid::now_v7(), "/"))
            .collect();
        for event in &events {
            hub.publish(event.clone(), at(0));
        }
        let mut joined = hub.join(at(0), Some(events[1].event_id));
        let replayed: Vec<LiveEvent> = joined.replay.iter().map(|e| e.event.clone()).collect();
        assert_eq!(replayed, events[2..].to_vec());
        assert_eq!(joined.replay[0].seq, 3);
        assert!(hub.join(at(0), Some(Uuid::now_v7())).replay.is_empty());
        let next = view(&encoder, Uuid::now_v7(), "/next");
        hub.publish(next.clone(), at(1));
        let batch = tokio::time::timeout(std::time::Duration::from_secs(5), joined.receiver.recv())
            .await
            .expect("in time")
            .expect("the next batch");
        assert_eq!((joined.joined_at, batch.seqs()), (5, (6, 6)));
        let received = batch.entries.last().expect("an event");
        assert_eq!(received.event, next);
        assert_eq!(
            serde_json::from_str::<LiveMessage>(&received.message_json).expect("json"),
            LiveMessage::NewEvent(next)
        );
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
        for _ in 0..MAX_VISITORS {
            hub.publish(view(&encoder, Uuid::now_v7(), "/"), at(0));
        }
        assert_eq!(hub.untracked_visitors(), 0);
        hub.publish(view(&encoder, Uuid::now_v7(), "/"), at(1));
        assert_eq!(hub.untracked_visitors(), 1);
        assert_eq!(hub.snapshot(at(1)).current_visitors, MAX_VISITORS as u64);
        // Once the old visitors expire, new ones are tracked again.
        hub.publish(view(&encoder, Uuid::now_v7(), "/"), at(400));
        assert_eq!(hub.snapshot(at(400)).current_visitors, 1);
    }

    /// The regression test of the cliff: with more distinct visitors than the window holds,
    /// every new one used to scan the whole window under the hub's lock. The entries a
    /// publish touches are counted over 2.5 × [`MAX_VISITORS`] new visitors, arriving faster
    /// than five minutes can hold: the most any 10 000 of them cost stays a few each.
    #[test]
    fn publishing_past_the_visitor_cap_costs_the_same_per_event() {
        let (hub, encoder) = (LiveHub::new(), LiveEncoder::new(b"key"));
        let total = MAX_VISITORS as u64 * 5 / 2;
        let mut costs = Vec::new();
        for chunk in 0..total / 10_000 {
            let before = hub.lock().visitors.work();
            for n in chunk * 10_000..(chunk + 1) * 10_000 {
                // 2 000 new visitors a second: the window holds 100 000 after 50 s.
                let second = (n / 2_000) as i64;
                let path = format!("/page/{}", n % 700);
                hub.publish(view(&encoder, Uuid::now_v7(), &path), at(second));
            }
            costs.push((hub.lock().visitors.work() - before) as f64 / 10_000.0);
        }
        assert!(hub.untracked_visitors() > 0, "the cap was reached");
        let (first, most) = (costs[0], costs.iter().copied().fold(0.0, f64::max));
        assert!(
            most <= 3.0 && most <= first * 3.0,
            "entries touched per event by chunk: {costs:?}"
        );
        let snapshot = hub.snapshot(at((total / 2_000) as i64));
        assert_eq!(snapshot.current_visitors, MAX_VISITORS as u64);
        assert_eq!(snapshot.active_pages.len(), ACTIVE_PAGES);
        let listed: u64 = snapshot.active_pages.iter().map(|page| page.visitors).sum();
        assert!(listed <= MAX_VISITORS as u64);
    }
}
