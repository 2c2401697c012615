//! Pipeline counters and the getStats report built from them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::Histogram;

use schemars::JsonSchema;
use serde::Serialize;

use crate::metrics::MetricsRegistry;
use crate::storage::{Backend, PoolStatus};

/// Live counters, updated without locks from the request path and the flusher, and the
/// distributions of the writes for `/metrics`.
#[derive(Debug)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub persisted: AtomicU64,
    /// Accepted events the database already held (a duplicate from another node or from
    /// before a restart), skipped at write time by the unique indexes.
    pub deduplicated_on_write: AtomicU64,
    pub duplicates: AtomicU64,
    pub replayed: AtomicU64,
    pub suppressed: AtomicU64,
    pub rejected: AtomicU64,
    pub flushes: AtomicU64,
    pub failed_flushes: AtomicU64,
    pub retries: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub consecutive_failures: AtomicU64,
    pub flush_micros_total: AtomicU64,
    pub is_processing: AtomicBool,
    /// Since when every write failed, and the last one's error; `None` after a success.
    failing: Mutex<Option<Failing>>,
    flush_duration: Histogram,
    flush_batch: Histogram,
}

#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    error: String,
}

/// How long every write must have failed before the node stops being ready (`/readyz`).
pub const WRITES_FAILING_FOR: Duration = Duration::from_secs(10);

impl Stats {
    /// Counters at zero, with the flush histograms in `metrics`.
    pub fn new(metrics: &MetricsRegistry) -> Self {
        let zero = AtomicU64::default;
        Self {
            accepted: zero(),
            persisted: zero(),
            deduplicated_on_write: zero(),
            duplicates: zero(),
            replayed: zero(),
            suppressed: zero(),
            rejected: zero(),
            flushes: zero(),
            failed_flushes: zero(),
            retries: zero(),
            dead_lettered: zero(),
            consecutive_failures: zero(),
            flush_micros_total: zero(),
            is_processing: AtomicBool::default(),
            failing: Mutex::default(),
            flush_duration: metrics.histogram(
                "sluice_flush_duration_seconds",
                "Duration of successful batch writes.",
                &[],
            ),
            flush_batch: metrics.histogram(
                "sluice_flush_batch_events",
                "Events per successful batch write.",
                &[],
            ),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn record_flush(&self, elapsed: Duration, written: u64, persisted: u64) {
        Self::add(&self.flushes, 1);
        Self::add(&self.persisted, persisted);
        Self::add(
            &self.deduplicated_on_write,
            written.saturating_sub(persisted),
        );
        Self::add(&self.flush_micros_total, elapsed.as_micros() as u64);
        self.flush_duration.record(elapsed.as_secs_f64());
        self.flush_batch.record(written as f64);
        if self.consecutive_failures.swap(0, Ordering::Relaxed) > 0 {
            *self.failing_lock() = None;
        }
    }

    /// A write that failed with `error` (the events stay buffered for the next attempt).
    pub fn record_failed_flush(&self, error: &impl std::fmt::Display) {
        Self::add(&self.failed_flushes, 1);
        Self::add(&self.consecutive_failures, 1);
        let mut failing = self.failing_lock();
        let since = failing
            .as_ref()
            .map_or_else(Instant::now, |failing| failing.since);
        *failing = Some(Failing {
            since,
            error: error.to_string(),
        });
    }

    /// The lock of `failing`; a panic elsewhere while it was held left a plain value behind.
    fn failing_lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why this node should not take traffic now, if it should not: its buffer is full (new
    /// events are refused), or every write has failed for [`WRITES_FAILING_FOR`].
    fn unavailable_reason(&self, buffer_size: usize, capacity: usize) -> Option<String> {
        let failing = self.failing_lock().clone();
        let cause = failing
            .as_ref()
            .map(|failing| format!(" (writes failing: {})", failing.error))
            .unwrap_or_default();
        if capacity > 0 && buffer_size >= capacity {
            return Some(format!("the event buffer is full{cause}"));
        }
        let failing = failing?;
        (failing.since.elapsed() >= WRITES_FAILING_FOR).then(|| {
            format!(
                "every write for {} s failed: {}",
                failing.since.elapsed().as_secs(),
                failing.error
            )
        })
    }
}

/// Overall state, from flush failures and buffer fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Critical,
}

/// The configuration getStats echoes.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsConfig {
    pub batch_size: usize,
    pub batch_timeout_ms: u64,
    pub enable_deduplication: bool,
    pub enable_enrichment: bool,
    pub deduplication_ttl_seconds: u64,
    pub buffer_capacity: usize,
}

/// Counter values at one moment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub accepted: u64,
    pub persisted: u64,
    pub deduplicated_on_write: u64,
    pub duplicates: u64,
    pub replayed: u64,
    pub suppressed: u64,
    pub rejected: u64,
    pub flushes: u64,
    pub failed_flushes: u64,
    pub retries: u64,
    pub dead_lettered: u64,
}

