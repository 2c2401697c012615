//! PostgreSQL storage: the production backend, through diesel-async's native async connection.

mod channel;
pub mod citus;
mod statement;

use std::sync::Arc;

use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::channel::NodeChannel;
use super::database::{Database, Dialect};
use super::pool::{self, ConnectionPool, Pool};
use super::reports::NewSegment;
use super::schema::types::{Json, JsonText, Stored, UtcTime};
use super::schema::{consents, idempotency_keys};
use super::write::{BatchWriter, Transaction};
use super::{
    Backend, CLAIM_ATTEMPTS, ConsentDecision, PoolOptions, SessionRecord, StorageError, migrations,
};
use crate::domain::{ConsentSubject, EventRecord};
use chrono::{DateTime, Utc};
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

/// The columns of an event row, in the order [`insert_unnest`] binds them, each with the type
/// of its array.
const EVENT_COLUMNS: [(&str, &str); 35] = [
    ("id", "uuid"),
    ("event_type", "text"),
    ("source", "text"),
    ("actor_id", "text"),
    ("actor_type", "text"),
    ("user_id", "text"),
    ("creator_id", "text"),
    ("brand_id", "text"),
    ("entity_id", "text"),
    ("entity_type", "text"),
    ("session_id", "uuid"),
    ("props", "jsonb"),
    ("utm_source", "text"),
    ("utm_medium", "text"),
    ("utm_campaign", "text"),
    ("utm_term", "text"),
    ("utm_content", "text"),
    ("referrer", "text"),
    ("landing_page", "text"),
    ("idempotency_key", "uuid"),
    ("dedup_fingerprint", "text"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("browser_name", "text"),
    ("browser_version", "text"),
    ("os_name", "text"),
    ("os_version", "text"),
    ("device_type", "text"),
    ("is_bot", "boolean"),
    ("country", "text"),
    ("region", "text"),
    ("city", "text"),
    ("ip_address", "text"),
    ("referrer_host", "text"),
    ("path", "text"),
];

/// Inserts a chunk of events as one short statement whatever its size: the columns travel as
/// arrays and UNNEST turns them back into rows. PostgreSQL then parses 35 parameters instead
/// of one per value (17 000 for 500 events), and Sluice copies no row structs to bind them.
/// On Citus the shard key (`citus::shard_key`) travels last.
fn insert_events_sql(sharded: bool) -> String {
    let shard_key = sharded.then_some(("shard_key", "uuid"));
    let columns = EVENT_COLUMNS.iter().copied().chain(shard_key);
    let (names, arrays): (Vec<&str>, Vec<String>) = columns
        .enumerate()
        .map(|(index, (name, kind))| (name, format!("${}::{kind}[]", index + 1)))
        .unzip();
    format!(
        "INSERT INTO events ({}) SELECT * FROM UNNEST({}) ON CONFLICT DO NOTHING RETURNING id",
        names.join(", "),
        arrays.join(", ")
    )
}

/// [`insert_events_sql`] for a single database and for Citus, made once.
static INSERT_EVENTS: std::sync::LazyLock<[String; 2]> =
    std::sync::LazyLock::new(|| [insert_events_sql(false), insert_events_sql(true)]);

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
    sharded: bool,
) -> diesel::QueryResult<Vec<Uuid>> {
    use diesel::sql_types::{Bool, Nullable, Text, Timestamptz};
    let text = |field: fn(&EventRecord) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(|event| field(event)).collect()
    };
    let props: Vec<Option<JsonText>> = events
        .iter()
        .map(|event| {
            event
                .props
                .as_ref()
                .map(|props| JsonText(props.as_str().to_owned()))
        })
        .collect();
    let statement = diesel::sql_query(&INSERT_EVENTS[usize::from(sharded)])
        .into_boxed::<diesel::pg::Pg>()
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
        .bind::<Array<Nullable<Json>>, _>(props)
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
    let statement = if sharded {
        let keys: Vec<Uuid> = events.iter().map(|event| citus::shard_key(event)).collect();
        statement.bind::<Array<SqlUuid>, _>(keys)
    } else {
        statement
    };
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

