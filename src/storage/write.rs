//! The write transaction of a batch, once for every database: read the opt-outs of the
//! batch's subjects, insert the other events in statements of at most
//! [`BatchWriter::ROWS_PER_STATEMENT`] rows, fold the rows written into one row per session and upsert
//! those, and store the written rows' metric segments. Each backend supplies only the
//! statements, in its dialect, as a [`BatchWriter`] over a connection already inside a
//! transaction; the metric segments' other transactions (compaction, backfill) use it too.

use std::collections::HashSet;

use diesel::result::QueryResult;
use uuid::Uuid;

use super::metrics::{self, MetricRow, NewSegment};
use super::{FollowUps, ROWS_PER_STATEMENT, SessionRecord, sessions};
use crate::domain::{ConsentSubject, EventRecord};
use chrono::{DateTime, Utc};

/// The statements of a batch write, on one connection inside its transaction.
pub(crate) trait BatchWriter {
    /// The most rows one insert or upsert statement of this writer takes.
    const ROWS_PER_STATEMENT: usize = ROWS_PER_STATEMENT;

    /// The subjects among `subject_ids` (session and user ids) that opted out.
    async fn opted_out_among(&mut self, subject_ids: &[String])
    -> QueryResult<Vec<ConsentSubject>>;

    /// Inserts `events` (at most [`BatchWriter::ROWS_PER_STATEMENT`]), skipping those whose id,
    /// fingerprint or idempotency key is stored; returns the ids of the rows written.
    async fn insert(&mut self, events: &[&EventRecord]) -> QueryResult<Vec<Uuid>>;

    /// Upserts `rows` (at most [`BatchWriter::ROWS_PER_STATEMENT`]) with the rules of
    /// [`SessionRecord::merge`].
    async fn upsert_sessions(&mut self, rows: &[SessionRecord]) -> QueryResult<()>;

    /// Stores metric segments.
    async fn insert_segments(&mut self, segments: &[NewSegment]) -> QueryResult<()>;

    /// Upserts `sessions` (at most [`BatchWriter::ROWS_PER_STATEMENT`]) and stores `segments`: the two
    /// last statements of a batch, which depend on the rows written but not on each other,
    /// so a backend that can send both at once (PostgreSQL's pipelining) saves a round trip
    /// on every batch.
    async fn upsert_sessions_and_insert_segments(
        &mut self,
        sessions: &[SessionRecord],
        segments: &[NewSegment],
    ) -> QueryResult<()> {
        if !sessions.is_empty() {
            self.upsert_sessions(sessions).await?;
        }
        if !segments.is_empty() {
            self.insert_segments(segments).await?;
        }
        Ok(())
    }

    /// Deletes the metric segments `ids`; returns how many existed.
    async fn delete_segments(&mut self, ids: &[i64]) -> QueryResult<usize>;

    /// Takes away the marker the segments migration left; whether there was one.
    async fn claim_backfill(&mut self) -> QueryResult<bool>;

    /// When the first and the last stored event (bots aside) occurred.
    async fn event_span(&mut self) -> QueryResult<Option<(DateTime<Utc>, DateTime<Utc>)>>;

    /// The metric rows of the stored events in `[start, end)`, bots aside.
    async fn metric_rows_in(
        &mut self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> QueryResult<Vec<MetricRow>>;
}

/// Writes `batch` (whose [`FollowUps`] the caller has worked out) through `writer`;
/// returns how many events were newly written.
pub(crate) async fn write_batch<W: BatchWriter>(
    writer: &mut W,
    batch: &[EventRecord],
    follow_ups: FollowUps,
) -> QueryResult<usize> {
    let opted_out = if follow_ups.consent_check {
        writer.opted_out_among(&super::subject_ids(batch)).await?
    } else {
        Vec::new()
    };
    let rows = super::without_opted_out(batch, &opted_out);
    let mut ids = HashSet::with_capacity(rows.len());
    let per_statement = W::ROWS_PER_STATEMENT;
    for chunk in rows.chunks(per_statement) {
        ids.extend(writer.insert(chunk).await?);
    }
    let written = super::written(&rows, &ids);
    let sessions = if follow_ups.session_upsert {
        sessions::fold(written.iter().copied())
    } else {
        Vec::new()
    };
    let segments = metrics::segments_of_written(&written);
    // All session chunks but the last alone; the last with the segments.
    let last = sessions.len().saturating_sub(1) / per_statement * per_statement;
    for chunk in sessions[..last].chunks(per_statement) {
        writer.upsert_sessions(chunk).await?;
    }
    writer
        .upsert_sessions_and_insert_segments(&sessions[last..], &segments)
        .await?;
    Ok(ids.len())
}
