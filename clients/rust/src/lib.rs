//! `sluice-tracker`: track analytics events from Rust services into a Sluice server
//! without ever blocking them.
//!
//! [`Tracker::track`] puts an event on a bounded in-memory queue and returns — no await,
//! no I/O, a short lock. A background task sends the queue to Sluice's JSON-RPC
//! `eventIngestion.trackBatch` in batches (when `batch_size` are waiting, every
//! `flush_interval`, or on [`Tracker::flush`]), reads each item's result, retries what
//! failed for a reason that can pass (network errors, timeouts, 5xx, TOO_MANY_REQUESTS,
//! SERVICE_UNAVAILABLE) with exponential backoff and jitter that honours
//! `retryAfterSeconds`, and counts what was refused. [`Tracker::metrics`] reports delivery
//! and a health status (healthy, degraded or critical, from the delivery and failure rates
//! and the queue's size).
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_tracker::{Event, Tracker};
//!
//! # async fn run() {
//! let tracker = Tracker::builder("http://127.0.0.1:8080")
//!     .bearer_token("a SERVICE JWT, from `sluice token --role SERVICE`")
//!     .build()
//!     .expect("tracker");
//! tracker.track(Event::new("story_generated").user("user-123").prop("model", "x"));
//! let report = tracker.flush().await;
//! println!("{} delivered, {} failed", report.delivered, report.failed);
//! tracker.shutdown(Duration::from_secs(5)).await;
//! # }
//! ```
//!
//! Delivery is at least once, stored once: every event carries `props.occurred_at` from
//! when it was made, so a batch sent again after a timeout has the same fingerprints and
//! Sluice stores each event once (its in-memory dedup answers `duplicate`; its unique
//! fingerprint index catches a resend at any later time). No idempotency key: a key costs
//! Sluice a database round trip per event, and needs the database up to be claimed — while
//! without one, Sluice buffers through a database outage and the tracker only retries what
//! a full buffer refused.

mod event;
mod metrics;
mod sender;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

pub use event::Event;
pub use metrics::{Health, Metrics};

use metrics::Counters;

/// Most events in one `trackBatch` call (Sluice's limit).
pub const MAX_BATCH_SIZE: usize = 50;

/// How a [`Tracker`] sends.
#[derive(Debug, Clone)]
pub struct Builder {
    url: String,
    batch_size: usize,
    flush_interval: Duration,
    queue_bound: usize,
    request_timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    bearer_token: Option<String>,
}

/// A builder setting was out of range, or the HTTP client could not be made.
#[derive(Debug)]
pub struct BuildError(String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

impl Builder {
    /// Events per `trackBatch` call, 1 to 50 (default 10).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events;
        self
    }

    /// Longest time an event waits before it is sent (default 5 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Most events held (default 10 000); past it the oldest is dropped and counted.
    pub fn queue_bound(mut self, events: usize) -> Self {
        self.queue_bound = events;
        self
    }

    /// Longest time one `trackBatch` call may take (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Longest time to connect (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Attempts after the first before an event counts as failed (default 8; about a
    /// minute and a half of backoff).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// `Authorization: Bearer <token>`: a `SERVICE` JWT (needed to set users on events) or
    /// any other Sluice token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Starts the tracker and its sender task; must run inside a Tokio runtime.
    pub fn build(self) -> Result<Tracker, BuildError> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(BuildError(format!(
                "batch size must be 1 to {MAX_BATCH_SIZE} (got {})",
                self.batch_size
            )));
        }
        if self.queue_bound == 0 || self.flush_interval.is_zero() {
            return Err(BuildError(
                "the queue bound and the flush interval must not be zero".into(),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| BuildError("a Tracker must be built inside a Tokio runtime".into()))?;
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|error| BuildError(error.to_string()))?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            counters: Counters::default(),
            stopped: AtomicBool::new(false),
            batch_size: self.batch_size,
            queue_bound: self.queue_bound,
        });
        let (requests, inbox) = mpsc::unbounded_channel();
        let task = runtime.spawn(sender::run(
            shared.clone(),
            sender::Sender::new(client, &self),
            inbox,
            self.flush_interval,
        ));
        Ok(Tracker {
            shared,
            requests,
            task: Mutex::new(Some(task)),
        })
    }
}

