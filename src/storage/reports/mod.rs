//! `getMetrics`, once for every backend. The write transaction of every batch also stores
//! its events' metric fields as compact per-hour [`segment`]s; a report reads only the
//! segments of its range (a few hundred blobs for 30 days, where the events are a million
//! rows) and `tally` folds them, exactly. Backends only store and return the blobs, so both
//! give the same answer by construction.
//!
//! An hour's segments are merged in the background ([`compaction`]); retention deletes the
//! segments of expired hours and trims the hour its cutoff falls in. Databases that held
//! events before segments existed get theirs once, at migration (`backfill`).
//!
//! The range is read in windows of `READ_WINDOW`, `READS_AHEAD` at a time, so memory
//! holds that many windows' segments and the distinct visitors and sessions of the range.

pub mod compaction;
mod funnel;
mod retention;
pub mod schema;
pub mod segment;
mod tally;
mod visits;

use chrono::{DateTime, Duration, Utc};
use diesel::result::QueryResult;
use uuid::Uuid;

use super::run::Run;
use super::schema::types::Stored;
use super::{Segments, StorageError};
use crate::domain::{
    Comparison, EventRecord, FunnelQuery, FunnelReport, MetricsQuery, MetricsReport,
    RetentionQuery, RetentionReport,
};
pub use segment::NewSegment;
use segment::{HOUR_SECONDS, Segment, SegmentEvent};

/// How much of the range one read covers.
pub(crate) const READ_WINDOW: Duration = Duration::hours(24);
/// Windows read at once: memory holds this many windows' segments.
const READS_AHEAD: usize = 2;
/// How much of the stored events one backfill read covers.
const BACKFILL_WINDOW: Duration = Duration::hours(6);

/// The event type that counts as a page view.
pub const PAGEVIEW_EVENT: &str = "page_viewed";

/// What metrics read of one event.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub occurred_at: DateTime<Utc>,
    pub event_type: String,
    pub path: Option<String>,
    pub referrer_host: Option<String>,
    pub utm_source: Option<String>,
    pub country: Option<String>,
    pub device_type: Option<String>,
    pub browser_name: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<Uuid>,
    pub is_bot: bool,
}

/// The columns of a [`MetricRow`] as `metric_rows_in` selects them.
type MetricColumns = (
    DateTime<Utc>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Uuid>,
    bool,
);

impl From<MetricColumns> for MetricRow {
    fn from(columns: MetricColumns) -> Self {
        Self {
            occurred_at: columns.0,
            event_type: columns.1,
            path: columns.2,
            referrer_host: columns.3,
            utm_source: columns.4,
            country: columns.5,
            device_type: columns.6,
            browser_name: columns.7,
            user_id: columns.8,
            session_id: columns.9,
            is_bot: columns.10,
        }
    }
}

