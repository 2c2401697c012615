//! The write transaction of a batch, once for every database: read the opt-outs of the
//! batch's subjects, insert the other events in statements of at most
//! [`BatchWriter::ROWS_PER_STATEMENT`] rows, fold the rows written into one row per session and upsert
//! those, and store the written rows' metric segments. Each backend supplies only the
//! statements, in its dialect, as a [`BatchWriter`] over a connection already inside a
//! transaction; the metric segments' other transactions (compaction, backfill) use it too.

use std::collections::HashSet;

use diesel::result::QueryResult;
use uuid::Uuid;

use std::borrow::Cow;

use super::reports::{self, NewSegment};
use super::run::Run;
use super::{FollowUps, ROWS_PER_STATEMENT, SessionRecord, sessions};
use crate::domain::{ConsentSubject, EventRecord};

/// The statements of a batch write, on one connection inside its transaction.
///
/// A backend writes the three statements whose SQL differs (the opt-out lookup, the insert, the
/// session upsert); the others are built once and run on [`BatchWriter::connection`].
// Not `Send`: SQLite's writer runs synchronously on its own thread (see `sqlite`).
#[allow(async_fn_in_trait)]
pub trait BatchWriter {
    /// The connection, inside the transaction.
    type Connection: Run;

    /// The most rows one insert or upsert statement of this writer takes.
    const ROWS_PER_STATEMENT: usize = ROWS_PER_STATEMENT;

    fn connection(&mut self) -> &mut Self::Connection;

    /// The subjects among `subject_ids` (session and user ids) that opted out.
    async fn opted_out_among(&mut self, subject_ids: &[String])
    -> QueryResult<Vec<ConsentSubject>>;

    /// Inserts `events` (at most [`BatchWriter::ROWS_PER_STATEMENT`]), skipping those whose id,
    /// fingerprint or idempotency key is stored; returns the ids of the rows written.
    async fn insert(&mut self, events: &[&EventRecord]) -> QueryResult<Vec<Uuid>>;

    /// Upserts `rows` (at most [`BatchWriter::ROWS_PER_STATEMENT`]) with the rules of
    /// [`SessionRecord::merge`].
    async fn upsert_sessions(&mut self, rows: &[SessionRecord]) -> QueryResult<()>;

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
        reports::schema::insert_segments(self.connection(), segments).await
    }
}

/// A write transaction: what a backend's dialect runs inside its transaction, through its
/// [`BatchWriter`]. Owned data (`'static`) for a backend that runs it on another thread.
#[derive(Debug, Clone)]
pub enum Transaction<'a> {
    /// [`write_batch`]: returns how many events were newly written.
    Batch {
        events: Cow<'a, [EventRecord]>,
        follow_ups: FollowUps,
    },
    /// `reports::replace_segments`; fails with `RollbackTransaction` when some are gone.
    ReplaceSegments {
        ids: Cow<'a, [i64]>,
        with: Option<Cow<'a, NewSegment>>,
    },
    /// `reports::backfill`: returns how many events were encoded.
    Backfill,
}

impl Transaction<'_> {
    /// The same transaction, owning its data.
    pub fn into_owned(self) -> Transaction<'static> {
        match self {
            Self::Batch { events, follow_ups } => Transaction::Batch {
                events: Cow::Owned(events.into_owned()),
                follow_ups,
            },
            Self::ReplaceSegments { ids, with } => Transaction::ReplaceSegments {
                ids: Cow::Owned(ids.into_owned()),
                with: with.map(|segment| Cow::Owned(segment.into_owned())),
            },
            Self::Backfill => Transaction::Backfill,
        }
    }

    /// Runs the transaction's statements through `writer`.
    pub async fn run<W: BatchWriter>(&self, writer: &mut W) -> QueryResult<usize> {
        match self {
            Self::Batch { events, follow_ups } => write_batch(writer, events, *follow_ups).await,
            Self::ReplaceSegments { ids, with } => {
                reports::replace_segments(writer, ids, with.as_deref())
                    .await
                    .map(|()| ids.len())
            }
            Self::Backfill => reports::backfill(writer).await,
        }
    }
}

/// Writes `batch` (whose [`FollowUps`] the caller has worked out) through `writer`;
/// returns how many events were newly written.
pub async fn write_batch<W: BatchWriter>(
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
    let segments = reports::segments_of_written(&written);
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
