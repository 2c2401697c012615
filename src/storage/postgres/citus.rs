//! Citus: the same PostgreSQL schema, distributed across a cluster's workers.
//!
//! On a database where the `citus` extension is installed, [`distribute`] (run by
//! `sluice migrate` and at start-up, after the migrations) makes the tables distributed,
//! idempotently and on a database that already holds data:
//!
//! - `sessions` hash-distributed by `id`; `events` by `shard_key` (see [`shard_key`]);
//!   `idempotency_keys` by `key` and `dead_letters` by `id`: all in one co-location group
//!   (one group to rebalance). Every unique rule becomes one Citus can enforce: it must
//!   contain the distribution column.
//! - `consents` a reference table: every worker holds it, so the opt-out read of a write
//!   transaction stays on the worker of each shard.
//! - `metric_segments` (and the backfill marker) stay on the coordinator: written once per
//!   batch (a few kB), read by getMetrics without leaving the coordinator.
//!
//! Why: SCALING.md.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use md5::Digest;
use uuid::Uuid;

use crate::domain::EventRecord;
use crate::storage::{DistributedTable, Distribution, StorageError, WorkerNode};

/// The shard key of an event: a digest of its fingerprint, so that every repeat of an event
/// lands on the original's shard and the unique index on `(shard_key, dedup_fingerprint)` is
/// as strong as one on the fingerprint alone; without a fingerprint (deduplication off), its
/// idempotency key, for the same reason; else its own id. [`SHARD_KEY_OF_ROW`] is the same
/// rule in SQL.
pub fn shard_key(event: &EventRecord) -> Uuid {
    match (event.dedup_fingerprint.as_deref(), event.idempotency_key) {
        (Some(fingerprint), _) => Uuid::from_bytes(md5::Md5::digest(fingerprint).into()),
        (None, Some(key)) => key,
        (None, None) => event.id,
    }
}

/// [`shard_key`] of a stored row, for rows written before the table was distributed
/// (`md5(…)::uuid` reads the 32 hex digits as the uuid's 16 bytes, as `Uuid::from_bytes`).
const SHARD_KEY_OF_ROW: &str = "coalesce(md5(dedup_fingerprint)::uuid, idempotency_key, id)";

/// Shards per worker that takes shards, unless the operator set `citus.shard_count`.
///
/// Every batch writes to every shard, and each shard costs its own statements and its own
/// part of the two-phase commit. Measured on the test cluster (one 2 000-event write): 4
/// shards took a third longer than 2, and Citus' default of 32 three to five times longer
/// (BENCHMARKS.md). One per worker is the cheapest write; an operator who expects to add
/// workers sets `citus.shard_count` (for example `ALTER DATABASE … SET citus.shard_count = 8`)
/// before the first `sluice migrate`, so that the rebalancer has shards to move.
const SHARDS_PER_WORKER: i64 = 1;

/// Serializes [`distribute`] between nodes starting together (a session lock on the
/// coordinator; any constant both agree on).
const DISTRIBUTE_LOCK: i64 = 0x51C3_D157;

/// The tables distributed by hash, in the order they are distributed (the first leads the
/// co-location group), with their distribution column.
const HASH_DISTRIBUTED: [(&str, &str); 4] = [
    ("sessions", "id"),
    ("events", "shard_key"),
    ("idempotency_keys", "key"),
    ("dead_letters", "id"),
];

/// Gives `events` the shard key and the keys Citus can enforce, in one transaction.
/// Citus refuses a unique index without the distribution column; with [`shard_key`] the
/// fingerprint rule keeps its strength, and so does the idempotency-key rule for events
/// without a fingerprint. Events with both are held to their key by the `idempotency_keys`
/// table at write time too ([`keep_key_owners`]).
fn make_events_distributable() -> String {
    format!(
        "BEGIN;
         ALTER TABLE events ADD COLUMN shard_key uuid;
         UPDATE events SET shard_key = {SHARD_KEY_OF_ROW};
         ALTER TABLE events ALTER COLUMN shard_key SET NOT NULL;
         ALTER TABLE events DROP CONSTRAINT events_pkey;
         ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (shard_key, id);
         DROP INDEX events_dedup_fingerprint_key;
         CREATE UNIQUE INDEX events_dedup_fingerprint_key ON events (shard_key, dedup_fingerprint)
             WHERE dedup_fingerprint IS NOT NULL;
         DROP INDEX events_idempotency_key_key;
         CREATE UNIQUE INDEX events_idempotency_key_key ON events (shard_key, idempotency_key)
             WHERE idempotency_key IS NOT NULL;
         COMMIT;"
    )
}

#[derive(QueryableByName)]
struct KeyOwner {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    key: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
}

