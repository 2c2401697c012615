//! What only a Citus cluster has: a PostgreSQL database with data moving onto the cluster,
//! shards rebalanced onto a new worker while Sluice writes, and a worker or the coordinator
//! lost under load. Run when `SLUICE_TEST_CITUS_URL` is set; the fault tests start a cluster
//! of their own (`scripts/citus-cluster`), since they kill one of its nodes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use sluice::domain::{EventRecord, Interval, MetricsQuery};
use sluice::storage::{self, EventStore, PoolOptions};
use uuid::Uuid;

use crate::reliability::OnError;
use crate::support::database::{Backend, TestDatabase};
use crate::support::stores::missing_events;

fn citus_admin_url() -> Option<String> {
    match Backend::citus() {
        Some(Backend::Citus { admin_url }) => Some(admin_url),
        _ => None,
    }
}

async fn migrated_store(url: &str) -> Arc<dyn EventStore> {
    let store = storage::connect(url, &PoolOptions::default())
        .await
        .expect("store");
    store.run_migrations().await.expect("migrate");
    store
}

/// An event of a session at `second` past a fixed hour, with the fingerprint the pipeline
/// would give it.
fn event_at(session: Uuid, second: i64, path: &str) -> EventRecord {
    let mut event = sluice::domain::test_support::event("page_viewed");
    event.session_id = Some(session);
    event.occurred_at = Utc
        .timestamp_opt(1_767_261_600 + second, 0)
        .single()
        .expect("time");
    event.props = Some(sluice::domain::Props::from_json_text(
        json!({ "path": path }).to_string(),
    ));
    event.dedup_fingerprint = Some(format!("{:010}-{session}-{second}", 1_767_261_600 + second));
    event
}

fn metrics_query() -> MetricsQuery {
    let day = |day| {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0)
            .single()
            .expect("day")
    };
    MetricsQuery {
        from: day(1),
        to: day(2),
        interval: Interval::Hour,
        event_type: None,
        filters: Default::default(),
        limit: 10,
        compare: None,
        goals: Vec::new(),
    }
}

/// An operator's PostgreSQL with events becomes a Citus coordinator (the extension, the
/// workers) and runs `sluice migrate`: the tables are distributed with their rows, every
/// figure stays, and repeats of events stored before the move are still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_with_data_moves_onto_the_cluster() {
    let Some(admin_url) = citus_admin_url() else {
        return;
    };
    let database = TestDatabase::create_outside_the_cluster(&admin_url).await;
    let sessions: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let before: Vec<EventRecord> = (0..200)
        .map(|index| {
            event_at(
                sessions[index % 20],
                index as i64 * 7,
                &format!("/p{}", index % 9),
            )
        })
        .collect();
    let single = migrated_store(&database.url).await;
    assert_eq!(single.distribution().await.expect("distribution"), None);
    assert_eq!(single.insert_events(&before).await.expect("write"), 200);
    let report_before = single.report(&metrics_query()).await.expect("metrics");
    drop(single);

    database.join_cluster().await;
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("migrate")
        .env("SLUICE_DATABASE_URL", &database.url)
        .output()
        .expect("sluice migrate");
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let cluster = migrated_store(&database.url).await;
    let distribution = cluster
        .distribution()
        .await
        .expect("distribution")
        .expect("a Citus database");
    assert!(
        distribution
            .tables
            .iter()
            .any(|table| table.name == "events" && table.method == "distributed"),
        "{distribution:?}"
    );
    assert_eq!(cluster.count_events().await.expect("count"), 200);
    assert_eq!(cluster.count_rows("sessions").await.expect("sessions"), 20);
    assert_eq!(
        cluster.report(&metrics_query()).await.expect("metrics"),
        report_before,
        "every figure stays"
    );

    // Repeats (same fingerprint, new ids) of events stored before the move are refused;
    // a new event is written.
    let mut repeats: Vec<EventRecord> = before[..50]
        .iter()
        .map(|original| {
            let mut repeat = original.clone();
            repeat.id = Uuid::now_v7();
            repeat
        })
        .collect();
    repeats.push(event_at(sessions[0], 5_000, "/new"));
    assert_eq!(cluster.insert_events(&repeats).await.expect("write"), 1);
    assert_eq!(cluster.count_events().await.expect("count"), 201);
    let session = cluster
        .find_session(sessions[0])
        .await
        .expect("read")
        .expect("session");
    assert_eq!(
        session.event_count, 11,
        "10 events before the move, one after"
    );
    assert!(
        cluster
            .find_event(before[7].id)
            .await
            .expect("read")
            .is_some()
    );

    // A second run changes nothing.
    assert_eq!(cluster.run_migrations().await.expect("again"), 0);
    assert_eq!(cluster.count_events().await.expect("count"), 201);
}