/// What the tracker and its sender task share.
pub(crate) struct Shared {
    pub queue: Mutex<VecDeque<Event>>,
    pub wake: Notify,
    pub counters: Counters,
    pub stopped: AtomicBool,
    pub batch_size: usize,
    pub queue_bound: usize,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a [`Tracker::flush`] or [`Tracker::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Events delivered while it ran.
    pub delivered: u64,
    /// Events that failed for good while it ran.
    pub failed: u64,
    /// Events still waiting when it returned.
    pub remaining: usize,
}

/// A request to the sender task.
pub(crate) enum Request {
    /// Send everything waiting, then answer how many still wait.
    Flush(oneshot::Sender<usize>),
}

/// Tracks events into Sluice from a service. Cheap to share behind an `Arc`.
pub struct Tracker {
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<Request>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Tracker {
    /// A builder for a tracker that sends to the Sluice at `url` (its JSON-RPC endpoint,
    /// e.g. `http://sluice:8080`).
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder {
            url: url.into(),
            batch_size: 10,
            flush_interval: Duration::from_secs(5),
            queue_bound: 10_000,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_retries: 8,
            bearer_token: None,
        }
    }

    /// Queues `event` and returns at once: it never blocks on I/O and never awaits. When the
    /// queue is full the oldest event is dropped (counted in [`Metrics::dropped`]); after
    /// [`shutdown`](Self::shutdown) the event itself is.
    pub fn track(&self, event: Event) {
        let counters = &self.shared.counters;
        Counters::add(&counters.queued, 1);
        if self.shared.stopped.load(Ordering::Relaxed) {
            Counters::add(&counters.dropped, 1);
            return;
        }
        let waiting = {
            let mut queue = self.shared.lock();
            if queue.len() >= self.shared.queue_bound {
                queue.pop_front();
                Counters::add(&counters.dropped, 1);
            }
            queue.push_back(event);
            queue.len()
        };
        if waiting == self.shared.batch_size {
            self.shared.wake.notify_one();
        }
    }

    /// Sends everything queued now, retrying as usual, and reports what was delivered and
    /// what failed for good while it ran (batches already on their way included).
    pub async fn flush(&self) -> FlushReport {
        let counters = &self.shared.counters;
        let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let (delivered, failed) = (read(&counters.delivered), read(&counters.failed));
        let (reply, answer) = oneshot::channel();
        let remaining = if self.requests.send(Request::Flush(reply)).is_ok() {
            answer.await.ok()
        } else {
            None
        }
        .unwrap_or_else(|| self.shared.lock().len());
        FlushReport {
            delivered: read(&counters.delivered) - delivered,
            failed: read(&counters.failed) - failed,
            remaining,
        }
    }

    /// Stops taking events, sends what is queued (for at most `timeout`) and ends the sender
    /// task. Events left after `timeout` are counted as dropped.
    pub async fn shutdown(&self, timeout: Duration) -> FlushReport {
        self.shared.stopped.store(true, Ordering::Relaxed);
        let report = match tokio::time::timeout(timeout, self.flush()).await {
            Ok(report) => report,
            Err(_) => FlushReport {
                remaining: self.shared.lock().len(),
                ..FlushReport::default()
            },
        };
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
        let left = std::mem::take(&mut *self.shared.lock()).len();
        Counters::add(&self.shared.counters.dropped, left as u64);
        FlushReport {
            remaining: left,
            ..report
        }
    }

    /// Delivery so far, and the health it adds up to.
    pub fn metrics(&self) -> Metrics {
        self.shared.counters.snapshot(self.shared.lock().len())
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let waiting = self.shared.lock().len();
        if waiting > 0 && !self.shared.stopped.load(Ordering::Relaxed) {
            tracing::warn!(
                waiting,
                "sluice-tracker dropped with events queued: call `Tracker::shutdown` before exiting to send them"
            );
        }
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            task.abort();
        }
    }
}
