//! The metric segments table: the same columns on both backends (`BIGINT`/`INTEGER`
//! and `BYTEA`/`BLOB`), so one definition serves both.

use diesel::dsl::count_star;
use diesel::result::QueryResult;
use diesel::{ExpressionMethods, QueryDsl};

use super::NewSegment;
use crate::storage::run::{Run, Statement};
use crate::storage::{SegmentInfo, SegmentListing};
use metric_segments as s;

diesel::table! {
    /// One segment: some events of the hour starting at `hour_start` (unix seconds).
    metric_segments (id) {
        id -> BigInt,
        hour_start -> BigInt,
        events -> Integer,
        data -> Binary,
    }
}

/// The data of the segments of the hours starting in `[start, end)`, oldest hour first.
pub(crate) async fn load_segments<R: Run>(
    connection: &mut R,
    start: i64,
    end: i64,
) -> QueryResult<Vec<Vec<u8>>> {
    let query = s::table
        .filter(s::hour_start.ge(start))
        .filter(s::hour_start.lt(end))
        .order((s::hour_start, s::id))
        .select(s::data);
    connection.load(query).await
}

/// The [`SegmentInfo`]s a [`SegmentListing`] names.
pub(crate) async fn list_segments<R: Run>(
    connection: &mut R,
    listing: SegmentListing,
) -> QueryResult<Vec<SegmentInfo>> {
    let hours: Vec<i64> = match listing {
        SegmentListing::Hour(hour) => vec![hour],
        SegmentListing::Crowded => {
            let crowded = s::table
                .group_by(s::hour_start)
                .having(count_star().gt(1))
                .select(s::hour_start);
            connection.load(crowded).await?
        }
    };
    let mut infos = Vec::new();
    for hours in hours.chunks(500) {
        let query = s::table
            .filter(s::hour_start.eq_any(hours.to_vec()))
            .order((s::hour_start, s::id))
            .select((s::id, s::hour_start, s::events));
        let rows: Vec<(i64, i64, i32)> = connection.load(query).await?;
        infos.extend(
            rows.into_iter()
                .map(|(id, hour_start, events)| SegmentInfo {
                    id,
                    hour_start,
                    events,
                }),
        );
    }
    Ok(infos)
}

/// The data of the segments `ids` that exist.
pub(crate) async fn read_segments<R: Run>(
    connection: &mut R,
    ids: &[i64],
) -> QueryResult<Vec<Vec<u8>>> {
    let query = s::table.filter(s::id.eq_any(ids.to_vec())).select(s::data);
    connection.load(query).await
}

/// Stores `segments`, one statement each (a batch spans one or two hours).
pub(crate) async fn insert_segments<R: Run>(
    connection: &mut R,
    segments: &[NewSegment],
) -> QueryResult<()> {
    for segment in segments {
        connection.execute(insert_segment(segment)).await?;
    }
    Ok(())
}

/// The insert of one segment (owning a copy of its data, a few kilobytes: a statement that
/// borrows trips the compiler's proof that the write future is `Send`).
pub(crate) fn insert_segment(segment: &NewSegment) -> impl Statement + use<> {
    diesel::insert_into(s::table).values((
        s::hour_start.eq(segment.hour_start),
        s::events.eq(segment.events),
        s::data.eq(segment.data.clone()),
    ))
}

/// Deletes the segments `ids`; returns how many existed.
pub(crate) async fn delete_segments<R: Run>(connection: &mut R, ids: &[i64]) -> QueryResult<usize> {
    connection
        .execute(diesel::delete(s::table.filter(s::id.eq_any(ids.to_vec()))))
        .await
}
