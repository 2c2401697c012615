//! Storage: where accepted events are written. One interface, [`EventStore`], with a module per
//! backend (PostgreSQL for production, SQLite as the embedded default) and an in-memory store
//! for pipeline tests. Everything backend-specific lives below this module; every rule above it
//! is shared.

pub mod channel;
pub mod database;
mod memory;
mod migrations;
mod pool;
pub mod postgres;
pub mod reports;
mod retention;
mod rows;
pub mod run;
pub mod schema;
mod sessions;
pub mod sqlite;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{
    ConsentSubject, EventRecord, FunnelQuery, FunnelReport, MetricsQuery, MetricsReport,
    RetentionQuery, RetentionReport,
};

pub use channel::NodeChannel;
pub use database::{Database, Dialect};
pub use memory::MemoryStore;
pub use pool::{ConnectionPool, DEFAULT_POOL_SIZE, PoolOptions};
pub use postgres::PostgresStore;
pub use reports::MetricRow;
pub use reports::NewSegment;
pub use reports::compaction::{Compacted, SegmentInfo, SegmentListing};
pub use retention::Expiring;
pub use sqlite::SqliteStore;

/// The statements a written batch needs besides the insert. Only rows with a session or a
/// user can belong to a subject that opted out, and only rows with a session change a
/// session, so batches of anonymous, session-less events skip both (the same rule for both
/// backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUps {
    pub consent_check: bool,
    pub session_upsert: bool,
}

impl FollowUps {
    pub(crate) fn of(batch: &[EventRecord]) -> Self {
        Self {
            consent_check: batch
                .iter()
                .any(|event| event.session_id.is_some() || event.user_id.is_some()),
            session_upsert: batch.iter().any(|event| event.session_id.is_some()),
        }
    }
}

/// The ids of the subjects (sessions and users) of `batch`, each once: what the write
/// transaction looks up in the consents table.
pub(crate) fn subject_ids(batch: &[EventRecord]) -> Vec<String> {
    let mut ids: Vec<String> = batch
        .iter()
        .flat_map(|event| {
            let session = event.session_id.map(|id| id.to_string());
            [session, event.user_id.clone()]
        })
        .flatten()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The events of `batch` whose session and user have not opted out: the rows to insert.
/// Checked inside the write transaction, so an opt-out recorded by any node is honoured even
/// for events another node accepted.
pub(crate) fn without_opted_out<'a>(
    batch: &'a [EventRecord],
    opted_out: &[ConsentSubject],
) -> Vec<&'a EventRecord> {
    if opted_out.is_empty() {
        return batch.iter().collect();
    }
    let opted_out: std::collections::HashSet<&ConsentSubject> = opted_out.iter().collect();
    batch
        .iter()
        .filter(|event| {
            let session = event
                .session_id
                .map(|id| ConsentSubject::Session(id.to_string()));
            let user = event.user_id.clone().map(ConsentSubject::User);
            ![session, user]
                .iter()
                .flatten()
                .any(|subject| opted_out.contains(subject))
        })
        .collect()
}

/// The rows of `inserted` whose ids the database reported as written, in batch order: the
/// rows the session fold may count (a row skipped as a repeat, or written by an earlier
/// attempt of the same batch, is not).
pub(crate) fn written<'a>(
    inserted: &[&'a EventRecord],
    ids: &std::collections::HashSet<Uuid>,
) -> Vec<&'a EventRecord> {
    inserted
        .iter()
        .copied()
        .filter(|event| ids.contains(&event.id))
        .collect()
}

/// The tables Sluice owns, in the order diagnostics report them.
pub const TABLES: [&str; 6] = [
    "events",
    "sessions",
    "idempotency_keys",
    "consents",
    "dead_letters",
    "metric_segments",
];

/// `SELECT count(*)` of any table, for diagnostics.
#[derive(diesel::QueryableByName)]
pub(crate) struct RowCount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub count: i64,
}

/// The count query for one of [`TABLES`] (never a caller's string).
pub(crate) fn count_query(table: &'static str) -> diesel::query_builder::SqlQuery {
    debug_assert!(TABLES.contains(&table));
    diesel::sql_query(format!("SELECT count(*) AS count FROM {table}"))
}

/// One opted-out subject, as both backends read it.
#[derive(diesel::QueryableByName)]
pub(crate) struct OptedOutRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    subject_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    subject_id: String,
}

