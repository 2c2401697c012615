//! What happens when things go wrong: a row the database refuses does not block the rest.

use serde_json::json;

use crate::backend_tests;
use crate::support::proxy::ChaosProxy;
use crate::support::raw_http::{get, post};
use crate::support::{
    Backend, TestDatabase, TestServer, assert_error, error_data, page_view, test_config,
};

backend_tests!(
    a_poison_row_is_dead_lettered_and_the_rest_written,
    probes_report_liveness_readiness_and_metrics,
    durable_mode_answers_after_the_commit,
    a_request_can_ask_for_durability,
    sigkill_in_durable_mode_loses_no_acknowledged_event,
    sigterm_in_buffered_mode_loses_no_acknowledged_event,
    diagnostics_describe_the_database_and_pipeline,
    a_soak_run_keeps_memory_flat,
    a_full_buffer_refuses_a_whole_batch_and_loses_nothing
);

async fn a_poison_row_is_dead_lettered_and_the_rest_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    // A real database refusal, caused on the test's own database.
    server
        .execute_sql(
            "ALTER TABLE events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')",
            "CREATE TRIGGER no_poison BEFORE INSERT ON events WHEN NEW.event_type = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poison row'); END;",
        )
        .await;
    let mut good = Vec::new();
    for index in 0..10 {
        if index == 6 {
            server
                .track(json!({"eventType": "poison", "props": {"n": index}}))
                .await;
        } else {
            good.push(server.track(page_view()).await);
        }
    }
    let flush = server.force_flush().await;
    assert_eq!(flush["persisted"], 9, "{flush}");
    assert_eq!(flush["flushed"], true);
    assert_eq!(server.count().await, 9);
    for id in good {
        assert!(server.stored(id).await.is_some());
    }
    assert_eq!(server.store().count_dead_letters().await.expect("count"), 1);
    let stats = server.stats().await;
    assert_eq!(stats["counters"]["deadLettered"], 1);
    assert_eq!(
        stats["bufferSize"], 0,
        "nothing is stuck behind the poison row"
    );
    assert_eq!(stats["health"], "healthy");
    // Later events keep flowing.
    server.track(page_view()).await;
    server.force_flush().await;
    assert_eq!(server.count().await, 10);
}

async fn probes_report_liveness_readiness_and_metrics(backend: Backend) {
    let server = TestServer::start(backend).await;
    let live = get(&format!("{}/healthz", server.http_url())).await;
    assert_eq!(live.status, 200);
    assert_eq!(live.body["status"], "ok");
    let ready = get(&format!("{}/readyz", server.http_url())).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");
    server.track(page_view()).await;
    server.track(page_view()).await;
    server.force_flush().await;
    let metrics = get(&format!("{}/metrics", server.http_url())).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/plain")
    );
    for line in [
        "sluice_events_accepted_total 2",
        "sluice_events_persisted_total 2",
        "sluice_buffer_events 0",
        "# TYPE sluice_flushes_total counter",
        "sluice_health 0",
        "# TYPE sluice_flush_duration_seconds histogram",
        "sluice_flush_duration_seconds_count 1",
        "sluice_flush_batch_events_bucket{le=\"1\"} 0",
        "sluice_flush_batch_events_bucket{le=\"5\"} 1",
        "# TYPE sluice_procedure_duration_seconds histogram",
        "sluice_procedure_duration_seconds_count{procedure=\"eventIngestion.track\"} 2",
    ] {
        assert!(
            metrics.text.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            metrics.text
        );
    }
}

/// A pooled connection that PostgreSQL closed (an administrator terminated its backend) is
/// replaced at checkout, also one used a moment ago, which skips the test query.
async fn a_connection_the_database_closed_is_not_handed_out(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .track(json!({"eventType": "before_termination"}))
        .await;
    assert_eq!(server.force_flush().await["persisted"], 1);
    server
        .execute_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            "",
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    server
        .track(json!({"eventType": "after_termination"}))
        .await;
    assert_eq!(server.force_flush().await["persisted"], 1);
}

