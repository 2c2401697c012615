//! Delivery counters and the tracker's health.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The tracker's counters, shared with its sender task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub sends: AtomicU64,
    pub send_micros: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Keeps the latest error Sluice or the network gave, for [`Metrics::last_error`].
    pub fn note_error(&self, error: String) {
        tracing::debug!(%error, "sluice-tracker send");
        *self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
    }

    pub fn sent(&self, took: Duration) {
        Self::add(&self.sends, 1);
        Self::add(&self.send_micros, took.as_micros() as u64);
    }

    pub fn snapshot(&self, queue_size: usize) -> Metrics {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (delivered, failed, dropped) = (
            read(&self.delivered),
            read(&self.failed),
            read(&self.dropped),
        );
        let settled = delivered + failed + dropped;
        let (delivery_rate, failure_rate) = if settled == 0 {
            (1.0, 0.0)
        } else {
            (
                delivered as f64 / settled as f64,
                (failed + dropped) as f64 / settled as f64,
            )
        };
        let sends = read(&self.sends);
        let average_send_time = read(&self.send_micros)
            .checked_div(sends)
            .map_or(Duration::ZERO, Duration::from_micros);
        Metrics {
            queued: read(&self.queued),
            delivered,
            failed,
            dropped,
            queue_size,
            average_send_time,
            delivery_rate,
            failure_rate,
            health: Health::of(delivery_rate, failure_rate, queue_size),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}

/// What the tracker has done so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Events handed to [`Tracker::track`](crate::Tracker::track).
    pub queued: u64,
    /// Events Sluice answered `fulfilled` (accepted, or a duplicate it already had).
    pub delivered: u64,
    /// Events Sluice refused (validation, auth), or that kept failing past the retries.
    pub failed: u64,
    /// Events dropped unsent: the oldest when the queue was full, or tracked after shutdown.
    pub dropped: u64,
    /// Events waiting now.
    pub queue_size: usize,
    /// Mean time of one `trackBatch` call, failures included.
    pub average_send_time: Duration,
    /// delivered / (delivered + failed + dropped); 1 before anything settled.
    pub delivery_rate: f64,
    /// (failed + dropped) / (delivered + failed + dropped); 0 before anything settled.
    pub failure_rate: f64,
    pub health: Health,
    /// The latest error: a refused event's, or why a send failed.
    pub last_error: Option<String>,
}

/// How well delivery goes, from the rates over settled events and the queue's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Over 99 % delivered, under 1 % failed, fewer than 100 waiting.
    Healthy,
    /// Over 95 % delivered, under 5 % failed, fewer than 500 waiting.
    Degraded,
    /// Anything worse.
    Critical,
}

impl Health {
    pub fn of(delivery_rate: f64, failure_rate: f64, queue_size: usize) -> Self {
        if delivery_rate > 0.99 && failure_rate < 0.01 && queue_size < 100 {
            Self::Healthy
        } else if delivery_rate > 0.95 && failure_rate < 0.05 && queue_size < 500 {
            Self::Degraded
        } else {
            Self::Critical
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_delivery_thresholds() {
        assert_eq!(Health::of(1.0, 0.0, 0), Health::Healthy);
        assert_eq!(Health::of(0.995, 0.005, 99), Health::Healthy);
        assert_eq!(Health::of(0.995, 0.005, 100), Health::Degraded);
        assert_eq!(Health::of(0.98, 0.02, 10), Health::Degraded);
        assert_eq!(
            Health::of(0.99, 0.01, 10),
            Health::Degraded,
            "the bounds are strict"
        );
        assert_eq!(Health::of(0.96, 0.04, 500), Health::Critical);
        assert_eq!(Health::of(0.9, 0.1, 0), Health::Critical);
    }

    #[test]
    fn rates_count_every_settled_event() {
        let counters = Counters::default();
        assert_eq!(counters.snapshot(0).delivery_rate, 1.0);
        Counters::add(&counters.delivered, 97);
        Counters::add(&counters.failed, 2);
        Counters::add(&counters.dropped, 1);
        let metrics = counters.snapshot(3);
        assert!((metrics.delivery_rate - 0.97).abs() < 1e-9);
        assert!((metrics.failure_rate - 0.03).abs() < 1e-9);
        assert_eq!(metrics.health, Health::Degraded);
    }
}
