//! Runs metric-segment compaction (`storage::metrics::compaction`) on a timer, so that a
//! report decodes a few segments per hour rather than one per written batch.

use std::sync::Arc;
use std::time::Duration;

use super::clock::Clock;
use crate::storage::EventStore;

/// Time between two compaction passes.
pub const EVERY: Duration = Duration::from_secs(10);

/// Compacts every `every` until aborted; a failed pass is logged and tried again at the
/// next tick (a merge either replaced its segments or changed nothing).
pub async fn run(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>, every: Duration) {
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        match store.compact_metric_segments(clock.now()).await {
            Ok(compacted) if compacted.merged > 0 => tracing::debug!(
                merged = compacted.merged,
                written = compacted.written,
                "metrics: merged segments"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "metrics: segment compaction failed; retrying"),
        }
    }
}
