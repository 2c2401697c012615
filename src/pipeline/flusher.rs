//! The flusher: one task that moves events from the buffer to storage in batches.
//!
//! It writes when a batch fills (`batch_size`), when the batch timer fires (`batch_timeout`),
//! when asked (forceFlush), and once more on shutdown until the buffer is empty. A failed write
//! puts the batch back in front of the buffer and retries with exponential backoff and jitter;
//! nothing acknowledged is dropped while the process lives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use uuid::Uuid;

use super::buffer::Buffer;
use super::durability::Waiters;
use super::stats::Stats;
use crate::domain::EventRecord;
use crate::storage::{EventStore, StorageError};

/// Events waiting that trigger a write, by default.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Longest an accepted event waits before a write, by default, in milliseconds.
pub const DEFAULT_BATCH_TIMEOUT_MS: u64 = 10_000;
/// How long shutdown keeps retrying to write buffered events, by default, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: u64 = 30;

/// The most events one write takes. `batch_size` says when to write, not how much: with a
/// backlog waiting, one transaction of up to this many rows costs far less per row than
/// writes of `batch_size` each (fewer commits, statements and fsyncs), and it stays short
/// (tens of milliseconds) so that a durable caller never waits long behind it.
pub const MAX_WRITE_EVENTS: usize = 2_000;

/// How the flusher paces itself.
#[derive(Debug, Clone)]
pub struct FlushSettings {
    pub batch_size: usize,
    pub batch_timeout: Duration,
    /// First retry delay after a failed write; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long shutdown keeps retrying before it gives up on what is left.
    pub shutdown_timeout: Duration,
}

/// What one flush wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Events taken from the buffer and written (or found already written).
    pub flushed: usize,
    /// Rows newly inserted.
    pub persisted: usize,
    /// Events still buffered afterwards.
    pub remaining: usize,
}

/// A flush that stopped on a storage error; its events are back in the buffer.
#[derive(Debug, thiserror::Error)]
#[error("{source} (persisted {persisted} before the failure; {remaining} events remain buffered)")]
pub struct FlushError {
    pub persisted: usize,
    pub remaining: usize,
    #[source]
    pub source: StorageError,
}

pub(super) enum Command {
    Flush(oneshot::Sender<Result<FlushReport, FlushError>>),
    Shutdown(oneshot::Sender<FlushReport>),
}

pub(super) struct Flusher {
    pub buffer: Arc<Buffer>,
    pub waiters: Arc<Waiters>,
    pub store: Arc<dyn EventStore>,
    pub stats: Arc<Stats>,
    pub settings: FlushSettings,
}