/// The subjects of opted-out rows, whichever backend read them.
pub(crate) fn opted_out_subjects(rows: Vec<OptedOutRow>) -> Vec<ConsentSubject> {
    rows.into_iter()
        .filter_map(|row| ConsentSubject::from_parts(&row.subject_type, row.subject_id))
        .collect()
}

/// A subject's latest consent decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDecision {
    pub subject: ConsentSubject,
    pub granted: bool,
}

/// One consent row: subject type, subject id, granted.
pub(crate) type ConsentRow = (String, String, bool);

/// The decisions of consent rows, whichever backend read them.
pub(crate) fn consent_decisions(rows: Vec<ConsentRow>) -> Vec<ConsentDecision> {
    rows.into_iter()
        .filter_map(|(subject_type, subject_id, granted)| {
            let subject = ConsentSubject::from_parts(&subject_type, subject_id)?;
            Some(ConsentDecision { subject, granted })
        })
        .collect()
}

/// The query of [`consent_decisions_query`].
pub(crate) type ConsentDecisionsQuery = diesel::dsl::Limit<
    diesel::dsl::Order<
        diesel::dsl::Select<
            schema::consents::table,
            (
                schema::consents::subject_type,
                schema::consents::subject_id,
                schema::consents::granted,
            ),
        >,
        diesel::dsl::Desc<schema::consents::updated_at>,
    >,
>;

/// The consent decisions a node reads, newest first, before the backend's filter (every
/// decision from a time on, or the current opt-outs). Both read the index on `updated_at`.
pub(crate) fn consent_decisions_query(limit: i64) -> ConsentDecisionsQuery {
    use diesel::{ExpressionMethods, QueryDsl};
    use schema::consents;
    consents::table
        .select((
            consents::subject_type,
            consents::subject_id,
            consents::granted,
        ))
        .order(consents::updated_at.desc())
        .limit(limit)
}

/// How often a claim is retried when the key it conflicted with was released in between.
const CLAIM_ATTEMPTS: usize = 3;

/// Rows per INSERT statement: keeps bind parameters under both backends' limits (65 535 on
/// PostgreSQL, 32 766 on SQLite) for the 36 columns of an event, with room to grow.
const ROWS_PER_STATEMENT: usize = 500;

/// An analytics session as stored: upserted in the same transaction as its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Option<String>,
    pub first_seen_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub event_count: i64,
    pub entry_page: Option<String>,
    pub device_type: Option<String>,
    pub country: Option<String>,
    pub utm_source: Option<String>,
}

/// How Sluice's tables are spread over a Citus cluster (`sluice doctor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Each of [`TABLES`], in that order.
    pub tables: Vec<DistributedTable>,
    /// The active workers.
    pub workers: Vec<WorkerNode>,
}

/// One table's distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributedTable {
    pub name: String,
    /// `distributed` (by hash of `column`), `reference` (a copy on every node) or `local`
    /// (on the coordinator only).
    pub method: String,
    /// The distribution column of a distributed table.
    pub column: Option<String>,
    pub shards: i64,
}

/// An active Citus worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerNode {
    pub host: String,
    pub port: i32,
    /// Shard placements on the worker (reference tables included).
    pub shard_placements: i64,
}

/// Which database a store writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
    Memory,
}

/// Connection pool occupancy, reported by getStats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No connection could be had (pool timeout, refused, dropped): retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// A claim kept conflicting with a key that vanished before it could be read.
    #[error("idempotency key {0} is contended; retry")]
    ContendedKey(Uuid),
}

impl StorageError {
    /// Whether the database refused this data (a constraint, a value it cannot store) rather
    /// than failing for a reason that retrying can fix (a lost connection, a conflict between
    /// transactions). Only such errors make a batch worth splitting to find a poison row.
    pub fn is_data_error(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Self::Query(Error::DatabaseError(kind, info)) => {
                !matches!(
                    kind,
                    DatabaseErrorKind::ClosedConnection
                        | DatabaseErrorKind::UnableToSendCommand
                        | DatabaseErrorKind::SerializationFailure
                        | DatabaseErrorKind::ReadOnlyTransaction
                ) && !is_about_the_database(info.message())
            }
            Self::Query(Error::SerializationError(_)) => true,
            _ => false,
        }
    }

    /// A stable tag for logs and metrics.
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "db_unavailable",
            Self::Query(_) => "db_query",
            Self::Migration(_) => "db_migration",
            Self::InvalidUrl(_) => "db_url",
            Self::ContendedKey(_) => "db_contended_key",
        }
    }
}