/// PostgreSQL made unreachable (a proxy in front of it is cut) while events arrive: they are
/// kept, readiness says so, and everything is written once the database is back.
async fn a_database_outage_loses_no_accepted_event(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let upstream = database.server_addr();
    let proxy = ChaosProxy::start(upstream).await;
    let through_proxy = database.url_through(proxy.addr);
    let mut config = test_config(&database);
    config.database.database_url = Some(through_proxy);
    config.pipeline.batch_size = 10;
    config.pipeline.batch_timeout_ms = 100;
    config.pipeline.buffer_capacity = 40;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = sluice::server::RunningServer::start(&config, listener)
        .await
        .expect("start");
    let url = format!("http://{}", server.local_addr());
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(&url)
        .expect("client");

    proxy.cut();
    let mut accepted = Vec::new();
    for _ in 0..40 {
        let output = crate::support::call(&client, "eventIngestion.track", page_view())
            .await
            .expect("accepted while the database is down");
        accepted.push(output["eventId"].as_str().expect("id").to_owned());
    }
    // The bounded buffer is full: the next event is refused, honestly, with a retry hint.
    let refused = crate::support::call(&client, "eventIngestion.track", page_view())
        .await
        .expect_err("the buffer is full");
    crate::support::assert_error(&refused, "SERVICE_UNAVAILABLE", -32603);
    let data = crate::support::error_data(&refused);
    assert_eq!(data["httpStatus"], 503);
    assert!(data["retryAfterSeconds"].as_u64().is_some(), "{data}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ready = get(&format!("{url}/readyz")).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    let stats = server.service().pipeline().stats();
    assert_eq!(stats.buffer_size, 40, "everything accepted is still held");
    assert!(stats.counters.failed_flushes >= 1);
    assert_ne!(stats.health, sluice::pipeline::stats::Health::Healthy);
    // An admin's forceFlush fails too, and says what it can without the database's words.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", crate::support::ADMIN_TOKEN)
            .parse()
            .expect("header"),
    );
    let admin = jsonrpsee::http_client::HttpClientBuilder::default()
        .set_headers(headers)
        .build(&url)
        .expect("admin client");
    let flush = crate::support::call(&admin, "eventIngestion.forceFlush", json!({}))
        .await
        .expect_err("the database is down");
    crate::support::assert_error(&flush, "SERVICE_UNAVAILABLE", -32603);
    let message = flush.message();
    assert!(message.starts_with("Flush failed (db_"), "{message}");
    assert!(message.contains("40 still buffered"), "{message}");
    for detail in ["refused", "connect", "127.0.0.1", "error"] {
        assert!(!message.to_lowercase().contains(detail), "{message}");
    }

    proxy.restore();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let store = server.store().clone();
    // An empty buffer is not enough: its last batch may still be in flight.
    while store.count_events().await.unwrap_or(0) < 40 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for id in &accepted {
        let id: uuid::Uuid = id.parse().expect("uuid");
        assert!(
            store.find_event(id).await.expect("read").is_some(),
            "{id} lost"
        );
    }
    assert_eq!(store.count_events().await.expect("count"), 40);
    assert_eq!(get(&format!("{url}/readyz")).await.status, 200);
    server.stop().await;
    drop(database);
}

async fn durable_mode_answers_after_the_commit(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.pipeline.ack = sluice::pipeline::AckMode::Durable;
    })
    .await;
    // The batch timer is an hour: only the durable path can have written these.
    let id = server.track(page_view()).await;
    assert!(
        server.stored(id).await.is_some(),
        "committed before the answer"
    );
    let events: Vec<serde_json::Value> = (0..50).map(|_| page_view()).collect();
    let output = server
        .call("eventIngestion.trackBatch", json!({"events": events}))
        .await
        .expect("batch");
    assert_eq!(output["successful"], 50);
    assert_eq!(
        server.count().await,
        51,
        "the whole batch committed before the answer"
    );
}

async fn a_request_can_ask_for_durability(backend: Backend) {
    let server = TestServer::start(backend).await;
    let body = |input: serde_json::Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track", "params": input})
            .to_string()
    };
    let durable = crate::support::raw_http::post(
        &server.http_url(),
        body(page_view()),
        &[("x-sluice-ack", "durable")],
    )
    .await;
    let id: uuid::Uuid =
        serde_json::from_value(durable.body["result"]["eventId"].clone()).expect("id");
    assert!(server.stored(id).await.is_some());
    let buffered = crate::support::raw_http::post(&server.http_url(), body(page_view()), &[]).await;
    let id: uuid::Uuid =
        serde_json::from_value(buffered.body["result"]["eventId"].clone()).expect("id");
    assert!(
        server.stored(id).await.is_none(),
        "the default stays buffered"
    );
    let bad = crate::support::raw_http::post(
        &server.http_url(),
        body(page_view()),
        &[("x-sluice-ack", "eventually")],
    )
    .await;
    assert_eq!(
        bad.body["error"]["data"]["code"], "BAD_REQUEST",
        "{}",
        bad.text
    );
}

