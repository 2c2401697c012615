//! PostgreSQL storage: the production backend, through diesel-async's native async connection.

mod models;
pub mod schema;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use diesel::sql_types::{Array, Uuid as SqlUuid};

use super::{
    Backend, CLAIM_ATTEMPTS, ConsentSubject, EventStore, FollowUps, PoolOptions, PoolStatus,
    ROWS_PER_STATEMENT, SessionRecord, StorageError, migrations, pool,
};
use crate::event::EventRecord;
use models::{EventRow, SessionRow};
use schema::{consents, dead_letters, events, idempotency_keys, sessions};

/// Per-connection settings: a runaway statement must not hold a pooled connection forever.
const CONNECTION_SETUP: &str = "SET statement_timeout = '30s'; SET TIME ZONE 'UTC';";

/// Removes, inside the write transaction, the just-written events of subjects that opted out,
/// so an opt-out recorded by any node is honoured even for events another node accepted.
const DELETE_OPTED_OUT: &str = "
    DELETE FROM events e
    WHERE e.id = ANY($1)
      AND EXISTS (
        SELECT 1 FROM consents c
        WHERE NOT c.granted
          AND ((c.subject_type = 'session' AND c.subject_id = e.session_id::text)
            OR (c.subject_type = 'user' AND c.subject_id = e.user_id)))";

/// Folds the just-written events into their analytics sessions.
const UPSERT_SESSIONS: &str = "
    INSERT INTO sessions AS s
        (id, user_id, first_seen_at, last_seen_at, event_count, entry_page, device_type, country, utm_source)
    SELECT session_id,
           (array_agg(user_id ORDER BY occurred_at DESC) FILTER (WHERE user_id IS NOT NULL))[1],
           min(occurred_at),
           max(occurred_at),
           count(*),
           (array_agg(coalesce(landing_page, props->>'path') ORDER BY occurred_at))[1],
           (array_agg(device_type ORDER BY occurred_at))[1],
           (array_agg(country ORDER BY occurred_at) FILTER (WHERE country IS NOT NULL))[1],
           (array_agg(utm_source ORDER BY occurred_at) FILTER (WHERE utm_source IS NOT NULL))[1]
    FROM events
    WHERE id = ANY($1) AND session_id IS NOT NULL
    GROUP BY session_id
    ON CONFLICT (id) DO UPDATE SET
        user_id = coalesce(EXCLUDED.user_id, s.user_id),
        entry_page = CASE WHEN EXCLUDED.first_seen_at < s.first_seen_at
                          THEN EXCLUDED.entry_page ELSE s.entry_page END,
        first_seen_at = least(s.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at = greatest(s.last_seen_at, EXCLUDED.last_seen_at),
        event_count = s.event_count + EXCLUDED.event_count,
        device_type = coalesce(s.device_type, EXCLUDED.device_type),
        country = coalesce(s.country, EXCLUDED.country),
        utm_source = coalesce(s.utm_source, EXCLUDED.utm_source)";

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
        let follow_ups = FollowUps::of(batch);
        let rows: Vec<EventRow> = batch.iter().map(EventRow::from).collect();
        let mut connection = pool::checkout(&self.pool).await?;
        let inserted = connection
            .transaction::<_, diesel::result::Error, _>(async |connection| {
                let mut inserted = 0;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let written = diesel::insert_into(events::table)
                        .values(chunk)
                        .on_conflict_do_nothing()
                        .execute(connection)
                        .await?;
                    let ids: Vec<Uuid> = chunk.iter().map(|row| row.id).collect();
                    let mut withdrawn = 0;
                    if follow_ups.consent_check {
                        withdrawn = diesel::sql_query(DELETE_OPTED_OUT)
                            .bind::<Array<SqlUuid>, _>(&ids)
                            .execute(connection)
                            .await?;
                    }
                    if follow_ups.session_upsert {
                        diesel::sql_query(UPSERT_SESSIONS)
                            .bind::<Array<SqlUuid>, _>(&ids)
                            .execute(connection)
                            .await?;
                    }
                    inserted += written.saturating_sub(withdrawn);
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

    async fn set_consent(
        &self,
        subject: &ConsentSubject,
        granted: bool,
    ) -> Result<(), StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        diesel::insert_into(consents::table)
            .values((
                consents::subject_type.eq(subject.kind()),
                consents::subject_id.eq(subject.id()),
                consents::granted.eq(granted),
            ))
            .on_conflict((consents::subject_type, consents::subject_id))
            .do_update()
            .set((
                consents::granted.eq(granted),
                consents::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    async fn opted_out(&self) -> Result<Vec<ConsentSubject>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let rows = super::opted_out_query().load(&mut connection).await?;
        Ok(super::opted_out_subjects(rows))
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let row = sessions::table
            .find(id)
            .select(SessionRow::as_select())
            .first(&mut connection)
            .await
            .optional()?;
        Ok(row.map(SessionRecord::from))
    }

    async fn dead_letter(&self, event: &EventRecord, error: &str) -> Result<(), StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let body = event.to_json().map_err(|e| {
            StorageError::Query(diesel::result::Error::SerializationError(Box::new(e)))
        })?;
        diesel::insert_into(dead_letters::table)
            .values((
                dead_letters::id.eq(event.id),
                dead_letters::event.eq(body),
                dead_letters::error.eq(error),
            ))
            .on_conflict_do_nothing()
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    async fn count_dead_letters(&self) -> Result<i64, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        Ok(dead_letters::table
            .count()
            .get_result(&mut connection)
            .await?)
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

    async fn pending_migrations(&self) -> Result<usize, StorageError> {
        migrations::pending(pool::checkout(&self.pool).await?, migrations::POSTGRES).await
    }

    async fn count_rows(&self, table: &'static str) -> Result<i64, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let row: super::RowCount = super::count_query(table)
            .get_result(&mut connection)
            .await?;
        Ok(row.count)
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
