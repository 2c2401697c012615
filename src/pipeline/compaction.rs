//! Runs metric-segment compaction (`storage::reports::compaction`) on a timer, so that a
//! report decodes a few segments per hour rather than one per written batch.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::storage::EventStore;

/// Time between two compaction passes.
pub const EVERY: Duration = Duration::from_secs(10);

/// One compaction pass as of `now`; a failure is logged and the next pass tries
/// again (a merge either replaced its segments or changed nothing).
pub async fn pass(store: &dyn EventStore, now: DateTime<Utc>) {
    match store.compact_metric_segments(now).await {
        Ok(compacted) if compacted.merged > 0 => tracing::debug!(
            merged = compacted.merged,
            written = compacted.written,
            "metrics: merged segments"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "metrics: segment compaction failed; retrying"),
    }
}
