//! The live subscription (`eventIngestion.live`, docs/live-and-metrics.md "Live analytics"), one
//! implementation for every way in: SSE `/api/live`, the tRPC subscription and the JSON-RPC
//! subscription only frame what a [`LiveFeed`] yields.
//!
//! A feed never makes ingestion wait. It reads the hub's broadcast of batches; a viewer that
//! falls [`BATCH_QUEUE`](crate::pipeline::live::BATCH_QUEUE) batches behind is dropped when it
//! next reads, and one that stops reading altogether (its socket full) is dropped by a
//! watchdog after the stall timeout, giving its place back. Both are logged and counted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use uuid::Uuid;

use super::EventIngestion;
use super::error::{ApiError, ErrorCode, InvalidInput};
use crate::domain::RequestContext;
use crate::pipeline::Pipeline;
use crate::pipeline::live::{LiveBatch, LiveEntry, LiveSnapshot};

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
                let mut errors = InvalidInput::default();
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
    /// A replayed event (or one of a batch that began before the viewer joined).
    Event(Arc<LiveEntry>),
    /// New events, the same batch for every viewer.
    Events(Arc<LiveBatch>),
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
    receiver: broadcast::Receiver<Arc<LiveBatch>>,
    /// Events up to this `seq` came in the snapshot or the replay.
    joined_at: u64,
    stats: Interval,
    heartbeat: Interval,
    closed: watch::Receiver<bool>,
    /// The `seq` of the last event this viewer took, for the watchdog.
    taken: Arc<AtomicU64>,
    counters: Arc<ViewerCounters>,
    watchdog: JoinHandle<()>,
    ended: bool,
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
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            enum Woken {
                Received(Result<Arc<LiveBatch>, RecvError>),
                Stats,
                Heartbeat,
            }
            let woken = tokio::select! {
                biased;
                _ = self.closed.wait_for(|closed| *closed) => {
                    Woken::Received(Err(RecvError::Closed))
                }
                received = self.receiver.recv() => Woken::Received(received),
                _ = self.stats.tick() => Woken::Stats,
                _ = self.heartbeat.tick() => Woken::Heartbeat,
            };
            let item = match woken {
                Woken::Received(Ok(batch)) => match self.took(batch) {
                    Some(item) => Some(item),
                    None => continue,
                },
                Woken::Received(Err(RecvError::Lagged(missed))) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(missed, "live viewer dropped: it fell too far behind");
                    None
                }
                Woken::Received(Err(RecvError::Closed)) => None,
                Woken::Stats => Some(LiveItem::Stats(
                    self.pipeline.live_hub().snapshot(self.pipeline.now()),
                )),
                Woken::Heartbeat => Some(LiveItem::Heartbeat),
            };
            self.ended = item.is_none();
            return item;
        }
    }

    /// The part of `batch` this viewer has not had: all of it (the shared batch), some of
    /// it (as single events), or none.
    fn took(&mut self, batch: Arc<LiveBatch>) -> Option<LiveItem> {
        let (first, last) = batch.seqs();
        self.taken.store(last, Ordering::Relaxed);
        if first > self.joined_at {
            return Some(LiveItem::Events(batch));
        }
        let unseen = batch
            .entries
            .iter()
            .filter(|entry| entry.seq > self.joined_at)
            .cloned()
            .map(LiveItem::Event);
        self.pending.extend(unseen);
        self.pending.pop_front()
    }

    /// The feed as a stream of items.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = LiveItem> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|item| (item, feed))
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
        let taken = Arc::new(AtomicU64::new(joined.joined_at));
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
            joined_at: joined.joined_at,
            stats: every(STATS_INTERVAL),
            heartbeat: every(HEARTBEAT_INTERVAL),
            closed: hub.closed(),
            taken,
            counters: viewers.counters.clone(),
            watchdog,
            ended: false,
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