/// Sends events from several tasks until told to stop; returns the ids that were acknowledged.
/// What a load task does when a call fails.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnError {
    /// Stops: the server went away.
    Stop,
    /// Waits a moment and goes on: the server is there but cannot take events now.
    Retry,
}

/// `tasks` callers tracking page views on `url` until `stop`; the ids acknowledged.
pub(crate) async fn load(
    url: String,
    tasks: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    on_error: OnError,
) -> Vec<uuid::Uuid> {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let url = url.clone();
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let client = jsonrpsee::http_client::HttpClientBuilder::default()
                .request_timeout(std::time::Duration::from_secs(5))
                .build(&url)
                .expect("client");
            let mut acknowledged: Vec<uuid::Uuid> = Vec::new();
            while !*stop.borrow() {
                match crate::support::call_raw(&client, "eventIngestion.track", page_view()).await {
                    Ok(output) => {
                        if output["status"] == "accepted" {
                            acknowledged.push(
                                output["eventId"]
                                    .as_str()
                                    .expect("id")
                                    .parse()
                                    .expect("uuid"),
                            );
                        }
                    }
                    Err(_) => match on_error {
                        OnError::Stop => break,
                        OnError::Retry => {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    },
                }
            }
            acknowledged
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("task"));
    }
    all
}

/// Kills (`KILL`, no chance to drain) or stops (`TERM`) a server under load, then checks that
/// every acknowledged event is in the database.
async fn every_acknowledged_event_survives(backend: Backend, ack: &str, signal: &str) {
    let database = TestDatabase::create(&backend).await;
    let mut sluice = crate::support::process::SluiceProcess::start_with(
        &database.url,
        &[
            ("SLUICE_ACK", ack),
            ("SLUICE_BATCH_TIMEOUT_MS", "50"),
            ("SLUICE_RATE_LIMIT_PER_SECOND", "0"),
        ],
    )
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(load(sluice.url(), 4, stopped, OnError::Stop));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    sluice.signal(signal);
    let exit = sluice
        .wait_for_exit(std::time::Duration::from_secs(30))
        .await;
    let _ = stop.send(true);
    let acknowledged = load.await.expect("load");
    assert!(
        acknowledged.len() > 10,
        "the load ran: {}",
        acknowledged.len()
    );
    if signal == "TERM" {
        assert_eq!(exit.code(), Some(0));
    }
    let store = sluice::storage::connect(&database.url, &sluice::storage::PoolOptions::default())
        .await
        .expect("reopen");
    let missing = crate::support::stores::missing_events(store.as_ref(), &acknowledged).await;
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events lost",
        acknowledged.len()
    );
}

async fn sigkill_in_durable_mode_loses_no_acknowledged_event(backend: Backend) {
    every_acknowledged_event_survives(backend, "durable", "KILL").await;
}

async fn sigterm_in_buffered_mode_loses_no_acknowledged_event(backend: Backend) {
    every_acknowledged_event_survives(backend, "buffered", "TERM").await;
}

