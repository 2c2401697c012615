//! The metric segments table: the same columns on both backends (`BIGINT`/`INTEGER`
//! and `BYTEA`/`BLOB`), so one definition serves both.

diesel::table! {
    /// One segment: some events of the hour starting at `hour_start` (unix seconds).
    metric_segments (id) {
        id -> BigInt,
        hour_start -> BigInt,
        events -> Integer,
        data -> Binary,
    }
}

/// The data of the segments of the hours starting in `[$start, $end)`, oldest hour first,
/// read on `$connection` (either backend's async connection).
macro_rules! load_segments {
    ($connection:expr, $start:expr, $end:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        use $crate::storage::metrics::schema::metric_segments as s;
        s::table
            .filter(s::hour_start.ge($start))
            .filter(s::hour_start.lt($end))
            .order((s::hour_start, s::id))
            .select(s::data)
            .load::<Vec<u8>>($connection)
            .await
    }};
}

/// The [`SegmentInfo`](crate::storage::SegmentInfo)s a
/// [`SegmentListing`](crate::storage::SegmentListing) names, read on `$connection`.
macro_rules! list_segments {
    ($connection:expr, $listing:expr) => {{
        use diesel::dsl::count_star;
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        use $crate::storage::metrics::schema::metric_segments as s;
        use $crate::storage::{SegmentInfo, SegmentListing};
        let connection = $connection;
        let hours: Vec<i64> = match $listing {
            SegmentListing::Hour(hour) => vec![hour],
            SegmentListing::Crowded => {
                s::table
                    .group_by(s::hour_start)
                    .having(count_star().gt(1))
                    .select(s::hour_start)
                    .load(&mut *connection)
                    .await?
            }
        };
        let mut infos = Vec::new();
        for hours in hours.chunks(500) {
            let rows: Vec<(i64, i64, i32)> = s::table
                .filter(s::hour_start.eq_any(hours))
                .order((s::hour_start, s::id))
                .select((s::id, s::hour_start, s::events))
                .load(&mut *connection)
                .await?;
            infos.extend(
                rows.into_iter()
                    .map(|(id, hour_start, events)| SegmentInfo {
                        id,
                        hour_start,
                        events,
                    }),
            );
        }
        Ok::<_, $crate::storage::StorageError>(infos)
    }};
}

/// The data of the segments `$ids` that exist, read on `$connection`.
macro_rules! read_segments {
    ($connection:expr, $ids:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        use $crate::storage::metrics::schema::metric_segments as s;
        s::table
            .filter(s::id.eq_any($ids))
            .select(s::data)
            .load::<Vec<u8>>($connection)
            .await
    }};
}

/// Stores `$segments` on `$connection` with `$run` (diesel's synchronous `execute` on
/// SQLite's blocking connection, diesel-async's on PostgreSQL).
macro_rules! insert_segments {
    ($connection:expr, $segments:expr, $run:path $(, $await:tt)?) => {{
        use diesel::ExpressionMethods;
        use $crate::storage::metrics::schema::metric_segments as s;
        let rows: Vec<_> = $segments
            .iter()
            .map(|segment| {
                (
                    s::hour_start.eq(segment.hour_start),
                    s::events.eq(segment.events),
                    s::data.eq(&segment.data),
                )
            })
            .collect();
        $run(diesel::insert_into(s::table).values(rows), $connection) $(.$await)?
    }};
}

/// Deletes the segments `$ids` on `$connection` with `$run`, like [`insert_segments!`].
macro_rules! delete_segments {
    ($connection:expr, $ids:expr, $run:path $(, $await:tt)?) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::storage::metrics::schema::metric_segments as s;
        $run(diesel::delete(s::table.filter(s::id.eq_any($ids))), $connection) $(.$await)?
    }};
}

pub(crate) use {delete_segments, insert_segments, list_segments, load_segments, read_segments};
