//! The live subscription (`eventIngestion.live`, DESIGN.md "Live analytics"), one
//! implementation for every way in: SSE `/api/live`, the tRPC subscription and the JSON-RPC
//! subscription only frame what a [`LiveFeed`] yields.
//!
//! A feed never makes ingestion wait. It reads the hub's broadcast; a viewer that falls
//! [`VIEWER_QUEUE`](crate::pipeline::live::VIEWER_QUEUE) events behind is dropped when it
//! next reads, and one that stops reading altogether (its socket full) is dropped by a
//! watchdog after the stall timeout, giving its place back. Both are logged and counted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use uuid::Uuid;

use super::EventIngestion;
use super::error::{ApiError, ErrorCode, ZodError};
use crate::domain::RequestContext;
use crate::pipeline::Pipeline;
use crate::pipeline::live::{LiveEntry, LiveSnapshot};

/// The procedure path of the subscription (tRPC) and the notification method (JSON-RPC).
pub const LIVE_PATH: &str = "eventIngestion.live";
/// The JSON-RPC method that starts a subscription.
pub const SUBSCRIBE_METHOD: &str = "eventIngestion.subscribeLive";
/// The JSON-RPC method that ends one.
pub const UNSUBSCRIBE_METHOD: &str = "eventIngestion.unsubscribeLive";

/// Most viewers on one node by default.
pub const DEFAULT_MAX_VIEWERS: usize = 256;
/// How long a viewer with events waiting may take none before it is dropped, by default.
pub const DEFAULT_STALL_TIMEOUT_SECONDS: u64 = 30;
/// How often a viewer gets a `stats` snapshot.
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How often a viewer gets a heartbeat, so proxies and clients know the stream is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// How often the watchdog looks at its viewer.
const WATCHDOG_TICK: Duration = Duration::from_millis(500);
/// Least time between two batches to one viewer while events keep coming: under load a
/// viewer gets one write per pause with every event that arrived meanwhile, instead of one
/// write (and one wake-up) per event per viewer. After a quiet spell an event goes at once.
pub const BATCH_PAUSE: Duration = Duration::from_millis(10);
/// Most items in one batch.
const MAX_BATCH_ITEMS: usize = 512;

/// Limits on live viewers.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub max_viewers: usize,
    pub stall_timeout: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            max_viewers: DEFAULT_MAX_VIEWERS,
            stall_timeout: Duration::from_secs(DEFAULT_STALL_TIMEOUT_SECONDS),
        }
    }
}

/// The viewers of this node: their places and what happened to them.
pub struct LiveViewers {
    settings: LiveSettings,
    places: Arc<Semaphore>,
    counters: Arc<ViewerCounters>,
}

/// Viewer counts for `/metrics`.
#[derive(Debug, Default)]
pub struct ViewerCounters {
    /// Viewers ever connected.
    pub connected: AtomicU64,
    /// Viewers dropped for falling behind or stalling.
    pub dropped: AtomicU64,
    /// Viewers refused because every place was taken.
    pub refused: AtomicU64,
}

impl LiveViewers {
    pub fn new(settings: LiveSettings) -> Self {
        Self {
            places: Arc::new(Semaphore::new(settings.max_viewers)),
            settings,
            counters: Arc::default(),
        }
    }

    pub fn counters(&self) -> &ViewerCounters {
        &self.counters
    }

    /// Viewers connected now.
    pub fn connected(&self) -> usize {
        self.settings.max_viewers - self.places.available_permits()
    }
}

/// The input of the subscription: where a reconnecting viewer left off.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveInput {
    /// The id of the last event the viewer received; the events after it that the hub still
    /// holds are sent first.
    pub last_event_id: Option<String>,
}

impl LiveInput {
    /// Reads the input: none, `{}` or `{lastEventId}`.
    pub fn parse(input: Option<Value>) -> Result<Self, ApiError> {
        match input {
            None | Some(Value::Null) => Ok(Self::default()),
            Some(value) => serde_json::from_value(value).map_err(|error| {
                let mut errors = ZodError::default();
                errors.form(format!("Invalid live input: {error}"));
                ApiError::validation(errors)
            }),
        }
    }
}

