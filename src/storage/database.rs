//! The one store over a SQL database: every [`EventStore`](super::EventStore) role written
//! once, generic over a [`Dialect`] that holds only what differs between backends (the write
//! transaction, the idempotency-key claim, consent times, migrations, what a cluster adds).
//! Statements both backends share are built on the one schema and run through
//! [`Run`](super::run::Run).
//!
//! Adding a backend means a dialect module: its connection, its pool setup, its migrations
//! folder, and its `BatchWriter` for the three statements of a batch whose SQL differs.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl};
use uuid::Uuid;

use super::channel::NodeChannel;
use super::pool::ConnectionPool;
use super::reports::schema as segments;
use super::run::Run;
use super::schema::types::{JsonText, Stored};
use super::schema::{dead_letters, idempotency_keys};
use super::write::Transaction;
use super::{
    Backend, ConsentDecision, Consents, Distribution, EventWrites, Expiring, FollowUps, KeyClaims,
    Maintenance, NewSegment, PoolStatus, SegmentInfo, SegmentListing, Segments, StorageError,
};
use crate::domain::{ConsentSubject, EventRecord};

/// What a SQL backend does its own way.
pub trait Dialect: Send + Sync + Sized + 'static {
    /// The pool of this backend's connections.
    type Pool: ConnectionPool<Connection = Self::Connection>;
    /// This backend's connection outside a transaction.
    type Connection: Run;

    const BACKEND: Backend;

    /// Runs `transaction` in this backend's write transaction; the result of
    /// [`Transaction::run`].
    fn transact(
        &self,
        pool: &Self::Pool,
        transaction: Transaction<'_>,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;

    /// [`KeyClaims::claim_idempotency_key`], atomically on this backend.
    fn claim_key(
        &self,
        connection: &mut Self::Connection,
        key: Uuid,
        event_id: Uuid,
    ) -> impl Future<Output = Result<Uuid, StorageError>> + Send;

    /// [`Consents::set_consent`], stamped with the database's clock.
    fn set_consent(
        &self,
        connection: &mut Self::Connection,
        subject: &ConsentSubject,
        granted: bool,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// [`Consents::consent_decisions`], compared as this backend keeps consent times.
    fn consent_decisions(
        &self,
        connection: &mut Self::Connection,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ConsentDecision>, StorageError>> + Send;

    /// Applies this backend's pending migrations, then what follows them (the segments'
    /// backfill, a cluster's distribution); returns how many migrations ran.
    fn migrate(
        &self,
        pool: &Self::Pool,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;

    /// How many of this backend's migrations are not applied.
    fn pending_migrations(
        &self,
        pool: &Self::Pool,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;

    /// How the tables are spread over a cluster; `None` on a single database.
    fn distribution(
        &self,
        _connection: &mut Self::Connection,
    ) -> impl Future<Output = Result<Option<Distribution>, StorageError>> + Send {
        async { Ok(None) }
    }

    /// The channel to the other nodes sharing this database, when the backend has one.
    fn node_channel(&self) -> Option<Arc<dyn NodeChannel>> {
        None
    }
}

/// Events in a SQL database, through the dialect `D`.
pub struct Database<D: Dialect> {
    pool: D::Pool,
    dialect: D,
}

impl<D: Dialect> Database<D> {
    pub(crate) fn new(pool: D::Pool, dialect: D) -> Self {
        Self { pool, dialect }
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &D::Pool {
        &self.pool
    }

    async fn connection(&self) -> Result<<D::Pool as ConnectionPool>::Checkout, StorageError> {
        self.pool.checkout().await
    }
}

#[async_trait]
impl<D: Dialect> EventWrites for Database<D> {
    async fn insert_events(&self, batch: &[EventRecord]) -> Result<usize, StorageError> {
        let transaction = Transaction::Batch {
            events: batch.into(),
            follow_ups: FollowUps::of(batch),
        };
        self.dialect.transact(&self.pool, transaction).await
    }

    async fn dead_letter(&self, event: &EventRecord, error: &str) -> Result<(), StorageError> {
        let body = event.to_json().map_err(|e| {
            StorageError::Query(diesel::result::Error::SerializationError(Box::new(e)))
        })?;
        let insert = diesel::insert_into(dead_letters::table)
            .values((
                dead_letters::id.eq(Stored(event.id)),
                dead_letters::event.eq(JsonText(body.to_string())),
                dead_letters::error.eq(error.to_owned()),
            ))
            .on_conflict_do_nothing();
        self.connection().await?.execute(insert).await?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> KeyClaims for Database<D> {
    async fn claim_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<Uuid, StorageError> {
        let mut connection = self.connection().await?;
        self.dialect.claim_key(&mut connection, key, event_id).await
    }

    async fn release_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<(), StorageError> {
        let release = diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::key.eq(Stored(key)))
                .filter(idempotency_keys::event_id.eq(Stored(event_id))),
        );
        self.connection().await?.execute(release).await?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> Consents for Database<D> {
    async fn set_consent(
        &self,
        subject: &ConsentSubject,
        granted: bool,
    ) -> Result<(), StorageError> {
        let mut connection = self.connection().await?;
        self.dialect
            .set_consent(&mut connection, subject, granted)
            .await
    }

    async fn consent_decisions(
        &self,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<ConsentDecision>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut connection = self.connection().await?;
        self.dialect
            .consent_decisions(&mut connection, since, limit)
            .await
    }
}

#[async_trait]
impl<D: Dialect> Segments for Database<D> {
    async fn metric_segments(&self, start: i64, end: i64) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut connection = self.connection().await?;
        Ok(segments::load_segments(&mut *connection, start, end).await?)
    }

    async fn metric_segment_list(
        &self,
        listing: SegmentListing,
    ) -> Result<Vec<SegmentInfo>, StorageError> {
        let mut connection = self.connection().await?;
        Ok(segments::list_segments(&mut *connection, listing).await?)
    }

    async fn read_metric_segments(&self, ids: &[i64]) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut connection = self.connection().await?;
        Ok(segments::read_segments(&mut *connection, ids).await?)
    }

    async fn replace_metric_segments(
        &self,
        ids: &[i64],
        with: Option<&NewSegment>,
    ) -> Result<bool, StorageError> {
        let transaction = Transaction::ReplaceSegments {
            ids: ids.into(),
            with: with.map(std::borrow::Cow::Borrowed),
        };
        super::reports::replaced(self.dialect.transact(&self.pool, transaction).await)
    }
}

#[async_trait]
impl<D: Dialect> Maintenance for Database<D> {
    fn backend(&self) -> Backend {
        D::BACKEND
    }

    async fn delete_expired(
        &self,
        what: Expiring,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let mut connection = self.connection().await?;
        Ok(super::retention::delete_expired(&mut *connection, what, cutoff, limit).await?)
    }

    async fn run_migrations(&self) -> Result<usize, StorageError> {
        self.dialect.migrate(&self.pool).await
    }

    async fn pending_migrations(&self) -> Result<usize, StorageError> {
        self.dialect.pending_migrations(&self.pool).await
    }

    async fn count_rows(&self, table: &'static str) -> Result<i64, StorageError> {
        let mut connection = self.connection().await?;
        let rows: Vec<super::RowCount> = connection.load(super::count_query(table)).await?;
        Ok(rows.first().map_or(0, |row| row.count))
    }

    async fn distribution(&self) -> Result<Option<Distribution>, StorageError> {
        let mut connection = self.connection().await?;
        self.dialect.distribution(&mut connection).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.connection()
            .await?
            .execute(diesel::sql_query("SELECT 1"))
            .await?;
        Ok(())
    }

    fn pool_status(&self) -> PoolStatus {
        self.pool.status()
    }

    fn node_channel(&self) -> Option<Arc<dyn NodeChannel>> {
        self.dialect.node_channel()
    }
}

#[cfg(any(test, feature = "test-support"))]
#[async_trait]
impl<D: Dialect> super::StoredReads for Database<D> {
    async fn find_event(&self, id: Uuid) -> Result<Option<EventRecord>, StorageError> {
        use super::rows::EventRow;
        use super::schema::events;
        let query = events::table
            .find(Stored(id))
            .select(EventRow::columns())
            .limit(1);
        let row: Option<EventRow> = self.connection().await?.first(query).await?;
        Ok(row.map(EventRecord::from))
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<super::SessionRecord>, StorageError> {
        use super::rows::SessionRow;
        use super::schema::sessions;
        let query = sessions::table
            .find(Stored(id))
            .select(SessionRow::columns())
            .limit(1);
        let row: Option<SessionRow> = self.connection().await?.first(query).await?;
        Ok(row.map(super::SessionRecord::from))
    }

    async fn count_events(&self) -> Result<i64, StorageError> {
        self.count_rows("events").await
    }

    async fn count_dead_letters(&self) -> Result<i64, StorageError> {
        self.count_rows("dead_letters").await
    }
}
