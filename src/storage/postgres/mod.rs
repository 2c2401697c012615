//! PostgreSQL storage: the production backend, through diesel-async's native async connection.

mod channel;
mod models;
pub mod schema;
mod statement;

use std::sync::Arc;

use super::channel::NodeChannel;
use super::pool::Pool;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use diesel::sql_types::{Array, Uuid as SqlUuid};

use super::metrics::schema::{
    delete_segments, insert_segments, list_segments, load_segments, read_segments,
};
use super::metrics::{MetricColumns, MetricRow, NewSegment, event_span, metric_rows};
use super::retention::delete_expired;
use super::write::{BatchWriter, write_batch};
use super::{
    Backend, CLAIM_ATTEMPTS, ConsentDecision, EventStore, Expiring, FollowUps, PoolOptions,
    PoolStatus, SegmentInfo, SegmentListing, SessionRecord, StorageError, migrations, pool,
};
use crate::domain::{ConsentSubject, EventRecord};
use chrono::{DateTime, Utc};
use diesel::result::QueryResult;
use models::{EventRow, JsonbText, SessionRow};
use schema::{consents, dead_letters, events, idempotency_keys, sessions};
use statement::Prepared;

/// Per-connection settings: a runaway statement must not hold a pooled connection forever.
const CONNECTION_SETUP: &str = "SET statement_timeout = '30s'; SET TIME ZONE 'UTC';";

/// The opted-out subjects among the batch's sessions and users.
const OPTED_OUT_OF_BATCH: &str = "
    SELECT subject_type, subject_id FROM consents
    WHERE NOT granted AND subject_id = ANY($1)";

/// Upserts the batch's sessions, one precomputed row each (see `storage::sessions`), with
/// the rules of `SessionRecord::merge`.
const UPSERT_SESSIONS: &str = "
    INSERT INTO sessions AS s
        (id, user_id, first_seen_at, last_seen_at, event_count, entry_page, device_type, country, utm_source)
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[],
        $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[])
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

/// Inserts a chunk of events as one short statement whatever its size: the columns travel as
/// arrays and UNNEST turns them back into rows. PostgreSQL then parses 35 parameters instead
/// of one per value (17 000 for 500 events), and Sluice copies no row structs to bind them.
const INSERT_EVENTS: &str = "
    INSERT INTO events (id, event_type, source, actor_id, actor_type, user_id, creator_id,
        brand_id, entity_id, entity_type, session_id, props, utm_source, utm_medium,
        utm_campaign, utm_term, utm_content, referrer, landing_page, idempotency_key,
        dedup_fingerprint, occurred_at, received_at, browser_name, browser_version, os_name,
        os_version, device_type, is_bot, country, region, city, ip_address, referrer_host, path)
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::uuid[], $12::jsonb[],
        $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
        $19::text[], $20::uuid[], $21::text[], $22::timestamptz[], $23::timestamptz[],
        $24::text[], $25::text[], $26::text[], $27::text[], $28::text[], $29::boolean[],
        $30::text[], $31::text[], $32::text[], $33::text[], $34::text[], $35::text[])
    ON CONFLICT DO NOTHING
    RETURNING id";