/// The events of `events` that own their idempotency key (or have none), claiming the keys
/// nobody holds yet, inside the write transaction: on one database the unique index on
/// `events.idempotency_key` does this; a distributed `events` can only hold keys unique per
/// shard. Through the pipeline every key was claimed when its event was accepted, so this
/// only confirms; batches without keys (what trackers send) skip it.
pub(super) async fn keep_key_owners<'e>(
    connection: &mut AsyncPgConnection,
    events: &[&'e EventRecord],
) -> diesel::QueryResult<Vec<&'e EventRecord>> {
    use diesel::sql_types::{Array, Uuid as SqlUuid};
    let (keys, ids): (Vec<Uuid>, Vec<Uuid>) = events
        .iter()
        .filter_map(|event| Some((event.idempotency_key?, event.id)))
        .unzip();
    if keys.is_empty() {
        return Ok(events.to_vec());
    }
    diesel::sql_query(
        "INSERT INTO idempotency_keys (key, event_id)
         SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
    )
    .bind::<Array<SqlUuid>, _>(&keys)
    .bind::<Array<SqlUuid>, _>(&ids)
    .execute(connection)
    .await?;
    let owners: Vec<KeyOwner> =
        diesel::sql_query("SELECT key, event_id FROM idempotency_keys WHERE key = ANY($1::uuid[])")
            .bind::<Array<SqlUuid>, _>(&keys)
            .load(connection)
            .await?;
    let owners: std::collections::HashMap<Uuid, Uuid> = owners
        .into_iter()
        .map(|owner| (owner.key, owner.event_id))
        .collect();
    Ok(events
        .iter()
        .copied()
        .filter(|event| {
            event
                .idempotency_key
                .is_none_or(|key| owners.get(&key) == Some(&event.id))
        })
        .collect())
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    value: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

async fn flag(connection: &mut AsyncPgConnection, sql: &str) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(sql).get_result(connection).await?;
    Ok(row.value)
}

/// Whether the `citus` extension is installed in this database.
pub(super) async fn is_citus(connection: &mut AsyncPgConnection) -> diesel::QueryResult<bool> {
    flag(
        connection,
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS value",
    )
    .await
}

/// Whether `events` has its shard key: the write path then fills it. `None` before the
/// migrations made the table.
pub(super) async fn events_have_shard_key(
    connection: &mut AsyncPgConnection,
) -> diesel::QueryResult<Option<bool>> {
    if !flag(
        connection,
        "SELECT to_regclass('events') IS NOT NULL AS value",
    )
    .await?
    {
        return Ok(None);
    }
    flag(
        connection,
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'events'::regclass
                        AND attname = 'shard_key' AND NOT attisdropped) AS value",
    )
    .await
    .map(Some)
}

async fn is_distributed(
    connection: &mut AsyncPgConnection,
    table: &str,
) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1::regclass) AS value",
    )
    .bind::<Text, _>(table)
    .get_result(connection)
    .await?;
    Ok(row.value)
}

/// Distributes the schema when this is a Citus database; whether it is one. Idempotent: each
/// step is skipped when done, so a run cut short is finished by the next one.
pub(super) async fn distribute(connection: &mut AsyncPgConnection) -> Result<bool, StorageError> {
    if !is_citus(connection).await? {
        return Ok(false);
    }
    diesel::sql_query(format!("SELECT pg_advisory_lock({DISTRIBUTE_LOCK})"))
        .execute(connection)
        .await?;
    let distributed = distribute_locked(connection).await;
    diesel::sql_query(format!("SELECT pg_advisory_unlock({DISTRIBUTE_LOCK})"))
        .execute(connection)
        .await?;
    distributed.map(|()| true)
}

async fn distribute_locked(connection: &mut AsyncPgConnection) -> Result<(), StorageError> {
    if events_have_shard_key(connection).await? == Some(false) {
        tracing::info!("citus: giving events their shard key");
        connection
            .batch_execute(&make_events_distributable())
            .await?;
    }
    let shards = shard_count(connection).await?;
    let (leader, _) = HASH_DISTRIBUTED[0];
    for (table, column) in HASH_DISTRIBUTED {
        if is_distributed(connection, table).await? {
            continue;
        }
        tracing::info!(table, column, shards, "citus: distributing");
        let statement = if table == leader {
            format!(
                "SELECT create_distributed_table('{table}', '{column}', shard_count => {shards})"
            )
        } else {
            format!(
                "SELECT create_distributed_table('{table}', '{column}', colocate_with => '{leader}')"
            )
        };
        connection.batch_execute(&statement).await?;
        drop_local_copy(connection, table).await?;
    }
    if !is_distributed(connection, "consents").await? {
        tracing::info!(table = "consents", "citus: making a reference table");
        connection
            .batch_execute("SELECT create_reference_table('consents')")
            .await?;
        drop_local_copy(connection, "consents").await?;
    }
    Ok(())
}