impl Flusher {
    pub async fn run(self, mut commands: mpsc::Receiver<Command>) {
        let mut timer = tokio::time::interval(self.settings.batch_timeout);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        timer.reset();
        let mut backoff = Backoff::new(&self.settings);
        let mut retry_at: Option<Instant> = None;
        loop {
            let backing_off = retry_at.is_some();
            let outcome = tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Flush(reply)) => {
                        let outcome = self.flush_all().await;
                        let failed = outcome.is_err();
                        let _ = reply.send(outcome);
                        failed
                    }
                    Some(Command::Shutdown(reply)) => {
                        let _ = reply.send(self.drain(&mut backoff).await);
                        return;
                    }
                    None => {
                        self.drain(&mut backoff).await;
                        return;
                    }
                },
                () = self.buffer.batch_ready(), if !backing_off => {
                    self.flush_full_batches().await.is_err()
                }
                _ = timer.tick(), if !backing_off => self.flush_all().await.is_err(),
                // No linger: durable events that arrive while a commit runs share the next
                // one, so the batch grows with the load and an idle server answers at once.
                () = self.waiters.arrived(), if !backing_off => self.flush_all().await.is_err(),
                () = sleep_until(retry_at), if backing_off => {
                    Stats::add(&self.stats.retries, 1);
                    self.flush_all().await.is_err()
                }
            };
            retry_at = if outcome {
                Some(Instant::now() + backoff.next_delay())
            } else {
                backoff.reset();
                None
            };
        }
    }

    /// Writes whole batches while there are any, leaving a partial batch for the timer.
    async fn flush_full_batches(&self) -> Result<FlushReport, FlushError> {
        let mut total = FlushReport::default();
        while self.buffer.has_full_batch() {
            total = self.flush_batches(total, false).await?;
        }
        total.remaining = self.buffer.len();
        Ok(total)
    }

    /// Writes everything buffered, batch by batch.
    pub async fn flush_all(&self) -> Result<FlushReport, FlushError> {
        self.flush_batches(FlushReport::default(), true).await
    }

    async fn flush_batches(
        &self,
        mut total: FlushReport,
        until_empty: bool,
    ) -> Result<FlushReport, FlushError> {
        loop {
            let batch = self
                .buffer
                .take(self.settings.batch_size.max(MAX_WRITE_EVENTS));
            if batch.is_empty() {
                break;
            }
            self.stats.is_processing.store(true, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let mut dead_lettered = Vec::new();
            let written = self
                .write_isolating_poison(&batch, &mut dead_lettered)
                .await;
            self.stats.is_processing.store(false, Ordering::Relaxed);
            match written {
                Ok(persisted) => {
                    self.stats.record_flush(
                        started.elapsed(),
                        batch.len() as u64,
                        persisted as u64,
                    );
                    tracing::debug!(events = batch.len(), persisted, "flushed batch");
                    self.buffer.written(batch.len());
                    self.waiters
                        .complete(batch.iter().map(|event| event.id), &dead_lettered);
                    total.flushed += batch.len();
                    total.persisted += persisted;
                }
                Err(source) => {
                    self.stats.record_failed_flush(&source);
                    let events = batch.len();
                    self.buffer.requeue_front(batch);
                    tracing::error!(events, error = %source, tag = source.tag(), "flush failed; events kept for retry");
                    return Err(FlushError {
                        persisted: total.persisted,
                        remaining: self.buffer.len(),
                        source,
                    });
                }
            }
            if !until_empty {
                break;
            }
        }
        total.remaining = self.buffer.len();
        Ok(total)
    }

    /// Writes `batch`. When the database refuses the data itself, the batch is split in halves
    /// until the refused row is alone; that row goes to the dead-letter table with its error
    /// and every other row is written. Errors that retrying can fix are returned as they are.
    async fn write_isolating_poison(
        &self,
        batch: &[EventRecord],
        dead_lettered: &mut Vec<(Uuid, String)>,
    ) -> Result<usize, StorageError> {
        match self.store.insert_events(batch).await {
            Err(error) if error.is_data_error() => {
                if let [event] = batch {
                    tracing::error!(event_id = %event.id, error = %error, "database refused an event; dead-lettered");
                    self.store.dead_letter(event, &error.to_string()).await?;
                    Stats::add(&self.stats.dead_lettered, 1);
                    dead_lettered.push((event.id, error.to_string()));
                    return Ok(0);
                }
                let (left, right) = batch.split_at(batch.len() / 2);
                let left = Box::pin(self.write_isolating_poison(left, dead_lettered)).await?;
                let right = Box::pin(self.write_isolating_poison(right, dead_lettered)).await?;
                Ok(left + right)
            }
            other => other,
        }
    }

    /// Flushes until the buffer is empty, retrying with backoff up to the shutdown timeout.
    async fn drain(&self, backoff: &mut Backoff) -> FlushReport {
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        let mut total = FlushReport::default();
        loop {
            match self.flush_all().await {
                Ok(report) => {
                    total.flushed += report.flushed;
                    total.persisted += report.persisted;
                    total.remaining = report.remaining;
                    return total;
                }
                Err(error) => {
                    total.persisted += error.persisted;
                    total.remaining = error.remaining;
                    let delay = backoff.next_delay();
                    if Instant::now() + delay > deadline {
                        tracing::error!(
                            lost = error.remaining,
                            error = %error.source,
                            "shutdown timeout reached with events still buffered; they are lost"
                        );
                        return total;
                    }
                    Stats::add(&self.stats.retries, 1);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// Exponential backoff with full jitter in the upper half, so that many nodes that lost the
/// same database do not retry in lockstep.
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(settings: &FlushSettings) -> Self {
        Self {
            initial: settings.initial_backoff,
            max: settings.max_backoff,
            current: settings.initial_backoff,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use crate::domain::Caller;
    use crate::pipeline::clock::SystemClock;
    use crate::pipeline::{Pipeline, PipelineConfig, PipelineError};
    use crate::storage::MemoryStore;
    use crate::storage::roles::*;

    fn config(batch_size: usize, capacity: usize) -> PipelineConfig {
        let mut config = PipelineConfig::default();
        config.flush.batch_size = batch_size;
        config.buffer_capacity = capacity;
        config.flush.shutdown_timeout = Duration::from_secs(5);
        config
    }

    fn start(
        config: PipelineConfig,
    ) -> (Arc<Pipeline>, super::super::FlusherHandle, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::default());
        let (pipeline, flusher) = Pipeline::start(config, store.clone(), Arc::new(SystemClock));
        (pipeline, flusher, store)
    }

    async fn track(pipeline: &Pipeline) -> Result<uuid::Uuid, PipelineError> {
        let valid = pipeline
            .validate(
                Some(json!({"eventType": "page_viewed", "props": {"n": uuid::Uuid::now_v7()}})),
                pipeline.now(),
                &Caller::Anonymous,
            )
            .expect("valid");
        pipeline
            .accept(valid, &Caller::Anonymous, &Default::default())
            .await
            .map(|output| output.event_id.expect("id"))
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_flushes_after_batch_timeout_and_not_before() {
        let (pipeline, _flusher, store) = start(config(100, 1000));
        track(&pipeline).await.expect("accepted");
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert_eq!(store.events().len(), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.events().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_buffer_refuses_instead_of_growing() {
        let (pipeline, _flusher, store) = start(config(2, 2));
        store.set_unavailable(true);
        track(&pipeline).await.expect("first");
        track(&pipeline).await.expect("second");
        tokio::task::yield_now().await;
        let refused = track(&pipeline).await;
        assert!(
            matches!(refused, Err(PipelineError::BufferFull(_))),
            "{refused:?}"
        );
        assert_eq!(pipeline.stats().counters.accepted, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_keeps_events_and_retries_with_backoff() {
        let (pipeline, flusher, store) = start(config(100, 1000));
        store.set_unavailable(true);
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(track(&pipeline).await.expect("accepted"));
        }
        let failed = pipeline.force_flush().await;
        assert!(
            matches!(failed, Err(PipelineError::FlushFailed(_))),
            "{failed:?}"
        );
        assert_eq!(pipeline.buffer_len(), 3, "a failed flush keeps every event");
        let stats = pipeline.stats();
        assert_eq!(stats.counters.failed_flushes, 1);
        assert_eq!(stats.health, crate::pipeline::stats::Health::Degraded);

        store.set_unavailable(false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stored: Vec<_> = store.events().into_iter().map(|event| event.id).collect();
        assert_eq!(stored, ids, "retried in order once the store is back");
        assert!(pipeline.stats().counters.retries >= 1);
        assert_eq!(
            pipeline.stats().health,
            crate::pipeline::stats::Health::Healthy
        );
        assert_eq!(flusher.shutdown().await.remaining, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_retries_then_reports_what_it_could_not_write() {
        let (pipeline, flusher, store) = start(config(100, 1000));
        store.set_unavailable(true);
        track(&pipeline).await.expect("accepted");
        track(&pipeline).await.expect("accepted");
        let report = flusher.shutdown().await;
        assert_eq!(report.remaining, 2);
        assert_eq!(store.count_events().await.ok(), None);
        assert!(
            pipeline.stats().counters.retries >= 1,
            "shutdown retried before giving up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn forced_flushes_after_shutdown_are_refused() {
        let (pipeline, flusher, _store) = start(config(100, 1000));
        flusher.shutdown().await;
        assert!(matches!(
            pipeline.force_flush().await,
            Err(PipelineError::ShuttingDown)
        ));
    }
}