async fn diagnostics_describe_the_database_and_pipeline(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.track(page_view()).await;
    server.force_flush().await;
    server.track(page_view()).await;
    let report = server
        .admin_call("eventIngestion.diagnostics", json!({}))
        .await
        .expect("diagnostics");
    let database = &report["database"];
    assert_eq!(database["reachable"], true);
    assert!(database["latencyMs"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert_eq!(database["pendingMigrations"], 0);
    assert_eq!(database["problems"], json!([]));
    let tables: Vec<&str> = database["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|table| table["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        tables,
        [
            "events",
            "sessions",
            "idempotency_keys",
            "consents",
            "dead_letters",
            "metric_segments"
        ]
    );
    assert_eq!(database["tables"][0]["rows"], 1);
    assert_eq!(report["pipeline"]["bufferSize"], 1);
    assert_eq!(report["pipeline"]["health"], "healthy");
    let error = server
        .call("eventIngestion.diagnostics", json!({}))
        .await
        .expect_err("admin only");
    crate::support::assert_error(&error, "UNAUTHORIZED", -32001);
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Sustained load for a while (`SLUICE_SOAK_SECONDS`, 5 by default; set it higher for a real
/// soak): the server's memory after warm-up stays flat instead of growing with the events.
async fn a_soak_run_keeps_memory_flat(backend: Backend) {
    let seconds: u64 = std::env::var("SLUICE_SOAK_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5);
    let database = TestDatabase::create(&backend).await;
    let sluice = crate::support::process::SluiceProcess::start_with(
        &database.url,
        &[
            ("SLUICE_BATCH_TIMEOUT_MS", "100"),
            ("SLUICE_RATE_LIMIT_PER_SECOND", "0"),
        ],
    )
    .await;
    let pid = sluice.child.id();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(load(sluice.url(), 4, stopped, OnError::Stop));
    let mut samples = Vec::new();
    for _ in 0..seconds * 4 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        samples.push(rss_kib(pid));
    }
    let _ = stop.send(true);
    let acknowledged = load.await.expect("load");
    assert!(
        acknowledged.len() > 100,
        "the load ran: {}",
        acknowledged.len()
    );
    let warm = samples[samples.len() / 4];
    let peak_after_warmup = samples[samples.len() / 4..]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    assert!(warm > 0, "RSS readable");
    assert!(
        peak_after_warmup <= warm + warm / 2 + 16 * 1024,
        "memory grew from {warm} KiB to {peak_after_warmup} KiB over {} events: {samples:?}",
        acknowledged.len()
    );
}

/// A write lock on the events table, held by a connection of the test's own until released:
/// a real fault that stalls the flusher's writes on either backend, while reads go on.
struct EventsLocked {
    release: tokio::sync::oneshot::Sender<()>,
    holder: tokio::task::JoinHandle<()>,
}

impl EventsLocked {
    async fn hold(server: &TestServer) -> Self {
        use diesel::connection::SimpleConnection;
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let url = server.database_url();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (locked, is_locked) = tokio::sync::oneshot::channel::<()>();
        let holder = if url.starts_with("postgres") {
            tokio::spawn(async move {
                let mut connection = diesel_async::AsyncPgConnection::establish(&url)
                    .await
                    .expect("connect");
                connection
                    .batch_execute("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE;")
                    .await
                    .expect("lock");
                let _ = locked.send(());
                let _ = released.await;
                connection.batch_execute("COMMIT").await.expect("unlock");
            })
        } else {
            let path = url.trim_start_matches("sqlite://").to_owned();
            tokio::task::spawn_blocking(move || {
                let mut connection =
                    <diesel::SqliteConnection as diesel::Connection>::establish(&path)
                        .expect("open");
                connection.batch_execute("BEGIN IMMEDIATE").expect("lock");
                let _ = locked.send(());
                let _ = released.blocking_recv();
                connection.batch_execute("COMMIT").expect("unlock");
            })
        };
        is_locked.await.expect("locked");
        Self { release, holder }
    }

    async fn release(self) {
        let _ = self.release.send(());
        self.holder.await.expect("lock holder");
    }
}

/// While the database cannot take writes, the buffer fills; a batch that finds it full is
/// refused as a whole, on both transports, with a retry hint. Nothing accepted is lost, and
/// the same batch is accepted once there is room.
async fn a_full_buffer_refuses_a_whole_batch_and_loses_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.pipeline.batch_size = 10;
        config.pipeline.buffer_capacity = 20;
    })
    .await;
    let lock = EventsLocked::hold(&server).await;
    for n in 0..10 {
        server
            .track(json!({"eventType": "stalled", "props": {"n": n}}))
            .await;
    }
    // The flusher takes that batch and waits on the lock; the batch is still held (and
    // counted), and the buffer fills behind it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.stats().await["isProcessing"] != true && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.stats().await["bufferSize"],
        10,
        "the batch being written"
    );
    for n in 0..10 {
        server
            .track(json!({"eventType": "waiting", "props": {"n": n}}))
            .await;
    }

    let batch = json!({"events": [{"eventType": "late"}, "not even an object"]});
    let refused = server
        .call("eventIngestion.trackBatch", batch.clone())
        .await
        .expect_err("the buffer is full");
    assert_error(&refused, "SERVICE_UNAVAILABLE", -32603);
    assert_eq!(error_data(&refused)["retryAfterSeconds"], 1);
    let trpc = post(
        &format!("{}/api/trpc/eventIngestion.trackBatch", server.http_url()),
        batch.to_string(),
        &[],
    )
    .await;
    assert_eq!(trpc.status, 503, "{}", trpc.text);
    assert_eq!(trpc.body["error"]["data"]["code"], "SERVICE_UNAVAILABLE");

    lock.release().await;
    assert_eq!(
        server
            .wait_for_count(20, std::time::Duration::from_secs(30))
            .await,
        20,
        "every accepted event is written once the lock is gone"
    );
    let retried = server
        .call("eventIngestion.trackBatch", batch)
        .await
        .expect("room again");
    assert_eq!(retried["successful"], 1);
    assert_eq!(
        retried["failed"], 1,
        "now the bad item is validated: {retried}"
    );
}

