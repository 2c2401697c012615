//! PostgreSQL storage: the production backend, through diesel-async's native async connection.

mod models;
pub mod schema;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    Backend, CLAIM_ATTEMPTS, EventStore, PoolOptions, PoolStatus, ROWS_PER_STATEMENT, StorageError,
    migrations, pool,
};
use crate::event::EventRecord;
use models::EventRow;
use schema::{events, idempotency_keys};

/// Per-connection settings: a runaway statement must not hold a pooled connection forever.
const CONNECTION_SETUP: &str = "SET statement_timeout = '30s'; SET TIME ZONE 'UTC';";

/// Events in PostgreSQL.
pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
}

impl PostgresStore {
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, StorageError> {
        Ok(Self {
            pool: pool::build(url, options, CONNECTION_SETUP)?,
        })
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn insert_events(&self, batch: &[EventRecord]) -> Result<usize, StorageError> {
        let rows: Vec<EventRow> = batch.iter().map(EventRow::from).collect();
        let mut connection = pool::checkout(&self.pool).await?;
        let inserted = connection
            .transaction::<_, diesel::result::Error, _>(async |connection| {
                let mut inserted = 0;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    inserted += diesel::insert_into(events::table)
                        .values(chunk)
                        .on_conflict_do_nothing()
                        .execute(connection)
                        .await?;
                }
                Ok(inserted)
            })
            .await?;
        Ok(inserted)
    }

    async fn claim_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<Uuid, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        for _ in 0..CLAIM_ATTEMPTS {
            let claimed = diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::key.eq(key),
                    idempotency_keys::event_id.eq(event_id),
                ))
                .on_conflict_do_nothing()
                .execute(&mut connection)
                .await?;
            if claimed == 1 {
                return Ok(event_id);
            }
            // A new statement sees the committed winner (READ COMMITTED).
            let owner = idempotency_keys::table
                .find(key)
                .select(idempotency_keys::event_id)
                .first(&mut connection)
                .await
                .optional()?;
            if let Some(owner) = owner {
                return Ok(owner);
            }
        }
        Err(StorageError::ContendedKey(key))
    }

    async fn release_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<(), StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::key.eq(key))
                .filter(idempotency_keys::event_id.eq(event_id)),
        )
        .execute(&mut connection)
        .await?;
        Ok(())
    }

    async fn find_event(&self, id: Uuid) -> Result<Option<EventRecord>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let row = events::table
            .find(id)
            .select(EventRow::as_select())
            .first(&mut connection)
            .await
            .optional()?;
        Ok(row.map(EventRecord::from))
    }

    async fn count_events(&self) -> Result<i64, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        Ok(events::table.count().get_result(&mut connection).await?)
    }

    async fn run_migrations(&self) -> Result<usize, StorageError> {
        migrations::run(pool::checkout(&self.pool).await?, migrations::POSTGRES).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    fn pool_status(&self) -> PoolStatus {
        pool::status(&self.pool)
    }
}
