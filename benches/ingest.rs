//! The Sluice benchmark: throughput, latency and memory of the real server, next to the two
//! ceilings it cannot beat, measured in one run on one machine so that the ratios are fair.
//!
//! Run: `cargo bench --bench ingest` (SQLite; add `SLUICE_TEST_POSTGRES_URL=postgres://…` for
//! PostgreSQL too). Knobs: `SLUICE_BENCH_SECONDS` (per measurement, default 5),
//! `SLUICE_BENCH_CONNECTIONS` (default 32), `SLUICE_BENCH_EVENTS` (events of the memory run,
//! default 1 000 000).
//!
//! - transport ceiling: a no-op JSON-RPC method on the same HTTP/jsonrpsee stack, same load;
//! - database ceiling: the same rows written through the same store and pool, no server;
//! - track (buffered and durable), trackBatch (50 events), p50/p99, p99 at half load, peak RSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonrpsee::RpcModule;
use jsonrpsee::server::stop_channel;
use serde_json::{Value, json};
use sluice::config::Config;
use sluice::event::EventRecord;
use sluice::pipeline::dedup::{FingerprintParts, fingerprint};
use sluice::server::RunningServer;
use sluice::storage::{self, EventStore, PoolOptions};

/// The allocator of the `sluice` binary, so that the in-process servers run as in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Results of one closed-loop load run.
struct Run {
    requests: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    /// Cores busy on average during the run, whoever used them.
    cores: f64,
    /// Requests sent again because the server refused some of their events.
    resent: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    /// Machine CPU time per request (µs on any core), whoever spent it.
    fn core_micros(&self) -> f64 {
        self.cores * 1e6 / self.rate().max(1e-9)
    }
    /// The run's latencies and CPU, as printed.
    fn latencies(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, {:.1} cores busy",
            self.percentile(0.5),
            self.percentile(0.99),
            self.cores
        )
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index] as f64 / 1000.0
    }
}

const EVENT_TYPES: [&str; 4] = [
    "page_viewed",
    "button_clicked",
    "signed_up",
    "search_performed",
];

/// A varied, realistic track input (distinct props, so dedup keeps them all), as a value.
/// The reference that [`write_event`] must match.
fn event(n: u64) -> Value {
    json!({
        "eventType": EVENT_TYPES[(n % 4) as usize],
        "source": "web",
        "props": {"path": format!("/products/{}", n % 997), "n": n, "ref": "bench"},
        "attribution": {"utmSource": "newsletter", "landingPage": "https://shop.example.com/?utm_medium=email"}
    })
}

/// Appends the JSON text of `event(n)` to `out`. The load generator renders its bodies this
/// way, as `wrk` sends prepared ones, so that building a `Value` tree per event does not take
/// the cores the server is measured on (a 50-event batch cost the client tens of µs).
fn write_event(out: &mut String, n: u64) {
    use std::fmt::Write;
    let _ = write!(
        out,
        r#"{{"eventType":"{}","source":"web","props":{{"path":"/products/{}","n":{n},"ref":"bench"}},"attribution":{{"utmSource":"newsletter","landingPage":"https://shop.example.com/?utm_medium=email"}}}}"#,
        EVENT_TYPES[(n % 4) as usize],
        n % 997
    );
}

/// A JSON-RPC request body for `method` whose params are written by `params`.
fn rpc_body(method: &str, params: impl FnOnce(&mut String)) -> String {
    let mut body = String::with_capacity(512);
    body.push_str(r#"{"jsonrpc":"2.0","id":1,"method":""#);
    body.push_str(method);
    body.push_str(r#"","params":"#);
    params(&mut body);
    body.push('}');
    body
}

fn track_body(n: u64) -> String {
    rpc_body("eventIngestion.track", |out| write_event(out, n))
}

fn batch_body(first: u64) -> String {
    rpc_body("eventIngestion.trackBatch", |out| {
        out.reserve(50 * 220);
        out.push_str(r#"{"events":["#);
        for i in 0..50 {
            if i > 0 {
                out.push(',');
            }
            write_event(out, first + i);
        }
        out.push_str("]}");
    })
}

/// The rendered bodies must be exactly the requests the `Value` reference describes.
fn check_bodies() {
    for n in [0, 1, 2, 3, 996, 997, 123_456_789] {
        let track: Value = serde_json::from_str(&track_body(n)).expect("track body is JSON");
        assert_eq!(track, rpc_json("eventIngestion.track", event(n)));
    }
    let batch: Value = serde_json::from_str(&batch_body(100)).expect("batch body is JSON");
    let events: Vec<Value> = (100..150).map(event).collect();
    assert_eq!(
        batch,
        rpc_json("eventIngestion.trackBatch", json!({ "events": events }))
    );
}

/// The load generator's own runtime (two worker threads, like `wrk -t2`). Sharing the server's
/// runtime would put client and server tasks in one scheduler queue: a server task woken by
/// the database (a durable reply, the flusher) would wait behind every client task, which no
/// real client can do to a server.
fn load_generator() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("load-generator")
            .enable_all()
            .build()
            .expect("load generator runtime")
    })
}