/// Two nodes on one PostgreSQL with durable acks and load on both; one is killed (SIGKILL).
/// Every event either node acknowledged is stored, the survivor keeps serving, and an
/// idempotency key claimed on the lost node replays on the survivor.
async fn losing_a_node_loses_nothing_it_acknowledged_and_the_other_keeps_serving(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let settings = [
        ("SLUICE_ACK", "durable"),
        ("SLUICE_BATCH_TIMEOUT_MS", "50"),
        ("SLUICE_RATE_LIMIT_PER_SECOND", "0"),
    ];
    let mut lost =
        crate::support::process::SluiceProcess::start_with(&database.url, &settings).await;
    let survivor =
        crate::support::process::SluiceProcess::start_with(&database.url, &settings).await;
    let client = |url: String| {
        jsonrpsee::http_client::HttpClientBuilder::default()
            .request_timeout(std::time::Duration::from_secs(10))
            .build(url)
            .expect("client")
    };
    let key = uuid::Uuid::now_v7();
    let keyed = json!({"eventType": "signed_up", "idempotencyKey": key});
    let claimed =
        crate::support::call_raw(&client(lost.url()), "eventIngestion.track", keyed.clone())
            .await
            .expect("accepted on the node that will be lost");
    assert_eq!(claimed["status"], "accepted", "{claimed}");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load_on_lost = tokio::spawn(load(lost.url(), 4, stopped.clone(), OnError::Stop));
    let load_on_survivor = tokio::spawn(load(survivor.url(), 4, stopped, OnError::Stop));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    lost.signal("KILL");
    lost.wait_for_exit(std::time::Duration::from_secs(30)).await;
    // The survivor goes on under its load, then answers a new caller.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let survivor_client = client(survivor.url());
    let after = crate::support::call_raw(&survivor_client, "eventIngestion.track", page_view())
        .await
        .expect("the survivor serves after the loss");
    assert_eq!(after["status"], "accepted", "{after}");
    let replay = crate::support::call_raw(&survivor_client, "eventIngestion.track", keyed)
        .await
        .expect("the key is answered by the survivor");
    assert_eq!(replay["status"], "replayed", "{replay}");
    assert_eq!(replay["eventId"], claimed["eventId"]);
    let _ = stop.send(true);

    let on_lost = load_on_lost.await.expect("load");
    let on_survivor = load_on_survivor.await.expect("load");
    assert!(
        on_lost.len() > 10,
        "the lost node had load: {}",
        on_lost.len()
    );
    assert!(
        on_survivor.len() > 10,
        "the survivor had load: {}",
        on_survivor.len()
    );
    let store = sluice::storage::connect(&database.url, &sluice::storage::PoolOptions::default())
        .await
        .expect("reopen");
    let claimed_id: uuid::Uuid =
        serde_json::from_value(claimed["eventId"].clone()).expect("event id");
    let acknowledged: Vec<uuid::Uuid> = on_lost
        .iter()
        .chain(&on_survivor)
        .chain([&claimed_id])
        .copied()
        .collect();
    let missing = crate::support::stores::missing_events(store.as_ref(), &acknowledged).await;
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events lost",
        on_lost.len() + on_survivor.len() + 1
    );
}

mod a_connection_the_database_closed_is_not_handed_out {
    crate::shared_database_tests!(test);

    async fn test(backend: crate::support::Backend) {
        super::a_connection_the_database_closed_is_not_handed_out(backend).await;
    }
}

mod a_database_outage_loses_no_accepted_event {
    crate::shared_database_tests!(test);

    async fn test(backend: crate::support::Backend) {
        super::a_database_outage_loses_no_accepted_event(backend).await;
    }
}

mod losing_a_node_loses_nothing_it_acknowledged_and_the_other_keeps_serving {
    crate::shared_database_tests!(test);

    async fn test(backend: crate::support::Backend) {
        super::losing_a_node_loses_nothing_it_acknowledged_and_the_other_keeps_serving(backend)
            .await;
    }
}
