//! The write transaction of a batch, once for every database: read the opt-outs of the
//! batch's subjects, insert the other events in statements of at most
//! [`ROWS_PER_STATEMENT`] rows, fold the rows written into one row per session and upsert
//! those. Each backend supplies only the three statements, in its dialect, as a
//! [`BatchWriter`] over a connection already inside a transaction.

use std::collections::HashSet;

use diesel::result::QueryResult;
use uuid::Uuid;

use super::{FollowUps, ROWS_PER_STATEMENT, SessionRecord, sessions};
use crate::domain::{ConsentSubject, EventRecord};

/// The statements of a batch write, on one connection inside its transaction.
pub(crate) trait BatchWriter {
    /// The subjects among `subject_ids` (session and user ids) that opted out.
    async fn opted_out_among(&mut self, subject_ids: &[String])
    -> QueryResult<Vec<ConsentSubject>>;

    /// Inserts `events` (at most [`ROWS_PER_STATEMENT`]), skipping those whose id,
    /// fingerprint or idempotency key is stored; returns the ids of the rows written.
    async fn insert(&mut self, events: &[&EventRecord]) -> QueryResult<Vec<Uuid>>;

    /// Upserts `rows` (at most [`ROWS_PER_STATEMENT`]) with the rules of
    /// [`SessionRecord::merge`].
    async fn upsert_sessions(&mut self, rows: &[SessionRecord]) -> QueryResult<()>;
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
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        ids.extend(writer.insert(chunk).await?);
    }
    if follow_ups.session_upsert {
        let sessions = sessions::fold(super::written(&rows, &ids));
        for chunk in sessions.chunks(ROWS_PER_STATEMENT) {
            writer.upsert_sessions(chunk).await?;
        }
    }
    Ok(ids.len())
}