/// Messages of errors that other kinds of failure share with a refused row (diesel reports
/// both as `Unknown`, without the SQLSTATE): the database, or one of Citus' workers, failing
/// whatever the rows. Citus' messages are never translated; PostgreSQL's are those of the
/// server's `lc_messages`.
const FAILURES_OF_THE_DATABASE: [&str; 12] = [
    // Citus: a worker down, restarting or unreachable.
    "remote node",
    "could not establish any connections",
    "connection not open",
    "failure on connection marked as essential",
    "could not connect",
    // PostgreSQL: out of a resource, stopping or starting, or a statement cut short.
    "could not extend file",
    "no space left on device",
    "out of memory",
    "database system is",
    "terminating connection",
    "canceling statement",
    "deadlock detected",
];

/// Whether an error's message says the database failed rather than one row.
fn is_about_the_database(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    FAILURES_OF_THE_DATABASE
        .iter()
        .any(|failure| message.contains(failure))
}

/// Writing accepted events: the flusher's side of a store.
#[async_trait]
pub trait EventWrites: Send + Sync + 'static {
    /// Writes the events in one transaction. Events whose id, fingerprint or idempotency key
    /// is already stored are skipped, so retrying a batch after an ambiguous failure cannot
    /// duplicate rows; events of subjects that opted out are not kept. In the same
    /// transaction, the analytics sessions of the written events are upserted. Returns how
    /// many events were newly written.
    async fn insert_events(&self, events: &[EventRecord]) -> Result<usize, StorageError>;

    /// Keeps an event the database refused on its own, with the error, so it stops blocking
    /// the batches behind it. Idempotent per event id.
    async fn dead_letter(&self, event: &EventRecord, error: &str) -> Result<(), StorageError>;
}

/// Idempotency keys, claimed when an event is accepted.
#[async_trait]
pub trait KeyClaims: Send + Sync + 'static {
    /// Claims idempotency `key` for `event_id`, atomically. Returns the id of the event the key
    /// belongs to: `event_id` when this call claimed it, the original event's id when any node
    /// claimed it before.
    async fn claim_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<Uuid, StorageError>;

    /// Gives back a claim whose event was not accepted after all (for example, a full buffer),
    /// so that the caller's retry with the same key is not answered with an event that never
    /// existed. Only the claim held by `event_id` is removed.
    async fn release_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<(), StorageError>;
}

/// Consent decisions (opt-in and opt-out of analytics).
#[async_trait]
pub trait Consents: Send + Sync + 'static {
    /// Records that `subject` opted in (`granted`) or out of analytics.
    async fn set_consent(
        &self,
        subject: &ConsentSubject,
        granted: bool,
    ) -> Result<(), StorageError>;

    /// At most `limit` consent decisions, newest first: every decision recorded from `since`
    /// on (by the database's clock), or without `since` the subjects opted out now.
    async fn consent_decisions(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: usize,
    ) -> Result<Vec<ConsentDecision>, StorageError>;
}

/// The metric segments behind `getMetrics` (see `reports`).
#[async_trait]
pub trait Segments: Send + Sync + 'static {
    /// The metric segments of the hours starting in `[start, end)` (unix seconds), oldest
    /// hour first.
    async fn metric_segments(&self, start: i64, end: i64) -> Result<Vec<Vec<u8>>, StorageError>;

    /// The segments `listing` names, without their data, by hour then id.
    async fn metric_segment_list(
        &self,
        listing: SegmentListing,
    ) -> Result<Vec<SegmentInfo>, StorageError>;

    /// The data of the segments `ids` that exist.
    async fn read_metric_segments(&self, ids: &[i64]) -> Result<Vec<Vec<u8>>, StorageError>;

    /// Replaces the segments `ids` by `with` (or deletes them), atomically; false, changing
    /// nothing, when any of them is gone.
    async fn replace_metric_segments(
        &self,
        ids: &[i64],
        with: Option<&NewSegment>,
    ) -> Result<bool, StorageError>;

    /// The `getMetrics` report of `query`, the same on every backend.
    async fn report(&self, query: &MetricsQuery) -> Result<MetricsReport, StorageError> {
        reports::report(self, query).await
    }

    /// The retention cohorts of `query`, the same on every backend.
    async fn retention(&self, query: &RetentionQuery) -> Result<RetentionReport, StorageError> {
        reports::retention(self, query).await
    }

    /// The funnel of `query`, the same on every backend.
    async fn funnel(&self, query: &FunnelQuery) -> Result<FunnelReport, StorageError> {
        reports::funnel(self, query).await
    }

    /// Merges the metric segments of crowded hours (see `reports::compaction`).
    async fn compact_metric_segments(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Compacted, StorageError> {
        reports::compaction::compact(self, now).await
    }
}