/// Pool state as getStats reports it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolReport {
    pub backend: Backend,
    #[serde(flatten)]
    pub status: PoolStatus,
}

/// The output of `eventIngestion.getStats`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsReport {
    pub buffer_size: usize,
    pub is_processing: bool,
    pub config: StatsConfig,
    pub counters: Counters,
    /// Mean duration of successful flushes, in milliseconds.
    pub average_flush_ms: f64,
    /// Share of accepted events already in the database, written now or found there already
    /// (1 when nothing was accepted).
    pub delivery_rate: f64,
    /// Share of flush attempts that failed (0 when none were made).
    pub failure_rate: f64,
    pub consecutive_flush_failures: u64,
    /// The error of the last write when writes are failing (the events wait in the buffer);
    /// null once one succeeds.
    pub write_error: Option<String>,
    /// Why the node is not ready (`/readyz` answers 503 with it): the buffer is full, or
    /// every write has failed for 10 s. Null when it is ready as far as the pipeline goes.
    pub unavailable_reason: Option<String>,
    pub health: Health,
    pub pool: PoolReport,
}

impl Stats {
    /// Builds the report; `buffer_size`/`buffer_capacity` and the pool come from their owners.
    pub fn report(&self, buffer_size: usize, config: StatsConfig, pool: PoolReport) -> StatsReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = Counters {
            accepted: load(&self.accepted),
            persisted: load(&self.persisted),
            deduplicated_on_write: load(&self.deduplicated_on_write),
            duplicates: load(&self.duplicates),
            replayed: load(&self.replayed),
            suppressed: load(&self.suppressed),
            rejected: load(&self.rejected),
            flushes: load(&self.flushes),
            failed_flushes: load(&self.failed_flushes),
            retries: load(&self.retries),
            dead_lettered: load(&self.dead_lettered),
        };
        let consecutive = load(&self.consecutive_failures);
        let ratio = |part: u64, whole: u64, empty: f64| {
            if whole == 0 {
                empty
            } else {
                part as f64 / whole as f64
            }
        };
        let fill = ratio(buffer_size as u64, config.buffer_capacity as u64, 0.0);
        let health = if consecutive >= 3 || fill >= super::buffer::CRITICAL_FILL {
            Health::Critical
        } else if consecutive >= 1 || fill >= 0.5 {
            Health::Degraded
        } else {
            Health::Healthy
        };
        let write_error = self
            .failing_lock()
            .as_ref()
            .map(|failing| failing.error.clone());
        let unavailable_reason = self.unavailable_reason(buffer_size, config.buffer_capacity);
        StatsReport {
            buffer_size,
            is_processing: self.is_processing.load(Ordering::Relaxed),
            average_flush_ms: ratio(load(&self.flush_micros_total), counters.flushes, 0.0) / 1000.0,
            delivery_rate: ratio(
                counters.persisted + counters.deduplicated_on_write,
                counters.accepted,
                1.0,
            )
            .min(1.0),
            failure_rate: ratio(
                counters.failed_flushes,
                counters.flushes + counters.failed_flushes,
                0.0,
            ),
            consecutive_flush_failures: consecutive,
            write_error,
            unavailable_reason,
            health,
            counters,
            config,
            pool,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stats: &Stats, buffer_size: usize) -> StatsReport {
        let config = StatsConfig {
            batch_size: 10,
            batch_timeout_ms: 100,
            enable_deduplication: true,
            enable_enrichment: true,
            deduplication_ttl_seconds: 60,
            buffer_capacity: 100,
        };
        let pool = PoolReport {
            backend: Backend::Memory,
            status: PoolStatus {
                max_size: 1,
                size: 1,
                available: 1,
                waiting: 0,
            },
        };
        stats.report(buffer_size, config, pool)
    }

    #[test]
    fn a_full_buffer_and_lasting_failures_say_why_the_node_is_not_ready() {
        let stats = Stats::new(&MetricsRegistry::new());
        assert_eq!(report(&stats, 0).unavailable_reason, None);
        stats.record_failed_flush(&"connection to the remote node refused");
        let failing = report(&stats, 50);
        assert_eq!(
            failing.write_error.as_deref(),
            Some("connection to the remote node refused")
        );
        assert_eq!(failing.unavailable_reason, None, "not for 10 s yet");
        let full = report(&stats, 100).unavailable_reason.expect("full");
        assert!(full.contains("buffer is full"), "{full}");
        assert!(full.contains("remote node refused"), "{full}");
        if let Some(failing) = stats.failing_lock().as_mut() {
            failing.since -= WRITES_FAILING_FOR;
        }
        let lasting = report(&stats, 50).unavailable_reason.expect("lasting");
        assert!(
            lasting.starts_with("every write for 10 s failed"),
            "{lasting}"
        );
        stats.record_flush(Duration::from_millis(1), 10, 10);
        let recovered = report(&stats, 0);
        assert_eq!(recovered.write_error, None);
        assert_eq!(recovered.unavailable_reason, None);
    }
}
