//! SQLite storage: the embedded default. diesel's SQLite connection is synchronous, so it is
//! wrapped in diesel-async's `SyncConnectionWrapper`, and multi-row inserts run on the blocking
//! pool through `spawn_blocking` on the wrapped connection (the async wrapper cannot compile
//! a batch insert with ON CONFLICT).

mod models;
pub mod schema;

use async_trait::async_trait;
use diesel::SqliteConnection;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use uuid::Uuid;

use super::{
    Backend, EventStore, PoolOptions, PoolStatus, ROWS_PER_STATEMENT, StorageError, migrations,
    pool,
};
use crate::event::EventRecord;
use models::{EventRow, parse_uuid};
use schema::{events, idempotency_keys};

type Connection = SyncConnectionWrapper<SqliteConnection>;

/// Per-connection settings: WAL lets readers run beside the writer, the busy timeout makes
/// concurrent writers wait instead of failing, NORMAL sync is durable under WAL except on
/// power loss.
const CONNECTION_SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// Events in an SQLite file.
pub struct SqliteStore {
    pool: Pool<Connection>,
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, StorageError> {
        let path = database_path(url)?;
        Ok(Self {
            pool: pool::build(path, options, CONNECTION_SETUP)?,
        })
    }
}

/// The file path a SQLite URL names (`sqlite://x.db`, `sqlite:x.db`, `x.db`).
fn database_path(url: &str) -> Result<&str, StorageError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains(":memory:") || path.contains("mode=memory") {
        // Every pooled connection would get its own empty database.
        return Err(StorageError::InvalidUrl(format!(
            "{url}: give SQLite a file path (in-memory databases are not shared across connections)"
        )));
    }
    Ok(path)
}

#[async_trait]
impl EventStore for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn insert_events(&self, batch: &[EventRecord]) -> Result<usize, StorageError> {
        let rows: Vec<EventRow> = batch.iter().map(EventRow::from).collect();
        let mut connection = pool::checkout(&self.pool).await?;
        let inserted = connection
            .spawn_blocking(move |connection| {
                connection.immediate_transaction(|connection| {
                    let mut inserted = 0;
                    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                        let statement = diesel::insert_into(events::table)
                            .values(chunk)
                            .on_conflict_do_nothing();
                        // The blocking connection takes diesel's synchronous execute.
                        inserted += diesel::RunQueryDsl::execute(statement, connection)?;
                    }
                    Ok(inserted)
                })
            })
            .await?;
        Ok(inserted)
    }

    async fn claim_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<Uuid, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let (key_text, event_text) = (key.to_string(), event_id.to_string());
        let owner = connection
            .spawn_blocking(move |connection| {
                // One IMMEDIATE transaction: the insert and the read see the same state.
                connection.immediate_transaction(|connection| {
                    let claim = diesel::insert_into(idempotency_keys::table)
                        .values((
                            idempotency_keys::key.eq(&key_text),
                            idempotency_keys::event_id.eq(&event_text),
                        ))
                        .on_conflict_do_nothing();
                    diesel::RunQueryDsl::execute(claim, connection)?;
                    let owner = idempotency_keys::table
                        .find(&key_text)
                        .select(idempotency_keys::event_id);
                    diesel::RunQueryDsl::first::<String>(owner, connection)
                })
            })
            .await?;
        parse_uuid(&owner)
    }

    async fn release_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<(), StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::key.eq(key.to_string()))
                .filter(idempotency_keys::event_id.eq(event_id.to_string())),
        )
        .execute(&mut connection)
        .await?;
        Ok(())
    }

    async fn find_event(&self, id: Uuid) -> Result<Option<EventRecord>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let row = events::table
            .find(id.to_string())
            .select(EventRow::as_select())
            .first(&mut connection)
            .await
            .optional()?;
        row.map(EventRecord::try_from).transpose()
    }

    async fn count_events(&self) -> Result<i64, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        Ok(events::table.count().get_result(&mut connection).await?)
    }

    async fn run_migrations(&self) -> Result<usize, StorageError> {
        migrations::run(pool::checkout(&self.pool).await?, migrations::SQLITE).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file() {
        assert_eq!(database_path("sqlite://sluice.db").ok(), Some("sluice.db"));
        assert_eq!(
            database_path("sqlite:/var/lib/s.db").ok(),
            Some("/var/lib/s.db")
        );
        assert_eq!(database_path("data/s.db").ok(), Some("data/s.db"));
        assert!(database_path("sqlite://:memory:").is_err());
        assert!(database_path("").is_err());
    }
}