/// One thing to tell a viewer.
#[derive(Debug)]
pub enum LiveItem {
    /// The site when the viewer joined.
    Connected(LiveSnapshot),
    /// A new (or replayed) event.
    Event(Arc<LiveEntry>),
    /// The site now.
    Stats(LiveSnapshot),
    /// Nothing new; the stream is alive.
    Heartbeat,
}

/// One viewer's stream of [`LiveItem`]s; ends when the viewer is dropped or the server
/// stops. Dropping it gives the viewer's place back.
pub struct LiveFeed {
    pipeline: Arc<Pipeline>,
    pending: VecDeque<LiveItem>,
    receiver: broadcast::Receiver<Arc<LiveEntry>>,
    stats: Interval,
    heartbeat: Interval,
    closed: watch::Receiver<bool>,
    /// The `seq` of the last event this viewer took, for the watchdog.
    taken: Arc<AtomicU64>,
    counters: Arc<ViewerCounters>,
    watchdog: JoinHandle<()>,
    ended: bool,
    /// When the last batch went out.
    last_batch: Option<Instant>,
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        // The watchdog holds the viewer's place.
        self.watchdog.abort();
    }
}

impl LiveFeed {
    /// The next item; `None` once the feed has ended.
    pub async fn next(&mut self) -> Option<LiveItem> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        if self.ended {
            return None;
        }
        enum Woken {
            Received(Result<Arc<LiveEntry>, RecvError>),
            Stats,
            Heartbeat,
        }
        let woken = tokio::select! {
            biased;
            _ = self.closed.wait_for(|closed| *closed) => Woken::Received(Err(RecvError::Closed)),
            received = self.receiver.recv() => Woken::Received(received),
            _ = self.stats.tick() => Woken::Stats,
            _ = self.heartbeat.tick() => Woken::Heartbeat,
        };
        let item = match woken {
            Woken::Received(Ok(entry)) => Some(self.took(entry)),
            Woken::Received(Err(RecvError::Lagged(missed))) => self.lagged(missed),
            Woken::Received(Err(RecvError::Closed)) => None,
            Woken::Stats => Some(LiveItem::Stats(
                self.pipeline.live_hub().snapshot(self.pipeline.now()),
            )),
            Woken::Heartbeat => Some(LiveItem::Heartbeat),
        };
        self.ended = item.is_none();
        item
    }

    /// The next items, to go out in one write: the next item and, when it is an event,
    /// every event that arrived by the end of the [`BATCH_PAUSE`] since the last batch.
    /// `None` once the feed has ended.
    pub async fn next_batch(&mut self) -> Option<Vec<LiveItem>> {
        let first = self.next().await?;
        let is_event = matches!(first, LiveItem::Event(_));
        let mut batch = vec![first];
        if is_event {
            if let Some(due) = self.last_batch.map(|last| last + BATCH_PAUSE) {
                tokio::select! {
                    biased;
                    _ = self.closed.wait_for(|closed| *closed) => {}
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            while batch.len() < MAX_BATCH_ITEMS {
                let Some(item) = self.try_next() else { break };
                batch.push(item);
            }
        }
        self.last_batch = Some(Instant::now());
        Some(batch)
    }

    /// An item that is ready now, without waiting.
    fn try_next(&mut self) -> Option<LiveItem> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        if self.ended {
            return None;
        }
        match self.receiver.try_recv() {
            Ok(entry) => Some(self.took(entry)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(missed)) => {
                self.ended = true;
                self.lagged(missed)
            }
            Err(TryRecvError::Closed) => {
                self.ended = true;
                None
            }
        }
    }

    fn took(&self, entry: Arc<LiveEntry>) -> LiveItem {
        self.taken.store(entry.seq, Ordering::Relaxed);
        LiveItem::Event(entry)
    }

    /// Ends a viewer that fell too far behind.
    fn lagged(&self, missed: u64) -> Option<LiveItem> {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(missed, "live viewer dropped: it fell too far behind");
        None
    }

    /// The feed as a stream of batches (see [`next_batch`](Self::next_batch)).
    pub fn into_batches(self) -> impl futures_util::Stream<Item = Vec<LiveItem>> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next_batch().await.map(|batch| (batch, feed))
        })
    }
}