/// Keeping the database: schema, retention, health, diagnostics.
#[async_trait]
pub trait Maintenance: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Deletes at most `limit` rows of `what` older than `cutoff`, oldest first (retention);
    /// returns how many.
    async fn delete_expired(
        &self,
        what: Expiring,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<usize, StorageError>;

    /// Applies pending migrations; returns how many ran.
    async fn run_migrations(&self) -> Result<usize, StorageError>;

    /// How many embedded migrations are not applied to this database.
    async fn pending_migrations(&self) -> Result<usize, StorageError>;

    /// The number of rows of `table`, one of [`TABLES`]; an error when the table is missing.
    async fn count_rows(&self, table: &'static str) -> Result<i64, StorageError>;

    /// How the tables are spread over a Citus cluster; `None` on a single database.
    async fn distribution(&self) -> Result<Option<Distribution>, StorageError> {
        Ok(None)
    }

    /// Round-trips a trivial query.
    async fn ping(&self) -> Result<(), StorageError>;

    fn pool_status(&self) -> PoolStatus;

    /// The channel to the other nodes sharing this database, when the backend has one.
    fn node_channel(&self) -> Option<Arc<dyn NodeChannel>> {
        None
    }
}

/// Reading stored rows back, which only tests do (the `test-support` feature, on for the
/// crate's own tests and benchmarks).
#[cfg(any(test, feature = "test-support"))]
#[async_trait]
pub trait StoredReads: Send + Sync + 'static {
    /// Reads one stored event back.
    async fn find_event(&self, id: Uuid) -> Result<Option<EventRecord>, StorageError>;

    /// Reads the analytics session `id` back.
    async fn find_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StorageError>;

    /// How many events are stored.
    async fn count_events(&self) -> Result<i64, StorageError>;

    /// How many events were dead-lettered.
    async fn count_dead_letters(&self) -> Result<i64, StorageError>;
}

/// A whole store: every role, as the pipeline, the server and the CLI hold it.
#[cfg(not(any(test, feature = "test-support")))]
pub trait EventStore: EventWrites + KeyClaims + Consents + Segments + Maintenance {}

#[cfg(not(any(test, feature = "test-support")))]
impl<T> EventStore for T where T: EventWrites + KeyClaims + Consents + Segments + Maintenance {}

/// A whole store: every role, as the pipeline, the server and the CLI hold it.
#[cfg(any(test, feature = "test-support"))]
pub trait EventStore:
    EventWrites + KeyClaims + Consents + Segments + Maintenance + StoredReads
{
}

#[cfg(any(test, feature = "test-support"))]
impl<T> EventStore for T where
    T: EventWrites + KeyClaims + Consents + Segments + Maintenance + StoredReads
{
}

/// Every role of a store, for `use sluice::storage::roles::*`.
pub mod roles {
    #[cfg(any(test, feature = "test-support"))]
    pub use super::StoredReads;
    pub use super::{Consents, EventStore, EventWrites, KeyClaims, Maintenance, Segments};
}

/// Opens the store a database URL names: `postgres://…`/`postgresql://…` for PostgreSQL,
/// `sqlite://path`, `sqlite:path`, `file:path` or a bare path for SQLite.
pub async fn connect(
    url: &str,
    options: &PoolOptions,
) -> Result<Arc<dyn EventStore>, StorageError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::connect(url, options).await?))
    } else {
        Ok(Arc::new(sqlite::connect(url, options).await?))
    }
}

/// Hides the password of a database URL, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_worker_down_is_not_a_refused_row() {
        use diesel::result::{DatabaseErrorKind, Error};
        let error = |message: &str| {
            super::StorageError::Query(Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(message.to_owned()),
            ))
        };
        let worker_down = "connection to the remote node postgres@127.0.0.1:40395 failed with \
                           the following error: Connection refused";
        assert!(!error(worker_down).is_data_error());
        assert!(
            !error("could not extend file \"base/16384/16385\": No space left on device")
                .is_data_error()
        );
        assert!(error("invalid input syntax for type uuid: \"x\"").is_data_error());
        assert!(error("poison row").is_data_error());
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_url("postgres://sluice:hunter2@db:5432/events"),
            "postgres://sluice:***@db:5432/events"
        );
        assert_eq!(redact_url("postgres://db/events"), "postgres://db/events");
        assert_eq!(redact_url("sqlite://sluice.db"), "sqlite://sluice.db");
    }
}