/// The batch statements in PostgreSQL's dialect: `= ANY($1)` and `UNNEST` over arrays; on
/// Citus (`sharded`), events carry their shard key.
struct PgBatchWriter<'a> {
    connection: &'a mut AsyncPgConnection,
    sharded: bool,
}

impl BatchWriter for PgBatchWriter<'_> {
    type Connection = AsyncPgConnection;

    /// Arrays carry the rows (35 parameters whatever their number), so a write of the size the
    /// flusher takes under a backlog (2 000 events) is one statement: each statement costs a
    /// round trip, and on Citus its routing to every shard.
    const ROWS_PER_STATEMENT: usize = 2_000;

    fn connection(&mut self) -> &mut AsyncPgConnection {
        self.connection
    }

    async fn opted_out_among(
        &mut self,
        subject_ids: &[String],
    ) -> QueryResult<Vec<ConsentSubject>> {
        let statement = diesel::sql_query(OPTED_OUT_OF_BATCH)
            .bind::<Array<diesel::sql_types::Text>, _>(subject_ids);
        Ok(super::opted_out_subjects(
            Prepared(statement).load(self.connection).await?,
        ))
    }

    async fn insert(&mut self, events: &[&EventRecord]) -> QueryResult<Vec<Uuid>> {
        if self.sharded {
            let owners = citus::keep_key_owners(self.connection, events).await?;
            return insert_unnest(self.connection, &owners, true).await;
        }
        insert_unnest(self.connection, events, false).await
    }

    async fn upsert_sessions(&mut self, rows: &[SessionRecord]) -> QueryResult<()> {
        upsert_sessions(self.connection, rows).await.map(drop)
    }

    async fn upsert_sessions_and_insert_segments(
        &mut self,
        sessions: &[SessionRecord],
        segments: &[NewSegment],
    ) -> QueryResult<()> {
        // Sent together, before either answer is awaited (diesel-async pipelines them).
        let connection: &AsyncPgConnection = self.connection;
        let upsert = async {
            match sessions.is_empty() {
                true => Ok(0),
                false => upsert_sessions(connection, sessions).await,
            }
        };
        let insert = futures_util::future::try_join_all(segments.iter().map(|segment| {
            super::reports::schema::insert_segment(segment).execute(&mut &*connection)
        }));
        futures_util::try_join!(upsert, insert).map(drop)
    }
}

/// PostgreSQL, and Citus on top of it.
pub struct Postgres {
    channel: Arc<channel::PgChannel>,
    /// Whether `events` has Citus' shard key, once the database said (`None` before).
    sharded: std::sync::Mutex<Option<bool>>,
}

/// Events in PostgreSQL.
pub type PostgresStore = Database<Postgres>;

/// Opens a store on the PostgreSQL database `url`.
pub async fn connect(url: &str, options: &PoolOptions) -> Result<PostgresStore, StorageError> {
    let pool = pool::build(url, options, CONNECTION_SETUP)?;
    let channel = Arc::new(channel::PgChannel {
        url: url.to_owned(),
        pool: pool.clone(),
    });
    let dialect = Postgres {
        channel,
        sharded: std::sync::Mutex::new(None),
    };
    Ok(Database::new(pool, dialect))
}

impl Postgres {
    /// Whether events are written with a shard key: asked of the database once (the schema
    /// changes only through `sluice migrate`, which tells this store itself).
    async fn sharded(&self, connection: &mut AsyncPgConnection) -> Result<bool, StorageError> {
        if let Some(known) = *self.known_layout() {
            return Ok(known);
        }
        // No events table yet (`None`): the insert fails on its own.
        let Some(sharded) = citus::events_have_shard_key(connection).await? else {
            return Ok(false);
        };
        *self.known_layout() = Some(sharded);
        Ok(sharded)
    }