/// A worker joins a cluster whose shards are all on one worker, and `citus_rebalance_start`
/// moves half of them while a Sluice node writes: every acknowledged event is stored once,
/// and the shards end up on both workers. The operator asked for four shards
/// (`citus.shard_count`), as SCALING.md says to when workers will be added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_move_to_a_new_worker_while_sluice_writes() {
    let Some(admin_url) = citus_admin_url() else {
        return;
    };
    let database = TestDatabase::create_outside_the_cluster(&admin_url).await;
    let workers = database.join_cluster_with(1).await;
    database
        .execute(
            "DO $$ BEGIN
               EXECUTE format('ALTER DATABASE %I SET citus.shard_count = 4', current_database());
             END $$",
        )
        .await;
    let settings = [
        ("SLUICE_ACK", "durable"),
        ("SLUICE_BATCH_TIMEOUT_MS", "20"),
        ("SLUICE_RATE_LIMIT_PER_SECOND", "0"),
    ];
    let sluice = crate::support::process::SluiceProcess::start_with(&database.url, &settings).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(crate::reliability::load(
        sluice.url(),
        4,
        stopped,
        OnError::Stop,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let new_worker = &workers[1];
    database
        .execute(&format!(
            "SELECT citus_add_node('{}', {})",
            new_worker.ip(),
            new_worker.port()
        ))
        .await;
    database
        .execute("SELECT citus_rebalance_start(shard_transfer_mode => 'force_logical')")
        .await;
    database.execute("SELECT citus_rebalance_wait()").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    let acknowledged = load.await.expect("load");
    assert!(acknowledged.len() > 50, "load ran: {}", acknowledged.len());

    let store = storage::connect(&database.url, &PoolOptions::default())
        .await
        .expect("store");
    let distribution = store
        .distribution()
        .await
        .expect("distribution")
        .expect("Citus");
    assert_eq!(distribution.workers.len(), 2, "{distribution:?}");
    let events = distribution
        .tables
        .iter()
        .find(|table| table.name == "events")
        .expect("events");
    assert_eq!(
        events.shards, 4,
        "the operator's shard count: {distribution:?}"
    );
    database
        .execute(
            "DO $$ BEGIN
               IF (SELECT count(DISTINCT placement.groupid)
                   FROM pg_dist_placement placement JOIN pg_dist_shard shard USING (shardid)
                   WHERE shard.logicalrelid = 'events'::regclass) <> 2 THEN
                 RAISE EXCEPTION 'the events shards are not on both workers';
               END IF;
             END $$",
        )
        .await;
    let missing = missing_events(store.as_ref(), &acknowledged).await;
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events lost",
        acknowledged.len()
    );
    assert!(
        store.count_events().await.expect("count") >= acknowledged.len() as i64,
        "and none twice (ids are the primary key)"
    );
}

/// A cluster of this test's own, for killing one of its nodes (other tests share the one in
/// `SLUICE_TEST_CITUS_URL`); stopped on drop.
struct OwnCluster {
    dir: tempfile::TempDir,
    url: String,
}

