//! The retention deletes, one pair of statements for both SQL backends: the ids of at most
//! `limit` rows older than the cutoff, oldest first (through the time column's index), then
//! a delete of those ids, so that each delete holds its locks (SQLite's single writer lock
//! among them) only briefly.

/// What retention deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// Stored events, by when they occurred.
    Events,
    /// Analytics sessions, by when they were last seen.
    Sessions,
    /// Metric segments of the hours that ended by the cutoff (the hour the cutoff falls in
    /// is trimmed instead: `metrics::compaction::trim`).
    MetricSegments,
}

/// Deletes at most `$limit` rows of `$table` whose `$column` is before `$cutoff`, oldest
/// first, on `$connection`, whose backend reads the id column as `$id`; evaluates to the
/// rows deleted. (One `DELETE … WHERE id IN (SELECT … LIMIT …)` would need a table alias in
/// diesel, and SQLite's `DELETE … LIMIT` is a compile-time option.)
macro_rules! delete_before {
    ($table:path, $column:ident, $id:ty, $cutoff:expr, $limit:expr, $connection:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        use $table as table;
        let connection = $connection;
        let oldest: Vec<$id> = table::table
            .select(table::id)
            .filter(table::$column.lt($cutoff))
            .order(table::$column)
            .limit(i64::try_from($limit).unwrap_or(i64::MAX))
            .load(&mut *connection)
            .await?;
        if oldest.is_empty() {
            Ok(0)
        } else {
            diesel::delete(table::table.filter(table::id.eq_any(oldest)))
                .execute(&mut *connection)
                .await
        }
    }};
}

/// [`delete_before!`] of what expires, for a backend whose ids read as `$id`: events by
/// `occurred_at`, sessions by `last_seen_at`, metric segments by the hour they cover.
macro_rules! delete_expired {
    ($schema:path, $id:ty, $what:expr, $cutoff:expr, $limit:expr, $connection:expr) => {{
        use $schema as schema;
        match $what {
            $crate::storage::Expiring::Events => $crate::storage::retention::delete_before!(
                schema::events,
                occurred_at,
                $id,
                $cutoff,
                $limit,
                $connection
            ),
            $crate::storage::Expiring::Sessions => $crate::storage::retention::delete_before!(
                schema::sessions,
                last_seen_at,
                $id,
                $cutoff,
                $limit,
                $connection
            ),
            $crate::storage::Expiring::MetricSegments => {
                $crate::storage::retention::delete_before!(
                    $crate::storage::metrics::schema::metric_segments,
                    hour_start,
                    i64,
                    $crate::storage::metrics::segment::hour_of($cutoff),
                    $limit,
                    $connection
                )
            }
        }
    }};
}

pub(crate) use {delete_before, delete_expired};