/// How a client treats a `trackBatch` reply that reports refused items (a full buffer).
#[derive(Clone, Copy, PartialEq)]
enum Refusals {
    /// Any success status ends the request (single events, the no-op).
    Ignore,
    /// Send the same body again 10–30 ms later until nothing fails, as a client that honours
    /// backpressure does. Items accepted the first time come back as duplicates.
    Resend,
}

/// Sends `body(n)` from `connections` keep-alive loops for `duration`; with `interval`, each
/// loop paces itself (open loop) instead of sending as fast as it can.
async fn drive(
    url: &str,
    connections: usize,
    duration: Duration,
    interval: Option<Duration>,
    headers: &'static [(&'static str, &'static str)],
    refusals: Refusals,
    body: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> Run {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http::<Full<Bytes>>();
    let counter = Arc::new(AtomicU64::new(0));
    let resent = Arc::new(AtomicU64::new(0));
    let ticks = cpu_ticks();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for loop_index in 0..connections {
        let (client, counter, resent, body, url) = (
            client.clone(),
            counter.clone(),
            resent.clone(),
            body.clone(),
            url.to_owned(),
        );
        tasks.push(load_generator().spawn(async move {
            let mut latencies = Vec::new();
            // Paced loops start a fraction of an interval apart, so that the offered load
            // arrives spread over each interval rather than from every loop at once.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |interval| {
                    interval.mul_f64(loop_index as f64 / connections as f64)
                });
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    next += interval;
                    tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = Bytes::from(body(n));
                let sent = Instant::now();
                loop {
                    let mut request =
                        http::Request::post(&url).header("content-type", "application/json");
                    for (name, value) in headers {
                        request = request.header(*name, *value);
                    }
                    let request = request.body(Full::new(body.clone())).expect("request");
                    let Ok(response) = client.request(request).await else {
                        return latencies;
                    };
                    let ok = response.status().is_success();
                    let Ok(reply) = response.into_body().collect().await.map(|b| b.to_bytes())
                    else {
                        return latencies;
                    };
                    if !ok {
                        return latencies;
                    }
                    if refusals == Refusals::Ignore || !reports_refusals(&reply) {
                        break;
                    }
                    resent.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(retry_delay()).await;
                }
                latencies.push(sent.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.unwrap_or_default());
    }
    Run {
        requests: latencies_us.len() as u64,
        elapsed: started.elapsed(),
        latencies_us,
        cores: cores_busy(ticks),
        resent: resent.load(Ordering::Relaxed),
    }
}

/// `track` from every connection at a fixed `interval` (open loop), events numbered from
/// `first`.
async fn paced_track(
    url: &str,
    connections: usize,
    duration: Duration,
    interval: Duration,
    first: u64,
) -> Run {
    let body = Arc::new(move |n| track_body(first + n));
    drive(
        url,
        connections,
        duration,
        Some(interval),
        &[],
        Refusals::Ignore,
        body,
    )
    .await
}

/// How long a client waits before it resends refused events: 10 to 30 ms, at random, as a
/// client with jittered backoff does; clients that all waited the same time would come back
/// in lockstep, in bursts that no independent callers make.
fn retry_delay() -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    Duration::from_micros(10_000 + hasher.finish() % 20_000)
}

/// Whether a `trackBatch` reply reports items that were not accepted.
fn reports_refusals(reply: &[u8]) -> bool {
    !reply.windows(11).any(|window| window == br#""failed":0,"#)
}

fn rpc_json(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

/// The machine's busy and total CPU time so far (`/proc/stat`, in ticks), to tell how much of
/// the two cores a measurement used: a load that leaves cores idle is waiting, not computing.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Cores busy on average since `since` was read.
fn cores_busy(since: (u64, u64)) -> f64 {
    let (busy, total) = cpu_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = (total - since.1).max(1) as f64;
    cores * (busy - since.0) as f64 / total
}

fn peak_rss_mib_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
        })
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The no-op method on the same HTTP stack, for the transport ceiling.
async fn transport_ceiling(connections: usize, duration: Duration) -> Run {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let dir = tempfile::tempdir().expect("dir");
    let config = Config {
        database_url: Some(format!("sqlite://{}", dir.path().join("noop.db").display())),
        ..Config::default()
    };
    // A real Sluice for its HTTP stack and service, plus the no-op method beside the procedures.
    let probe = RunningServer::start(
        &config,
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("start");
    let mut methods = sluice::transport::jsonrpc::rpc_module(probe.service().clone());
    let mut noop = RpcModule::new(());
    noop.register_method("bench.noop", |_, _, _| {
        Ok::<_, jsonrpsee::types::ErrorObjectOwned>(json!({"ok": true}))
    })
    .expect("register");
    methods.merge(noop).expect("merge");
    let (stop, handle) = stop_channel();
    let server = sluice::transport::http::spawn(
        listener,
        probe.service().clone(),
        methods.into(),
        config.http(),
        stop,
    );
    let run = drive(
        &url,
        connections,
        duration,
        None,
        &[],
        Refusals::Ignore,
        Arc::new(|_| rpc_body("bench.noop", |out| out.push_str("[]"))),
    )
    .await;
    let _ = handle.stop();
    let _ = server.await;
    probe.stop().await;
    run
}

/// Bare inserts of the same rows through the same store and pool, no server.
/// Only the inserts are timed: making the rows is not the database's work.
async fn database_ceiling(store: &Arc<dyn EventStore>, duration: Duration, batch: usize) -> f64 {
    let mut inserting = Duration::ZERO;
    let mut written = 0u64;
    let mut n = 0u64;
    while inserting < duration {
        let rows: Vec<EventRecord> = (0..batch)
            .map(|_| {
                n += 1;
                record(n)
            })
            .collect();
        let started = Instant::now();
        store.insert_events(&rows).await.expect("insert");
        inserting += started.elapsed();
        written += rows.len() as u64;
    }
    written as f64 / inserting.as_secs_f64()
}

fn record(n: u64) -> EventRecord {
    let now = chrono::Utc::now();
    let props = json!({"path": format!("/products/{}", n % 997), "n": n, "ref": "bench"});
    // Fingerprinted as Sluice does, so the unique index sees the same random keys.
    let fingerprint = fingerprint(&FingerprintParts {
        event_type: "page_viewed",
        user_id: None,
        entity_id: None,
        session_id: None,
        props: props.as_object(),
        occurred_at: now,
        client_ip: Some("127.0.0.1"),
        user_agent: None,
    });
    EventRecord {
        id: uuid::Uuid::now_v7(),
        event_type: "page_viewed".into(),
        source: "web".into(),
        actor_id: None,
        actor_type: Some("anonymous".into()),
        user_id: None,
        creator_id: None,
        brand_id: None,
        entity_id: None,
        entity_type: None,
        session_id: None,
        props: props.as_object().cloned().map(Into::into),
        // What Sluice stores for the benchmark's events: the same rows, so the same bytes.
        attribution: sluice::api::types::Attribution {
            utm_source: Some("newsletter".into()),
            utm_medium: Some("email".into()),
            landing_page: Some("https://shop.example.com/?utm_medium=email".into()),
            ..Default::default()
        },
        idempotency_key: None,
        dedup_fingerprint: Some(fingerprint.to_stored()),
        occurred_at: now,
        received_at: now,
        enrichment: sluice::event::Enrichment {
            ip_address: Some("127.0.0.0/24".into()),
            ..Default::default()
        },
    }
}

/// Waits until everything accepted so far is written.
async fn drain(server: &RunningServer) {
    let pipeline = server.service().pipeline();
    while pipeline
        .force_flush()
        .await
        .map_or(true, |report| report.remaining > 0)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start(database_url: &str, adjust: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config {
        database_url: Some(database_url.to_owned()),
        rate_limit_per_second: 0,
        batch_size: 500,
        batch_timeout_ms: 200,
        ..Config::default()
    };
    adjust(&mut config);
    RunningServer::start(
        &config,
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("start")
}

/// A PostgreSQL database of the benchmark's own on the shared server, dropped at the end.
struct BenchDatabase {
    admin: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(admin: &str) -> Self {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let name = format!(
            "sluice_bench_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        );
        let mut connection = diesel_async::AsyncPgConnection::establish(admin)
            .await
            .expect("connect");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .expect("create database");
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Self {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    async fn drop(self) {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        if let Ok(mut connection) = diesel_async::AsyncPgConnection::establish(&self.admin).await {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut connection)
            .await;
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = Duration::from_secs(env_or("SLUICE_BENCH_SECONDS", 5));
    let connections: usize = env_or("SLUICE_BENCH_CONNECTIONS", 32);
    check_bodies();
    let memory_events: u64 = env_or("SLUICE_BENCH_EVENTS", 1_000_000);
    println!(
        "# Sluice benchmark: {} cores, {connections} connections, {}s per run",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        seconds.as_secs()
    );

    let ceiling = transport_ceiling(connections, seconds).await;
    println!(
        "transport ceiling (no-op JSON-RPC): {:.0} req/s, {}",
        ceiling.rate(),
        ceiling.latencies()
    );

    let dir = tempfile::tempdir().expect("dir");
    let mut backends = vec![(
        "sqlite",
        format!("sqlite://{}", dir.path().join("bench.db").display()),
    )];
    let postgres = match std::env::var("SLUICE_TEST_POSTGRES_URL") {
        Ok(admin) if !admin.is_empty() => Some(BenchDatabase::create(&admin).await),
        _ => None,
    };
    if let Some(database) = &postgres {
        backends.push(("postgres", database.url.clone()));
    }
    for (name, base_url) in backends {
        let url_for = |suffix: &str| -> String {
            if name == "sqlite" {
                format!(
                    "sqlite://{}",
                    dir.path().join(format!("bench-{suffix}.db")).display()
                )
            } else {
                base_url.clone()
            }
        };
        println!("\n## {name}");
        // Database ceiling.
        let store = storage::connect(&url_for("ceiling"), &PoolOptions::default())
            .await
            .expect("store");
        store.run_migrations().await.expect("migrate");
        let db_ceiling = database_ceiling(&store, seconds, 500).await;
        println!("database ceiling (bare 500-row inserts): {db_ceiling:.0} events/s");

        let server = start(&url_for("track"), |_| {}).await;
        let url = format!("http://{}", server.local_addr());
        let track = drive(
            &url,
            connections,
            seconds,
            None,
            &[],
            Refusals::Ignore,
            Arc::new(track_body),
        )
        .await;
        println!(
            "track (buffered): {:.0} req/s, {}",
            track.rate(),
            track.latencies()
        );
        // The same load with the writes deferred until it ends: what the request path alone
        // costs, to tell it apart from the database work sharing the machine.
        let deferred = start(&url_for("deferred"), |config| {
            config.batch_size = 10_000_000;
            config.buffer_capacity = 10_000_000;
            config.batch_timeout_ms = 3_600_000;
        })
        .await;
        let request_path = drive(
            &format!("http://{}", deferred.local_addr()),
            connections,
            seconds,
            None,
            &[],
            Refusals::Ignore,
            Arc::new(|n| track_body(n + 50_000_000)),
        )
        .await;
        println!(
            "track, writes deferred until after the run (request path only): {:.0} req/s, {}",
            request_path.rate(),
            request_path.latencies()
        );
        drain(&deferred).await;
        deferred.stop().await;
        let half = track.rate() / 2.0;
        let interval = Duration::from_secs_f64(connections as f64 / half.max(1.0));
        let paced = paced_track(&url, connections, seconds, interval, 10_000_000).await;
        println!(
            "track at half of peak ({half:.0} req/s offered): {}",
            paced.latencies()
        );
        // The same offered load on a server with the shipped batching (100 events, 10 s):
        // each write is a fifth as long, so requests wait less behind it.
        let shipped = start(&url_for("shipped"), |config| {
            let defaults = Config::default();
            config.batch_size = defaults.batch_size;
            config.batch_timeout_ms = defaults.batch_timeout_ms;
        })
        .await;
        let shipped_url = format!("http://{}", shipped.local_addr());
        let paced_shipped =
            paced_track(&shipped_url, connections, seconds, interval, 60_000_000).await;
        println!(
            "track at the same load, shipped batching ({} events): {}",
            Config::default().batch_size,
            paced_shipped.latencies()
        );
        shipped.stop().await;
        drain(&server).await;
        let pipeline = server.service().pipeline();
        let persisted_before = pipeline.stats().counters.persisted;
        let ticks = cpu_ticks();
        let batch_started = Instant::now();
        let batch = drive(
            &url,
            connections,
            seconds,
            None,
            &[],
            Refusals::Resend,
            Arc::new(|n| batch_body(20_000_000 + n * 50)),
        )
        .await;
        let load_elapsed = batch_started.elapsed();
        let load_cores = cores_busy(ticks);
        let ticks = cpu_ticks();
        let at_load_end = pipeline.stats().counters;
        // Count an event when it is in the database, not when it is buffered: the figure is
        // what was written over the load plus the time to drain what it left behind.
        drain(&server).await;
        let elapsed = batch_started.elapsed();
        let persisted = pipeline.stats().counters.persisted - persisted_before;
        let batch_events = persisted as f64 / elapsed.as_secs_f64();
        let drained = persisted - (at_load_end.persisted - persisted_before);
        let drain_cores = cores_busy(ticks);
        println!(
            "trackBatch (50 events): {:.0} req/s accepted ({} sent again after a refusal); {batch_events:.0} events/s written (load plus drain)",
            batch.rate(),
            batch.resent
        );
        println!(
            "  written during the {:.1} s load: {:.0} events/s, {load_cores:.1} cores busy; the {drained} left drained in {:.1} s: {:.0} events/s, {drain_cores:.1} cores busy",
            load_elapsed.as_secs_f64(),
            (at_load_end.persisted - persisted_before) as f64 / load_elapsed.as_secs_f64(),
            (elapsed - load_elapsed).as_secs_f64(),
            drained as f64 / (elapsed - load_elapsed).as_secs_f64().max(1e-9)
        );
        let durable = drive(
            &url,
            connections,
            seconds,
            None,
            &[("x-sluice-ack", "durable")],
            Refusals::Ignore,
            Arc::new(|n| track_body(n + 30_000_000)),
        )
        .await;
        println!(
            "track (durable): {:.0} req/s, {}",
            durable.rate(),
            durable.latencies()
        );
        server.stop().await;

        println!("ratios:");
        let r1 = track.rate() / ceiling.rate();
        println!(
            "  track / transport ceiling = {:.2} (target >= 0.70: {})",
            r1,
            verdict(r1 >= 0.70)
        );
        println!(
            "  (track with writes deferred / transport ceiling = {:.2})",
            request_path.rate() / ceiling.rate()
        );
        // CPU per request, counting every core of the machine: what the database's own work
        // adds to a buffered track (buffered minus deferred) would cap the ratio even if the
        // rest of the pipeline cost nothing beyond the no-op.
        let noop_cost = ceiling.core_micros();
        let write_cost = (track.core_micros() - request_path.core_micros()).max(0.0);
        println!(
            "  (CPU per request: no-op {noop_cost:.1} µs, track {:.1} µs, of which its write {write_cost:.1} µs; with a free pipeline, at most {:.2})",
            track.core_micros(),
            noop_cost / (noop_cost + write_cost)
        );
        let r2 = batch_events / db_ceiling;
        println!(
            "  trackBatch events / database ceiling = {:.2} (target >= 0.80: {})",
            r2,
            verdict(r2 >= 0.80)
        );
        println!(
            "  p99 at half load = {:.2} ms with 500-event batches, {:.2} ms with the shipped batching (target <= 2 ms: {} / {})",
            paced.percentile(0.99),
            paced_shipped.percentile(0.99),
            verdict(paced.percentile(0.99) <= 2.0),
            verdict(paced_shipped.percentile(0.99) <= 2.0)
        );
        let r3 = durable.rate() / track.rate();
        println!(
            "  durable / buffered = {:.2} (target >= 0.50: {})",
            r3,
            verdict(r3 >= 0.50)
        );
    }

    if let Some(database) = postgres {
        database.drop().await;
    }

    // Memory: push `memory_events` through trackBatch on SQLite and read the peak RSS.
    // The server runs as a process of its own, with production defaults (a 100 000-event
    // buffer), so its peak RSS is its own: when the database falls behind, the buffer fills
    // and callers are told to retry, so memory stays bounded.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_BIND", format!("127.0.0.1:{port}"))
        .env(
            "SLUICE_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("memory.db").display()),
        )
        .env("SLUICE_RATE_LIMIT_PER_SECOND", "0")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start sluice");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("http://127.0.0.1:{port}");
    let requests = memory_events / 50;
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, sent, url) = (client.clone(), sent.clone(), url.clone());
        tasks.push(load_generator().spawn(async move {
            loop {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let body = Bytes::from(batch_body(40_000_000 + n * 50));
                // Refused items (full buffer) are sent again; accepted ones come back as
                // duplicates, so nothing is counted twice.
                loop {
                    let request = http::Request::post(&url)
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    let Ok(response) = client.request(request).await else {
                        return;
                    };
                    let Ok(bytes) = response.into_body().collect().await else {
                        return;
                    };
                    if !reports_refusals(&bytes.to_bytes()) {
                        break;
                    }
                    tokio::time::sleep(retry_delay()).await;
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let rss = peak_rss_mib_of(child.id());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    println!(
        "\n## memory\n{memory_events} events through trackBatch in {:.1} s; peak RSS of the sluice process {rss:.0} MiB (target <= 150: {})",
        started.elapsed().as_secs_f64(),
        verdict(rss <= 150.0)
    );
}