/// Distributing a table that holds rows copies them into its shards and leaves the
/// coordinator's copy behind, unread: removed here.
async fn drop_local_copy(
    connection: &mut AsyncPgConnection,
    table: &str,
) -> Result<(), StorageError> {
    connection
        .batch_execute(&format!(
            "SELECT truncate_local_data_after_distributing_table('{table}')"
        ))
        .await?;
    Ok(())
}

/// `citus.shard_count` when the operator set it, else [`SHARDS_PER_WORKER`] for each active
/// worker that takes shards.
async fn shard_count(connection: &mut AsyncPgConnection) -> Result<i64, StorageError> {
    let configured: Count = diesel::sql_query(
        "SELECT CASE WHEN source = 'default' THEN 0 ELSE setting::bigint END AS value
         FROM pg_settings WHERE name = 'citus.shard_count'",
    )
    .get_result(connection)
    .await?;
    if configured.value > 0 {
        return Ok(configured.value);
    }
    let workers: Count = diesel::sql_query(
        "SELECT count(*) AS value FROM pg_dist_node
         WHERE isactive AND shouldhaveshards AND noderole = 'primary'",
    )
    .get_result(connection)
    .await?;
    if workers.value == 0 {
        return Err(StorageError::Migration(
            "the Citus cluster has no node that takes shards: add workers with citus_add_node"
                .to_owned(),
        ));
    }
    Ok(workers.value * SHARDS_PER_WORKER)
}

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = Nullable<Text>)]
    column: Option<String>,
    #[diesel(sql_type = BigInt)]
    shards: i64,
}

#[derive(QueryableByName)]
struct NodeRow {
    #[diesel(sql_type = Text)]
    host: String,
    #[diesel(sql_type = Integer)]
    port: i32,
    #[diesel(sql_type = BigInt)]
    shards: i64,
}

/// How Sluice's tables are spread over the cluster, and its active workers; `None` on plain
/// PostgreSQL.
pub(super) async fn distribution(
    connection: &mut AsyncPgConnection,
) -> Result<Option<Distribution>, StorageError> {
    if !is_citus(connection).await? {
        return Ok(None);
    }
    let tables: Vec<TableRow> = diesel::sql_query(
        "SELECT t.name, coalesce(p.method, 'local') AS method, p.column_name AS column,
                coalesce(p.shards, 0) AS shards
         FROM unnest($1::text[]) AS t(name)
         LEFT JOIN (SELECT table_name::text AS name, citus_table_type AS method,
                           nullif(distribution_column, '<none>') AS column_name,
                           shard_count::bigint AS shards
                    FROM citus_tables) p USING (name)
         ORDER BY array_position($1::text[], t.name)",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(crate::storage::TABLES.to_vec())
    .load(connection)
    .await?;
    let workers: Vec<NodeRow> = diesel::sql_query(
        "SELECT n.nodename AS host, n.nodeport AS port,
                (SELECT count(*) FROM pg_dist_placement p WHERE p.groupid = n.groupid) AS shards
         FROM pg_dist_node n
         WHERE n.isactive AND n.noderole = 'primary' AND n.groupid <> 0
         ORDER BY n.nodeid",
    )
    .load(connection)
    .await?;
    Ok(Some(Distribution {
        tables: tables
            .into_iter()
            .map(|row| DistributedTable {
                name: row.name,
                method: row.method,
                column: row.column,
                shards: row.shards,
            })
            .collect(),
        workers: workers
            .into_iter()
            .map(|row| WorkerNode {
                host: row.host,
                port: row.port,
                shard_placements: row.shards,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_lands_on_the_shard_of_its_original() {
        let mut event = crate::domain::test_support::event("page_viewed");
        assert_eq!(shard_key(&event), event.id, "nothing else to go by");
        let key = Uuid::now_v7();
        event.idempotency_key = Some(key);
        assert_eq!(shard_key(&event), key);
        event.dedup_fingerprint = Some("1767261600-abc".into());
        let by_fingerprint = shard_key(&event);
        let mut repeat = crate::domain::test_support::event("page_viewed");
        repeat.dedup_fingerprint = event.dedup_fingerprint.clone();
        repeat.session_id = Some(Uuid::now_v7());
        assert_eq!(shard_key(&repeat), by_fingerprint, "a repeat lands alike");
        // PostgreSQL's md5('1767261600-abc')::uuid, as the SQL rule computes it.
        assert_eq!(
            by_fingerprint.to_string(),
            "2ffd8711-eff1-5e15-1302-d69b17e2ee6f"
        );
    }
}
