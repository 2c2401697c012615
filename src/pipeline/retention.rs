//! Retention (`SLUICE_RETENTION_DAYS`, off by default): events that occurred longer ago than
//! the setting, and sessions last seen longer ago, are deleted on a timer.
//!
//! Deletes go in batches of [`DELETE_BATCH`] rows with a [`BATCH_PAUSE`] between them, so
//! the flusher's writes wait at most one small statement (on SQLite, whose single writer
//! lock a delete holds, that matters most) and a first sweep over years of events never
//! runs as one long transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::storage::{EventStore, Expiring, StorageError};

/// Rows deleted per statement.
pub const DELETE_BATCH: usize = 1_000;
/// The pause between two delete statements of one sweep.
pub const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// When retention runs and how far back it keeps.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Events older than this many days are deleted.
    pub days: u32,
    /// Time between two sweeps; the first runs at start.
    pub every: Duration,
}

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub events: usize,
    pub sessions: usize,
    /// Metric segments deleted, and whether the cutoff's hour was trimmed.
    pub segments: usize,
    pub trimmed: bool,
}

/// Deletes every event that occurred before `cutoff` and every session last seen before
/// it, in batches, and the same events from the metric segments.
pub async fn sweep(store: &dyn EventStore, cutoff: DateTime<Utc>) -> Result<Swept, StorageError> {
    let expire = |what| in_batches(move || store.delete_expired(what, cutoff, DELETE_BATCH));
    Ok(Swept {
        events: expire(Expiring::Events).await?,
        sessions: expire(Expiring::Sessions).await?,
        segments: expire(Expiring::MetricSegments).await?,
        trimmed: crate::storage::reports::compaction::trim(store, cutoff).await?,
    })
}

/// Runs `delete` until it deletes less than a batch, pausing between batches; the total.
async fn in_batches<F, D>(mut delete: D) -> Result<usize, StorageError>
where
    D: FnMut() -> F,
    F: std::future::Future<Output = Result<usize, StorageError>>,
{
    let mut total = 0;
    loop {
        let deleted = delete().await?;
        total += deleted;
        if deleted < DELETE_BATCH {
            return Ok(total);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// One sweep as of `now`, deleting what is older than `days`; a failure is logged and the next sweep tries again
/// (what it deleted before failing stays deleted).
pub async fn sweep_now(store: &dyn EventStore, now: DateTime<Utc>, days: u32) {
    let cutoff = now - chrono::Duration::days(i64::from(days));
    match sweep(store, cutoff).await {
        Ok(swept) if swept == Swept::default() => {
            tracing::debug!(%cutoff, "retention: nothing to delete");
        }
        Ok(swept) => tracing::info!(
            %cutoff,
            events = swept.events,
            sessions = swept.sessions,
            segments = swept.segments,
            "retention: deleted what is older than the retention period"
        ),
        Err(error) => {
            tracing::warn!(%error, %cutoff, "retention sweep failed; retrying at the next one")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::test_support::event;
    use crate::storage::MemoryStore;
    use crate::storage::roles::*;

    #[tokio::test]
    async fn a_sweep_deletes_only_what_is_older_than_the_cutoff_in_batches() {
        let store = Arc::new(MemoryStore::default());
        let now = Utc::now();
        let events: Vec<_> = (0..DELETE_BATCH + 5)
            .map(|n| {
                let mut old = event("page_viewed");
                old.occurred_at =
                    now - chrono::Duration::days(10) + chrono::Duration::seconds(n as i64);
                old
            })
            .chain(std::iter::once(event("page_viewed")))
            .collect();
        store.insert_events(&events).await.expect("insert");
        let swept = sweep(store.as_ref(), now - chrono::Duration::days(1))
            .await
            .expect("sweep");
        assert_eq!(swept.events, DELETE_BATCH + 5);
        assert_eq!(store.count_events().await.expect("count"), 1);
        let again = sweep(store.as_ref(), now - chrono::Duration::days(1))
            .await
            .expect("sweep");
        assert_eq!(again, Swept::default());
    }
}