/// The id of a row an insert wrote.
#[derive(QueryableByName)]
struct WrittenId {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Inserts `events`; returns the ids of the rows written (not those skipped as repeats).
async fn insert_unnest(
    connection: &mut AsyncPgConnection,
    events: &[&EventRecord],
) -> diesel::QueryResult<Vec<Uuid>> {
    use diesel::sql_types::{Bool, Jsonb, Nullable, Text, Timestamptz};
    let text = |field: fn(&EventRecord) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(|event| field(event)).collect()
    };
    let props: Vec<Option<JsonbText>> = events
        .iter()
        .map(|event| {
            event
                .props
                .as_ref()
                .map(|props| JsonbText(props.as_str().to_owned()))
        })
        .collect();
    let statement = diesel::sql_query(INSERT_EVENTS)
        .bind::<Array<SqlUuid>, _>(events.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(events.iter().map(|e| e.source.as_str()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.actor_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.actor_type.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.user_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.creator_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.brand_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.entity_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.entity_type.as_deref()))
        .bind::<Array<Nullable<SqlUuid>>, _>(
            events.iter().map(|e| e.session_id).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Jsonb>>, _>(props)
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.attribution.utm_source.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.attribution.utm_medium.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.attribution.utm_campaign.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.attribution.utm_term.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.attribution.utm_content.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.attribution.referrer.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.attribution.landing_page.as_deref()))
        .bind::<Array<Nullable<SqlUuid>>, _>(
            events.iter().map(|e| e.idempotency_key).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.dedup_fingerprint.as_deref()))
        .bind::<Array<Timestamptz>, _>(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(events.iter().map(|e| e.received_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.browser_name.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.browser_version.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.os_name.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.os_version.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.device_type.as_deref()))
        .bind::<Array<Bool>, _>(
            events
                .iter()
                .map(|e| e.enrichment.is_bot)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.country.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.region.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.city.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.ip_address.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|e| e.enrichment.referrer_host.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(events.iter().map(|e| e.page_path()).collect::<Vec<_>>());
    let written: Vec<WrittenId> = Prepared(statement).load(connection).await?;
    Ok(written.into_iter().map(|row| row.id).collect())
}

/// Upserts the sessions `rows` fold into. Through a shared reference to the connection, so
/// that it can be pipelined with another statement.
fn upsert_sessions<'a>(
    connection: &'a AsyncPgConnection,
    rows: &'a [SessionRecord],
) -> impl Future<Output = diesel::QueryResult<usize>> + Send + 'a {
    use diesel::sql_types::{Int8, Nullable, Text, Timestamptz};
    let text = |field: fn(&SessionRecord) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(field).collect()
    };
    let statement = diesel::sql_query(UPSERT_SESSIONS)
        .bind::<Array<SqlUuid>, _>(rows.iter().map(|row| row.id).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(text(|row| row.user_id.as_deref()))
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.first_seen_at).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.last_seen_at).collect::<Vec<_>>())
        .bind::<Array<Int8>, _>(rows.iter().map(|row| row.event_count).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(text(|row| row.entry_page.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|row| row.device_type.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|row| row.country.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|row| row.utm_source.as_deref()));
    Prepared(statement).execute(&mut &*connection)
}

/// The batch statements in PostgreSQL's dialect: `= ANY($1)` and `UNNEST` over arrays.
struct PgBatchWriter<'a>(&'a mut AsyncPgConnection);

impl BatchWriter for PgBatchWriter<'_> {
    async fn opted_out_among(
        &mut self,
        subject_ids: &[String],
    ) -> QueryResult<Vec<ConsentSubject>> {
        let statement = diesel::sql_query(OPTED_OUT_OF_BATCH)
            .bind::<Array<diesel::sql_types::Text>, _>(subject_ids);
        Ok(super::opted_out_subjects(
            Prepared(statement).load(self.0).await?,
        ))
    }

    async fn insert(&mut self, events: &[&EventRecord]) -> QueryResult<Vec<Uuid>> {
        insert_unnest(self.0, events).await
    }

    async fn upsert_sessions(&mut self, rows: &[SessionRecord]) -> QueryResult<()> {
        upsert_sessions(self.0, rows).await.map(drop)
    }

    async fn insert_segments(&mut self, segments: &[NewSegment]) -> QueryResult<()> {
        insert_segments!(&mut *self.0, segments, RunQueryDsl::execute, await).map(drop)
    }

    async fn upsert_sessions_and_insert_segments(
        &mut self,
        sessions: &[SessionRecord],
        segments: &[NewSegment],
    ) -> QueryResult<()> {
        if sessions.is_empty() || segments.is_empty() {
            if !sessions.is_empty() {
                upsert_sessions(self.0, sessions).await?;
            }
            return self.insert_segments(segments).await;
        }
        // Both sent before either answer is awaited (diesel-async pipelines them).
        let connection: &AsyncPgConnection = self.0;
        let upsert = upsert_sessions(connection, sessions);
        let insert = insert_segments!(&mut &*connection, segments, RunQueryDsl::execute);
        futures_util::try_join!(upsert, insert).map(drop)
    }

    async fn delete_segments(&mut self, ids: &[i64]) -> QueryResult<usize> {
        delete_segments!(&mut *self.0, ids, RunQueryDsl::execute, await)
    }

    async fn claim_backfill(&mut self) -> QueryResult<bool> {
        let claim = diesel::sql_query(super::metrics::CLAIM_BACKFILL);
        Ok(claim.execute(self.0).await? > 0)
    }

    async fn event_span(&mut self) -> QueryResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        event_span!(
            super::postgres::schema,
            &mut *self.0,
            RunQueryDsl::first,
            await
        )
    }

    async fn metric_rows_in(
        &mut self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> QueryResult<Vec<MetricRow>> {
        let rows: Vec<MetricColumns<Uuid>> = metric_rows!(super::postgres::schema, start, end)
            .load(self.0)
            .await?;
        rows.into_iter().map(MetricRow::from_columns).collect()
    }
}