/// The hour-aligned windows `[start, end)` (unix seconds of hour starts) the range
/// `[from, to)` is read in, oldest first.
pub(crate) fn read_windows(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(i64, i64)> {
    let step = READ_WINDOW.num_seconds();
    let end = to.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS + HOUR_SECONDS;
    let mut windows = Vec::new();
    let mut start = segment::hour_of(from);
    while start < end {
        windows.push((start, (start + step).min(end)));
        start += step;
    }
    windows
}

/// The [`MetricRow`]s of the events in `[start, end)`, bots included (flagged).
pub(crate) async fn metric_rows_in<R: Run>(
    connection: &mut R,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<MetricRow>> {
    use super::schema::events::dsl as e;
    use diesel::{ExpressionMethods, QueryDsl};
    let query = e::events
        .filter(e::occurred_at.ge(Stored(start)))
        .filter(e::occurred_at.lt(Stored(end)))
        .select((
            e::occurred_at,
            e::event_type,
            e::path,
            e::referrer_host,
            e::utm_source,
            e::country,
            e::device_type,
            e::browser_name,
            e::user_id,
            e::session_id,
            e::is_bot,
        ));
    let rows: Vec<MetricColumns> = connection.load(query).await?;
    Ok(rows.into_iter().map(MetricRow::from).collect())
}

/// The segments of the written events of a batch, one per hour, bots flagged. The fields
/// are borrowed from the events; only the page path is worked out.
pub(crate) fn segments_of_written(events: &[&EventRecord]) -> Vec<NewSegment> {
    let counted: Vec<(&EventRecord, Option<String>)> = events
        .iter()
        .map(|event| (*event, event.page_path()))
        .collect();
    segment::segments_of(counted.iter().map(|(event, path)| SegmentEvent {
        at: event.occurred_at,
        texts: [
            Some(event.event_type.as_str()),
            path.as_deref(),
            event.enrichment.referrer_host.as_deref(),
            event.attribution.utm_source.as_deref(),
            event.enrichment.country.as_deref(),
            event.enrichment.device_type.as_deref(),
            event.enrichment.browser_name.as_deref(),
            event.user_id.as_deref(),
        ],
        session: event.session_id,
        bot: event.enrichment.is_bot,
    }))
}

/// The report of `query` from `store`'s segments, read window by window.
pub(crate) async fn report<S: Segments + ?Sized>(
    store: &S,
    query: &MetricsQuery,
) -> Result<MetricsReport, StorageError> {
    let compared = query.compared();
    let mut main = tally::Tally::new(query);
    let mut other = compared.as_ref().map(tally::Tally::new);
    // Each tally skips the hours outside its range, so a segment read once serves both: one
    // read of both ranges when they touch, else one read each (older first).
    let spans = match &compared {
        Some(before) if before.to < query.from => {
            vec![(before.from, before.to), (query.from, query.to)]
        }
        Some(before) => vec![(before.from, query.to)],
        None => vec![(query.from, query.to)],
    };
    for (from, to) in spans {
        fold(store, from, to, |segment| {
            main.add(segment);
            if let Some(other) = other.as_mut() {
                other.add(segment);
            }
        })
        .await?;
    }
    let mut report = main.finish();
    report.comparison = compared.zip(other).map(|(before, tally)| {
        let figures = tally.finish();
        Comparison {
            from: before.from,
            to: before.to,
            totals: figures.totals,
            series: figures.series,
        }
    });
    Ok(report)
}

/// The retention cohorts of `query`, the same on every backend.
pub(crate) async fn retention<S: Segments + ?Sized>(
    store: &S,
    query: &RetentionQuery,
) -> Result<RetentionReport, StorageError> {
    let range = query.as_metrics_query();
    let mut tally = tally::Tally::with_retention(&range);
    fold(store, range.from, range.to, |segment| tally.add(segment)).await?;
    Ok(RetentionReport {
        from: query.from,
        to: query.to,
        period: query.period,
        cohorts: tally.into_cohorts(),
    })
}

/// The funnel of `query`, the same on every backend.
pub(crate) async fn funnel<S: Segments + ?Sized>(
    store: &S,
    query: &FunnelQuery,
) -> Result<FunnelReport, StorageError> {
    let range = query.as_metrics_query();
    let mut tally = tally::Tally::with_funnel(&range, query.funnel.clone());
    fold(store, range.from, range.to, |segment| tally.add(segment)).await?;
    let (steps, conversion_rate) = tally.into_funnel();
    Ok(FunnelReport {
        from: query.from,
        to: query.to,
        steps,
        conversion_rate,
    })
}

/// Reads the segments of `[from, to)` in order and hands each to `add`.
async fn fold<S: Segments + ?Sized>(
    store: &S,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut add: impl FnMut(&Segment<'_>),
) -> Result<(), StorageError> {
    use futures_util::{StreamExt, TryStreamExt};
    // The next window is read (on another pooled connection) while this one is folded.
    let mut windows = futures_util::stream::iter(read_windows(from, to))
        .map(|(start, end)| store.metric_segments(start, end))
        .buffered(READS_AHEAD);
    while let Some(blobs) = windows.try_next().await? {
        let segments = blobs
            .iter()
            .map(|blob| Segment::decode(blob))
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        // The fold needs hours in order, as `metric_segments` returns them.
        debug_assert!(segments.is_sorted_by_key(|segment| segment.hour_start));
        for segment in &segments {
            add(segment);
        }
    }
    Ok(())
}

/// A segment that does not decode, as a storage error.
pub(crate) fn corrupt(error: segment::CorruptSegment) -> StorageError {
    StorageError::Query(diesel::result::Error::DeserializationError(Box::new(error)))
}

/// Encodes the events stored before segments existed, once: when the migration that added
/// segments left its marker, and this caller is the one to take it away. Runs inside the
/// caller's transaction, which must not see events committed after it began (SQLite's
/// write lock, PostgreSQL's REPEATABLE READ): those were written with their segments.
/// Returns how many events were encoded.
pub(crate) async fn backfill<W: super::write::BatchWriter>(writer: &mut W) -> QueryResult<usize> {
    let connection = writer.connection();
    let claim = diesel::sql_query(CLAIM_BACKFILL);
    if connection.execute(claim).await? == 0 {
        return Ok(0);
    }
    let Some((first, last)) = event_span(connection).await? else {
        return Ok(0);
    };
    let mut encoded = 0;
    let mut start = DateTime::from_timestamp(segment::hour_of(first), 0).unwrap_or(first);
    while start <= last {
        let end = start + BACKFILL_WINDOW;
        let rows = metric_rows_in(connection, start, end).await?;
        encoded += rows.len();
        let segments = segment::segments_of(rows.iter().map(SegmentEvent::of_row));
        schema::insert_segments(connection, &segments).await?;
        start = end;
    }
    if encoded > 0 {
        tracing::info!(
            events = encoded,
            "metrics: encoded the events stored before segments"
        );
    }
    Ok(encoded)
}

/// Replaces the segments `ids` by `with`, through `writer` inside a transaction. When some
/// of them are gone (another compactor, or retention, got there first and its result
/// stands) it fails with `RollbackTransaction`, which [`replaced`] reads as "not replaced".
pub(crate) async fn replace_segments<W: super::write::BatchWriter>(
    writer: &mut W,
    ids: &[i64],
    with: Option<&NewSegment>,
) -> QueryResult<()> {
    let connection = writer.connection();
    if schema::delete_segments(connection, ids).await? != ids.len() {
        return Err(diesel::result::Error::RollbackTransaction);
    }
    if let Some(segment) = with {
        connection.execute(schema::insert_segment(segment)).await?;
    }
    Ok(())
}

/// Whether a [`replace_segments`] transaction replaced them.
pub(crate) fn replaced(result: Result<usize, StorageError>) -> Result<bool, StorageError> {
    match result {
        Ok(_) => Ok(true),
        Err(StorageError::Query(diesel::result::Error::RollbackTransaction)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// When the first and last stored event occurred, through the index on `occurred_at`.
pub(crate) async fn event_span<R: Run>(
    connection: &mut R,
) -> QueryResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    use super::schema::events::dsl as e;
    use diesel::{ExpressionMethods, QueryDsl};
    let times = e::events.select(e::occurred_at).limit(1);
    let first = connection.first(times.order(e::occurred_at.asc())).await?;
    let last = connection.first(times.order(e::occurred_at.desc())).await?;
    Ok(first.zip(last))
}

/// Takes away the marker the segments migration leaves (the same SQL on both backends).
pub(crate) const CLAIM_BACKFILL: &str = "DELETE FROM metric_segments_backfill";
