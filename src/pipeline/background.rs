//! The node's timed background work — metric-segment compaction, retention, the consent
//! refresh, the upkeep of the Prometheus histograms — under one cancellation token and task tracker, so that shutdown stops it for
//! real instead of aborting it.
//!
//! Aborting a task cannot stop work it handed to the blocking pool (SQLite's statements, a
//! segment merge): the final drain could then wait behind it, and a panic in the task went
//! unseen. Here a pass in progress always finishes; [`Background::stop`] cancels the timers,
//! waits (with a bound) for the passes under way, and only then does the server drain its
//! buffer. Each task logs its end, and a pass that panics is logged and the task goes on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Pipeline;
use super::retention::RetentionSettings;
use super::{compaction, consent, retention};

/// How long shutdown waits for background passes under way before it drains anyway.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the values recorded into histograms are folded in, so that they stay few
/// between scrapes, or when nobody scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The background tasks of one node.
#[derive(Default)]
pub struct Background {
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `pass` every `every` (the first at once) until [`Background::stop`].
    pub fn every<F, Fut>(&self, name: &'static str, every: Duration, mut pass: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    _ = timer.tick() => {}
                }
                if AssertUnwindSafe(pass()).catch_unwind().await.is_err() {
                    tracing::error!(
                        task = name,
                        "background pass panicked; the next runs on time"
                    );
                }
            }
            tracing::info!(task = name, "background task stopped");
        });
    }

    /// Cancels every task and waits up to `bound` for the passes under way to finish;
    /// whether they all did.
    pub async fn stop(self, bound: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        let ended = tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_ok();
        if !ended {
            tracing::warn!(
                tasks = self.tracker.len(),
                "background work did not finish in time; draining anyway"
            );
        }
        ended
    }
}

/// Starts the node's timed work: segment compaction, retention when it is configured, the
/// upkeep of the Prometheus histograms, and the refresh of consent decisions made on other
/// nodes.
pub fn start_node_work(
    pipeline: &Arc<Pipeline>,
    retention: Option<RetentionSettings>,
) -> Background {
    let background = Background::new();
    let node = pipeline.clone();
    background.every("compaction", compaction::EVERY, move || {
        let node = node.clone();
        async move { compaction::pass(node.store().as_ref(), node.now()).await }
    });
    if let Some(settings) = retention {
        let node = pipeline.clone();
        background.every("retention", settings.every, move || {
            let node = node.clone();
            async move { retention::sweep_now(node.store().as_ref(), node.now(), settings.days).await }
        });
    }
    let node = pipeline.clone();
    background.every("metrics upkeep", METRICS_UPKEEP_EVERY, move || {
        let node = node.clone();
        async move { node.metrics().run_upkeep() }
    });
    let node = pipeline.clone();
    background.every("consent refresh", consent::REFRESH_EVERY, move || {
        let node = node.clone();
        async move {
            if let Err(error) = node.refresh_consents().await {
                tracing::warn!(%error, "could not refresh consent decisions");
            }
        }
    });
    background
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A pass under way when the server stops runs to its end; no pass starts after.
    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_the_pass_under_way_and_starts_no_other() {
        let (started, finished) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let background = Background::new();
        let (s, f) = (started.clone(), finished.clone());
        background.every("slow", Duration::from_secs(1), move || {
            let (s, f) = (s.clone(), f.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                f.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "a second pass is under way"
        );
        assert!(background.stop(Duration::from_secs(5)).await);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            2,
            "it finished before stop returned"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(started.load(Ordering::SeqCst), 2, "none started after");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_that_panics_is_logged_and_the_task_goes_on() {
        let passes = Arc::new(AtomicU32::new(0));
        let background = Background::new();
        let counted = passes.clone();
        background.every("flaky", Duration::from_secs(1), move || {
            let counted = counted.clone();
            async move {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first pass fails");
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 3);
        assert!(background.stop(Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_that_overruns_the_bound_does_not_hold_shutdown() {
        let background = Background::new();
        background.every("stuck", Duration::from_secs(1), || {
            std::future::pending::<()>()
        });
        tokio::task::yield_now().await;
        assert!(!background.stop(Duration::from_secs(2)).await);
    }
}