/// Events in PostgreSQL.
pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
    channel: Arc<channel::PgChannel>,
}

impl PostgresStore {
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, StorageError> {
        let pool = pool::build(url, options, CONNECTION_SETUP)?;
        let channel = Arc::new(channel::PgChannel {
            url: url.to_owned(),
            pool: pool.clone(),
        });
        Ok(Self { pool, channel })
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn insert_events(&self, batch: &[EventRecord]) -> Result<usize, StorageError> {
        let follow_ups = FollowUps::of(batch);
        let mut connection = pool::checkout(&self.pool).await?;
        let inserted = connection
            .transaction::<_, diesel::result::Error, _>(async |connection| {
                write_batch(&mut PgBatchWriter(connection), batch, follow_ups).await
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

    async fn consent_decisions(
        &self,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<ConsentDecision>, StorageError> {
        use diesel::sql_types::{BigInt, Timestamptz};
        let mut connection = pool::checkout(&self.pool).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match since {
            Some(since) => {
                diesel::sql_query(super::consent_decisions_sql(Some("$1"), "$2"))
                    .bind::<Timestamptz, _>(since)
                    .bind::<BigInt, _>(limit)
                    .load(&mut connection)
                    .await?
            }
            None => {
                diesel::sql_query(super::consent_decisions_sql(None, "$1"))
                    .bind::<BigInt, _>(limit)
                    .load(&mut connection)
                    .await?
            }
        };
        Ok(super::consent_decisions(rows))
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let row = sessions::table
            .find(id)
            .select(SessionRow::as_select())
            .first(&mut connection)
            .await
            .optional()?;
        row.map(SessionRecord::try_from).transpose()
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
        row.map(EventRecord::try_from).transpose()
    }

    async fn delete_expired(
        &self,
        what: Expiring,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        Ok(delete_expired!(
            super::postgres::schema,
            Uuid,
            what,
            cutoff,
            limit,
            &mut connection
        )?)
    }

    async fn count_events(&self) -> Result<i64, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        Ok(events::table.count().get_result(&mut connection).await?)
    }

    async fn metric_segments(&self, start: i64, end: i64) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        Ok(load_segments!(&mut connection, start, end)?)
    }

    async fn metric_segment_list(
        &self,
        listing: SegmentListing,
    ) -> Result<Vec<SegmentInfo>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        list_segments!(&mut connection, listing)
    }

    async fn read_metric_segments(&self, ids: &[i64]) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        Ok(read_segments!(&mut connection, ids)?)
    }

    async fn replace_metric_segments(
        &self,
        ids: &[i64],
        with: Option<&NewSegment>,
    ) -> Result<bool, StorageError> {
        let mut connection = pool::checkout(&self.pool).await?;
        let replaced = connection
            .transaction::<_, diesel::result::Error, _>(async |connection| {
                super::metrics::replace_segments(&mut PgBatchWriter(connection), ids, with).await
            })
            .await;
        super::metrics::replaced(replaced.map_err(StorageError::from))
    }

    async fn run_migrations(&self) -> Result<usize, StorageError> {
        let applied =
            migrations::run(pool::checkout(&self.pool).await?, migrations::POSTGRES).await?;
        // REPEATABLE READ: the backfill does not see batches other nodes commit meanwhile,
        // which come with their own segments.
        let mut connection = pool::checkout(&self.pool).await?;
        let backfill = connection
            .build_transaction()
            .repeatable_read()
            .run::<_, diesel::result::Error, _>(async |connection| {
                super::metrics::backfill(&mut PgBatchWriter(connection)).await
            })
            .await;
        match backfill {
            // Another node starting at the same time took the marker first and did it.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure,
                _,
            )) => tracing::info!("metrics: another node encoded the earlier events"),
            other => {
                other?;
            }
        }
        Ok(applied)
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

    fn node_channel(&self) -> Option<Arc<dyn NodeChannel>> {
        Some(self.channel.clone())
    }
}