fn every(period: Duration) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

impl EventIngestion {
    /// Opens a live feed for an admin: 401 without credentials, 403 for other roles,
    /// TOO_MANY_REQUESTS when every viewer place is taken. With `input.lastEventId` still in
    /// the hub, the feed starts with the events after it; otherwise with a `Connected`
    /// snapshot.
    pub fn open_live(
        &self,
        context: &RequestContext,
        input: LiveInput,
    ) -> Result<LiveFeed, ApiError> {
        let result = self.try_open_live(context, input);
        if let Err(error) = &result {
            error.log(LIVE_PATH);
        }
        result
    }

    fn try_open_live(
        &self,
        context: &RequestContext,
        input: LiveInput,
    ) -> Result<LiveFeed, ApiError> {
        self.auth.require_admin(context)?;
        let viewers = &self.live_viewers;
        let Ok(place) = viewers.places.clone().try_acquire_owned() else {
            viewers.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError {
                retry_after_secs: Some(5),
                ..ApiError::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "Too many live viewers (limit {}); retry later",
                        viewers.settings.max_viewers
                    ),
                )
            });
        };
        viewers.counters.connected.fetch_add(1, Ordering::Relaxed);
        let last_id = input
            .last_event_id
            .as_deref()
            .and_then(|id| Uuid::try_parse(id.trim()).ok());
        let hub = self.pipeline.live_hub();
        let joined = hub.join(self.pipeline.now(), last_id);
        let taken = Arc::new(AtomicU64::new(hub.published()));
        let mut pending = VecDeque::with_capacity(joined.replay.len() + 1);
        if last_id.is_none() || joined.replay.is_empty() {
            pending.push_back(LiveItem::Connected(joined.snapshot));
        }
        pending.extend(joined.replay.into_iter().map(LiveItem::Event));
        let watchdog = tokio::spawn(watch_viewer(
            self.pipeline.clone(),
            taken.clone(),
            place,
            viewers.settings.stall_timeout,
            viewers.counters.clone(),
        ));
        Ok(LiveFeed {
            pipeline: self.pipeline.clone(),
            pending,
            receiver: joined.receiver,
            stats: every(STATS_INTERVAL),
            heartbeat: every(HEARTBEAT_INTERVAL),
            closed: hub.closed(),
            taken,
            counters: viewers.counters.clone(),
            watchdog,
            ended: false,
            last_batch: None,
        })
    }

    pub fn live_viewers(&self) -> &LiveViewers {
        &self.live_viewers
    }
}

/// Holds a viewer's place while the viewer keeps taking the events waiting for it. A
/// viewer whose transport stopped reading (its socket full) is not even polled, so only a
/// task beside it can notice and give its place back.
async fn watch_viewer(
    pipeline: Arc<Pipeline>,
    taken: Arc<AtomicU64>,
    place: OwnedSemaphorePermit,
    stall_timeout: Duration,
    counters: Arc<ViewerCounters>,
) {
    let mut ticks = tokio::time::interval(WATCHDOG_TICK);
    let mut last_taken = taken.load(Ordering::Relaxed);
    let mut stalled_since: Option<Instant> = None;
    loop {
        ticks.tick().await;
        let now_taken = taken.load(Ordering::Relaxed);
        let waiting = pipeline.live_hub().published() > now_taken;
        if now_taken != last_taken || !waiting {
            last_taken = now_taken;
            stalled_since = None;
            continue;
        }
        let since = *stalled_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= stall_timeout {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stalled_ms = since.elapsed().as_millis() as u64,
                "live viewer dropped: it stopped reading"
            );
            drop(place);
            return;
        }
    }
}
