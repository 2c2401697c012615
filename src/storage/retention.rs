//! The retention deletes, one pair of statements for both SQL backends: the ids of at most
//! `limit` rows older than the cutoff, oldest first (through the time column's index), then
//! a delete of those ids, so that each delete holds its locks (SQLite's single writer lock
//! among them) only briefly.

use chrono::{DateTime, Utc};
use diesel::result::QueryResult;
use diesel::{ExpressionMethods, QueryDsl};
use uuid::Uuid;

use super::reports::schema::metric_segments;
use super::reports::segment;
use super::run::{Run, Statement};
use super::schema::types::Stored;
use super::schema::{events, sessions};

/// What retention deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// Stored events, by when they occurred.
    Events,
    /// Analytics sessions, by when they were last seen.
    Sessions,
    /// Metric segments of the hours that ended by the cutoff (the hour the cutoff falls in
    /// is trimmed instead: `reports::compaction::trim`).
    MetricSegments,
}

/// Deletes at most `limit` rows of `what` older than `cutoff`, oldest first, on
/// `connection`; returns how many. (One `DELETE … WHERE id IN (SELECT … LIMIT …)` would need
/// a table alias in diesel, and SQLite's `DELETE … LIMIT` is a compile-time option.)
pub(crate) async fn delete_expired<R: Run>(
    connection: &mut R,
    what: Expiring,
    cutoff: DateTime<Utc>,
    limit: usize,
) -> QueryResult<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    match what {
        Expiring::Events => {
            let oldest = events::table
                .select(events::id)
                .filter(events::occurred_at.lt(Stored(cutoff)))
                .order(events::occurred_at)
                .limit(limit);
            let ids: Vec<Uuid> = connection.load(oldest).await?;
            let ids: Vec<Stored<Uuid>> = ids.into_iter().map(Stored).collect();
            delete_ids(connection, ids, |ids| {
                diesel::delete(events::table.filter(events::id.eq_any(ids)))
            })
            .await
        }
        Expiring::Sessions => {
            let oldest = sessions::table
                .select(sessions::id)
                .filter(sessions::last_seen_at.lt(Stored(cutoff)))
                .order(sessions::last_seen_at)
                .limit(limit);
            let ids: Vec<Uuid> = connection.load(oldest).await?;
            let ids: Vec<Stored<Uuid>> = ids.into_iter().map(Stored).collect();
            delete_ids(connection, ids, |ids| {
                diesel::delete(sessions::table.filter(sessions::id.eq_any(ids)))
            })
            .await
        }
        Expiring::MetricSegments => {
            let ended = segment::hour_of(cutoff);
            let oldest = metric_segments::table
                .select(metric_segments::id)
                .filter(metric_segments::hour_start.lt(ended))
                .order(metric_segments::hour_start)
                .limit(limit);
            let ids: Vec<i64> = connection.load(oldest).await?;
            delete_ids(connection, ids, |ids| {
                diesel::delete(metric_segments::table.filter(metric_segments::id.eq_any(ids)))
            })
            .await
        }
    }
}

/// Runs the delete `of` the rows `ids`, unless there are none.
async fn delete_ids<R: Run, I, S: Statement>(
    connection: &mut R,
    ids: Vec<I>,
    of: impl FnOnce(Vec<I>) -> S,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    connection.execute(of(ids)).await
}