impl OwnCluster {
    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/citus-cluster");

    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-citus-fault")
            .tempdir()
            .expect("dir");
        let url = Self::run(&dir, "start");
        Self { dir, url }
    }

    /// Runs the cluster script; its last line of output.
    fn run(dir: &tempfile::TempDir, command: &str) -> String {
        let output = std::process::Command::new(Self::SCRIPT)
            .args([command, &dir.path().display().to_string()])
            .output()
            .expect("scripts/citus-cluster");
        assert!(
            output.status.success(),
            "citus-cluster {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned()
    }

    /// Kills `node`'s postmaster with SIGKILL, as a crash does.
    fn kill(&self, node: &str) {
        let pid_file = self.dir.path().join(node).join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let pid = pid.lines().next().expect("pid").trim().to_owned();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
    }

    /// Starts the nodes that are down again (waiting out the killed one's leftovers).
    async fn restart_stopped(&self) {
        for _ in 0..30 {
            let output = std::process::Command::new(Self::SCRIPT)
                .args(["start", &self.dir.path().display().to_string()])
                .output()
                .expect("scripts/citus-cluster");
            if output.status.success() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the killed worker did not start again");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::SCRIPT)
            .args(["stop", &self.dir.path().display().to_string()])
            .output();
    }
}

/// A worker killed with SIGKILL under durable load, beside a buffered node: while it is
/// down the buffered node keeps events up to its capacity and then answers
/// SERVICE_UNAVAILABLE with `retryAfterSeconds`, and `/readyz` says why; once the worker is
/// back, every acknowledged event of both nodes is stored, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_under_load_loses_nothing() {
    a_node_killed_under_load_loses_nothing("worker1").await;
}

/// The same with the coordinator killed (a crash, then a restart): the nodes' connections
/// break, the writes in flight are retried, and two-phase commits left in doubt are settled
/// by Citus' recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_under_load_loses_nothing() {
    a_node_killed_under_load_loses_nothing("coordinator").await;
}

async fn a_node_killed_under_load_loses_nothing(node: &str) {
    if citus_admin_url().is_none() {
        return;
    }
    let cluster = OwnCluster::start();
    let database = TestDatabase::create(&Backend::Citus {
        admin_url: cluster.url.clone(),
    })
    .await;
    let common = [
        ("SLUICE_BATCH_TIMEOUT_MS", "20"),
        ("SLUICE_RATE_LIMIT_PER_SECOND", "0"),
    ];
    let durable_settings = [common[0], common[1], ("SLUICE_ACK", "durable")];
    let buffered_settings = [
        common[0],
        common[1],
        ("SLUICE_BATCH_SIZE", "50"),
        ("SLUICE_BUFFER_CAPACITY", "200"),
    ];
    let durable =
        crate::support::process::SluiceProcess::start_with(&database.url, &durable_settings).await;
    let buffered =
        crate::support::process::SluiceProcess::start_with(&database.url, &buffered_settings).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(crate::reliability::load(
        durable.url(),
        4,
        stopped,
        OnError::Retry,
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;

    cluster.kill(node);
    // The buffered node takes events until its buffer is full, then refuses with a hint.
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(10))
        .build(buffered.url())
        .expect("client");
    let mut buffered_acks = Vec::new();
    let refusal = loop {
        assert!(buffered_acks.len() <= 400, "the buffer never filled");
        let event = json!({"eventType": "signed_up", "props": {"n": Uuid::now_v7()}});
        match crate::support::call_raw(&client, "eventIngestion.track", event).await {
            Ok(output) => buffered_acks.push(
                output["eventId"]
                    .as_str()
                    .expect("id")
                    .parse::<Uuid>()
                    .expect("uuid"),
            ),
            Err(error) => break error,
        }
    };
    let refusal = refusal.to_string();
    assert!(
        refusal.contains("SERVICE_UNAVAILABLE") || refusal.contains("-32003"),
        "{refusal}"
    );
    assert!(refusal.contains("retryAfterSeconds"), "{refusal}");
    let ready = crate::support::raw_http::get(&format!("{}/readyz", buffered.url())).await;
    assert_eq!(ready.status.as_u16(), 503, "{}", ready.text);
    assert!(ready.text.contains("reason"), "{}", ready.text);

    cluster.restart_stopped().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    let durable_acks = load.await.expect("load");
    assert!(
        durable_acks.len() > 20,
        "durable load ran: {}",
        durable_acks.len()
    );

    let store = storage::connect(&database.url, &PoolOptions::default())
        .await
        .expect("store");
    let acknowledged: Vec<Uuid> = durable_acks.into_iter().chain(buffered_acks).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let missing = missing_events(store.as_ref(), &acknowledged).await;
        if missing == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} of {} acknowledged events not stored",
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    database
        .execute(
            "DO $$ BEGIN
               IF (SELECT count(*) <> count(DISTINCT id) FROM events) THEN
                 RAISE EXCEPTION 'an event stored twice';
               END IF;
             END $$",
        )
        .await;
}