    fn known_layout(&self) -> std::sync::MutexGuard<'_, Option<bool>> {
        self.sharded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Dialect for Postgres {
    type Pool = Pool<AsyncPgConnection>;
    type Connection = AsyncPgConnection;

    const BACKEND: Backend = Backend::Postgres;

    async fn transact(
        &self,
        pool: &Self::Pool,
        transaction: Transaction<'_>,
    ) -> Result<usize, StorageError> {
        let mut connection = pool.checkout().await?;
        let sharded = match transaction {
            Transaction::Batch { .. } => self.sharded(&mut connection).await?,
            // Statements that insert no events.
            _ => false,
        };
        let mut run = connection.build_transaction();
        if let Transaction::Backfill = transaction {
            // The backfill must not see batches other nodes commit meanwhile, which come
            // with their own segments.
            run = run.repeatable_read();
        }
        let result = run
            .run::<_, diesel::result::Error, _>(async |connection| {
                let mut writer = PgBatchWriter {
                    connection,
                    sharded,
                };
                transaction.run(&mut writer).await
            })
            .await;
        Ok(result?)
    }

    async fn claim_key(
        &self,
        connection: &mut AsyncPgConnection,
        key: Uuid,
        event_id: Uuid,
    ) -> Result<Uuid, StorageError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let claimed = diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::key.eq(Stored(key)),
                    idempotency_keys::event_id.eq(Stored(event_id)),
                ))
                .on_conflict_do_nothing()
                .execute(connection)
                .await?;
            if claimed == 1 {
                return Ok(event_id);
            }
            // A new statement sees the committed winner (READ COMMITTED).
            let owner = idempotency_keys::table
                .find(Stored(key))
                .select(idempotency_keys::event_id)
                .first(connection)
                .await
                .optional()?;
            if let Some(owner) = owner {
                return Ok(owner);
            }
        }
        Err(StorageError::ContendedKey(key))
    }

    async fn set_consent(
        &self,
        connection: &mut AsyncPgConnection,
        subject: &ConsentSubject,
        granted: bool,
    ) -> Result<(), StorageError> {
        diesel::insert_into(consents::table)
            .values((
                consents::subject_type.eq(subject.kind()),
                consents::subject_id.eq(subject.id()),
                consents::granted.eq(granted),
                consents::updated_at.eq(diesel::dsl::sql::<UtcTime>("now()")),
            ))
            .on_conflict((consents::subject_type, consents::subject_id))
            .do_update()
            // The inserted row's time: Citus evaluates `now()` in VALUES, but refuses it in
            // the update of a distributed (reference) table.
            .set((
                consents::granted.eq(granted),
                consents::updated_at.eq(diesel::upsert::excluded(consents::updated_at)),
            ))
            .execute(connection)
            .await?;
        Ok(())
    }

    async fn consent_decisions(
        &self,
        connection: &mut AsyncPgConnection,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<ConsentDecision>, StorageError> {
        let query = super::consent_decisions_query(limit);
        let rows = match since {
            Some(since) => {
                query
                    .filter(consents::updated_at.ge(Stored(since)))
                    .load(connection)
                    .await?
            }
            None => {
                query
                    .filter(consents::granted.eq(false))
                    .load(connection)
                    .await?
            }
        };
        Ok(super::consent_decisions(rows))
    }

    async fn migrate(&self, pool: &Self::Pool) -> Result<usize, StorageError> {
        let applied = migrations::run(pool.checkout().await?, migrations::POSTGRES).await?;
        match self.transact(pool, Transaction::Backfill).await {
            // Another node starting at the same time took the marker first and did it.
            Err(StorageError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure,
                _,
            ))) => tracing::info!("metrics: another node encoded the earlier events"),
            other => {
                other?;
            }
        }
        let mut connection = pool.checkout().await?;
        if citus::distribute(&mut connection).await? {
            *self.known_layout() = None;
            self.sharded(&mut connection).await?;
        }
        Ok(applied)
    }

    async fn pending_migrations(&self, pool: &Self::Pool) -> Result<usize, StorageError> {
        migrations::pending(pool.checkout().await?, migrations::POSTGRES).await
    }

    async fn distribution(
        &self,
        connection: &mut AsyncPgConnection,
    ) -> Result<Option<super::Distribution>, StorageError> {
        citus::distribution(connection).await
    }

    fn node_channel(&self) -> Option<Arc<dyn NodeChannel>> {
        Some(self.channel.clone())
    }
}
