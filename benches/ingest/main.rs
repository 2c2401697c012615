//! The Sluice benchmark: throughput, latency and memory of the real server, next to the
//! ceilings it cannot beat, measured in one run on one machine so that the ratios are fair.
//!
//! Run: `cargo bench --bench ingest` (SQLite; add `SLUICE_TEST_POSTGRES_URL=postgres://…` for
//! PostgreSQL too). Knobs: `SLUICE_BENCH_SECONDS` (per measurement, default 5),
//! `SLUICE_BENCH_LOAD_SECONDS` (the trackBatch flood, default 10), `SLUICE_BENCH_CONNECTIONS`
//! (default 32), `SLUICE_BENCH_EVENTS` (events of the memory run, default 1 000 000).
//!
//! Every figure comes from the traffic real frontends send (see `traffic`): recurring
//! sessions, real user agents, skewed paths, attribution on some events; servers run the
//! shipped defaults (batches of 100, a 10 s timer, a 100 000-event buffer). Session-less
//! traffic appears only as a comparison line.
//!
//! - transport ceiling: a no-op JSON-RPC method on the same HTTP/jsonrpsee stack, same load;
//! - database ceilings: the same rows written through the same store and pool, no server,
//!   in writes of the size the flusher uses under a backlog;
//! - track (buffered and durable), p50/p99, p99 at half load;
//! - the write path: a closed-loop `trackBatch` flood (50 events a call), what was accepted,
//!   what was persisted by the end of it, and how long the rest took to drain;
//! - peak RSS over a million events;
//! - live: `track` with 100 SSE viewers against none, and the delay to a viewer
//!   (`SLUICE_BENCH_ONLY=live` runs only this);
//! - metrics: `getMetrics` over a million stored events, 30 days and 24 hours
//!   (`SLUICE_BENCH_ONLY=metrics` runs only this, on SQLite and PostgreSQL);
//! - the server tracker: `Tracker::track`'s cost on the calling task and one tracker's
//!   events/s into a local Sluice (`SLUICE_BENCH_ONLY=tracker`);
//! - Citus: the realistic flood on a Citus cluster against one PostgreSQL, rounds alternating,
//!   and getMetrics on Citus (`SLUICE_BENCH_ONLY=citus`, with `SLUICE_TEST_CITUS_URL`; see
//!   `citus`);
//! - sustained: a minute of `track` (`SLUICE_BENCH_SUSTAINED_SECONDS`) against a `sluice`
//!   process at the shipped defaults, hostile traffic (a fresh session and browser build on
//!   every request) and realistic, the first and last ten seconds compared, and the peak RSS
//!   (`SLUICE_BENCH_ONLY=sustained`; see `sustained`).

mod citus;
mod metrics;
mod sustained;
mod tracker;
mod traffic;

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
use sluice::domain::EventRecord;
use sluice::pipeline::dedup::{FingerprintParts, fingerprint};
use sluice::pipeline::flusher::MAX_WRITE_EVENTS;
use sluice::server::RunningServer;
use sluice::storage::{self, EventStore, PoolOptions};
use traffic::{Kind, Traffic};

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
    /// Requests whose events were refused (a full buffer); the client went on with the next.
    refused: u64,
    /// Requests answered in each second of the run.
    per_second: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    /// Machine CPU time per request (µs on any core), whoever spent it.
    fn core_micros(&self) -> f64 {
        self.cores * 1e6 / self.rate().max(1e-9)
    }
    /// The run's latencies, CPU and refusals, as printed.
    fn latencies(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, {:.1} cores busy, {} refused",
            self.percentile(0.5),
            self.percentile(0.99),
            self.cores,
            self.refused
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

/// One request of the load: its body and the user agent it is sent with.
struct Body {
    text: String,
    user_agent: std::borrow::Cow<'static, str>,
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

/// `track` of event `n`, from its session's browser.
fn track_body(traffic: Traffic, n: u64) -> Body {
    let second = traffic::this_second();
    Body {
        text: rpc_body("eventIngestion.track", |out| {
            traffic.write_event(out, n, &second, 0)
        }),
        user_agent: traffic.user_agent(n),
    }
}

/// `trackBatch` of events `first..first + 50`.
fn batch_text(traffic: Traffic, first: u64, second: &str) -> String {
    rpc_body("eventIngestion.trackBatch", |out| {
        batch_input(out, traffic, first, second)
    })
}

/// The input of a `trackBatch` of events `first..first + 50`: `{"events": […]}`.
fn batch_input(out: &mut String, traffic: Traffic, first: u64, second: &str) {
    out.reserve(50 * 450);
    out.push_str(r#"{"events":["#);
    for i in 0..50 {
        if i > 0 {
            out.push(',');
        }
        traffic.write_event(out, first + i, second, i);
    }
    out.push_str("]}");
}

fn batch_body(traffic: Traffic, first: u64) -> Body {
    Body {
        text: batch_text(traffic, first, &traffic::this_second()),
        user_agent: traffic.user_agent(first),
    }
}

/// The rendered bodies must be exactly the requests the `Value` reference describes, and
/// the traffic must have the shape it claims.
fn check_traffic() {
    let second = "2026-12-02T10:00:00";
    for kind in [Kind::Realistic, Kind::SessionLess] {
        let traffic = Traffic::new(kind);
        for n in [0, 1, 2, 3, 17, 996, 997, 123_456_789] {
            let mut text = String::new();
            traffic.write_event(&mut text, n, second, 3);
            let parsed: Value = serde_json::from_str(&text).expect("event is JSON");
            assert_eq!(parsed, traffic.event(n, second, 3), "{text}");
        }
        let batch: Value =
            serde_json::from_str(&batch_text(traffic, 100, second)).expect("batch is JSON");
        let events: Vec<Value> = (100..150)
            .map(|n| traffic.event(n, second, n - 100))
            .collect();
        assert_eq!(
            batch,
            rpc_json("eventIngestion.trackBatch", json!({ "events": events }))
        );
    }
    let (mut sessions, mut top, mut bytes) = (std::collections::HashSet::new(), 0, 0);
    let traffic = Traffic::new(Kind::Realistic);
    for n in 0..50_000 {
        let shape = traffic::Shape::of(n);
        sessions.insert(shape.session);
        top += u64::from(shape.page < 5);
        let mut text = String::new();
        traffic.write_event(&mut text, n, second, 0);
        bytes += text.len();
    }
    assert_eq!(
        sessions.len() as u64,
        traffic::SESSIONS,
        "every session recurs"
    );
    assert!(
        top > 8_000,
        "the top 1 % of pages get a sixth of views or more"
    );
    println!(
        "traffic: {} sessions, {} user agents, {:.0} bytes per event, {:.0} % of views on the top 1 % of pages",
        traffic::SESSIONS,
        traffic::USER_AGENTS.len(),
        bytes as f64 / 50_000.0,
        top as f64 / 500.0
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

/// Sends `body(n)` from `connections` keep-alive loops for `duration`; with `interval`, each
/// loop paces itself (open loop) instead of sending as fast as it can. A request whose events
/// are refused is counted, and the loop goes on with its next one at once.
async fn drive(
    url: &str,
    connections: usize,
    duration: Duration,
    interval: Option<Duration>,
    headers: &'static [(&'static str, &'static str)],
    body: Arc<dyn Fn(u64) -> Body + Send + Sync>,
) -> Run {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http::<Full<Bytes>>();
    let counter = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let per_second: Arc<Vec<AtomicU64>> = Arc::new(
        (0..=duration.as_secs() + 1)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let ticks = cpu_ticks();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for loop_index in 0..connections {
        let (client, counter, refused, per_second, body, url) = (
            client.clone(),
            counter.clone(),
            refused.clone(),
            per_second.clone(),
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
                let Body { text, user_agent } = body(n);
                let text = Bytes::from(text);
                let sent = Instant::now();
                let mut request = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .header("user-agent", user_agent.as_ref());
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let request = request.body(Full::new(text)).expect("request");
                let Ok(response) = client.request(request).await else {
                    return latencies;
                };
                let ok = response.status().is_success();
                let Ok(reply) = response.into_body().collect().await.map(|b| b.to_bytes()) else {
                    return latencies;
                };
                if !ok || reports_refusals(&reply) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(sent.elapsed().as_micros() as u64);
                let second = started.elapsed().as_secs() as usize;
                if let Some(count) = per_second.get(second) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
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
        refused: refused.load(Ordering::Relaxed),
        per_second: per_second
            .iter()
            .take(duration.as_secs() as usize)
            .map(|count| count.load(Ordering::Relaxed))
            .collect(),
    }
}

/// Closed-loop `track` of `traffic`, events numbered from `first`.
async fn track_load(
    url: &str,
    connections: usize,
    duration: Duration,
    headers: &'static [(&'static str, &'static str)],
    traffic: Traffic,
    first: u64,
) -> Run {
    let body = Arc::new(move |n| track_body(traffic, first + n));
    drive(url, connections, duration, None, headers, body).await
}

/// `track` from every connection at a fixed `interval` (open loop), events numbered from
/// `first`.
async fn paced_track(
    url: &str,
    connections: usize,
    duration: Duration,
    interval: Duration,
    traffic: Traffic,
    first: u64,
) -> Run {
    let body = Arc::new(move |n| track_body(traffic, first + n));
    drive(url, connections, duration, Some(interval), &[], body).await
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

/// Whether a reply reports events that were not accepted: a JSON-RPC error (a whole batch
/// refused), or a `trackBatch` result with failed items.
fn reports_refusals(reply: &[u8]) -> bool {
    let contains = |needle: &[u8]| reply.windows(needle.len()).any(|window| window == needle);
    // Items carry `"error":null` when they succeeded; an error is an object.
    contains(br#""error":{"#) || (contains(br#""failed":"#) && !contains(br#""failed":0,"#))
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
    let mut config = Config::default();
    config.database.database_url =
        Some(format!("sqlite://{}", dir.path().join("noop.db").display()));
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
    let settings = config.http.settings();
    let app = sluice::transport::routes::app(
        probe.service().clone(),
        methods.into(),
        &settings,
        stop.clone(),
    );
    let server = sluice::transport::http::spawn(listener, app, &settings, stop);
    let run = drive(
        &url,
        connections,
        duration,
        None,
        &[],
        Arc::new(|_| Body {
            text: rpc_body("bench.noop", |out| out.push_str("[]")),
            user_agent: traffic::USER_AGENTS[0].into(),
        }),
    )
    .await;
    let _ = handle.stop();
    let _ = server.await;
    probe.stop().await;
    run
}

/// Writes of `batch` rows of `traffic` through the same store and pool, no server, for
/// `duration` of writing; events/s. Only the writes are timed: making the rows is not the
/// database's work.
async fn database_ceiling(
    store: &Arc<dyn EventStore>,
    duration: Duration,
    batch: usize,
    traffic: Traffic,
    first: u64,
) -> f64 {
    let mut writing = Duration::ZERO;
    let mut written = 0u64;
    let mut n = first;
    while writing < duration {
        let rows: Vec<EventRecord> = (0..batch)
            .map(|_| {
                n += 1;
                record(traffic, n)
            })
            .collect();
        let started = Instant::now();
        store.insert_events(&rows).await.expect("insert");
        writing += started.elapsed();
        written += rows.len() as u64;
    }
    written as f64 / writing.as_secs_f64()
}

/// Event `n` of `traffic` as Sluice stores it: the same columns, the same bytes.
fn record(traffic: Traffic, n: u64) -> EventRecord {
    let now = chrono::Utc::now();
    let event = traffic.event(n, &traffic::this_second(), 0);
    let props = event["props"].as_object().cloned();
    let session = traffic.session(n);
    let attribution = &event["attribution"];
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let fingerprint = fingerprint(&FingerprintParts {
        event_type: event["eventType"].as_str().unwrap_or("page_viewed"),
        user_id: None,
        entity_id: None,
        session_id: session.as_deref(),
        props: props.as_ref(),
        occurred_at: now,
        client_ip: Some("127.0.0.1"),
        user_agent: Some(&traffic.user_agent(n)),
    });
    EventRecord {
        id: sluice::domain::new_event_id(),
        event_type: text(&event["eventType"]).unwrap_or_default(),
        source: "web".into(),
        actor_id: None,
        actor_type: Some("anonymous".into()),
        user_id: None,
        creator_id: None,
        brand_id: None,
        entity_id: None,
        entity_type: None,
        session_id: session
            .as_deref()
            .and_then(|s| uuid::Uuid::try_parse(s).ok()),
        props: props.map(Into::into),
        attribution: sluice::api::types::Attribution {
            utm_source: text(&attribution["utmSource"]),
            utm_medium: text(&attribution["utmMedium"]),
            utm_campaign: text(&attribution["utmCampaign"]),
            referrer: text(&attribution["referrer"]),
            landing_page: text(&attribution["landingPage"]),
            ..Default::default()
        },
        idempotency_key: None,
        dedup_fingerprint: Some(fingerprint.to_stored()),
        occurred_at: now,
        received_at: now,
        enrichment: sluice::domain::Enrichment {
            browser_name: Some("Chrome".into()),
            browser_version: Some("131.0.0".into()),
            os_name: Some("Windows".into()),
            os_version: Some("10".into()),
            device_type: Some("desktop".into()),
            referrer_host: text(&attribution["referrer"]).map(|_| "www.google.com".into()),
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

/// A server with the shipped defaults (rate limiting off, as the load comes from one
/// address), changed by `adjust`.
async fn start(database_url: &str, adjust: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config::default();
    config.database.database_url = Some(database_url.to_owned());
    config.limits.rate_limit_per_second = 0;
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

/// What a `trackBatch` flood did to the write path.
struct WritePath {
    load: Run,
    load_elapsed: Duration,
    accepted: u64,
    persisted_during_load: u64,
    persisted: u64,
    drain_elapsed: Duration,
    flushes: u64,
    load_cores: f64,
}

impl WritePath {
    /// Persisted events per second over the load plus the drain.
    fn persisted_rate(&self) -> f64 {
        self.persisted as f64 / (self.load_elapsed + self.drain_elapsed).as_secs_f64()
    }
    /// The share of what was accepted that was already written when the load ended.
    fn persisted_share(&self) -> f64 {
        self.persisted_during_load as f64 / self.accepted.max(1) as f64
    }
    fn print(&self, label: &str) {
        println!(
            "trackBatch flood, {label}: {} events accepted, {} requests refused; {} persisted by the end of the {:.1} s load ({:.0} %), {:.1} cores busy; the rest drained in {:.1} s; {:.0} events/s persisted over load plus drain; {:.0} events per write",
            self.accepted,
            self.load.refused,
            self.persisted_during_load,
            self.load_elapsed.as_secs_f64(),
            self.persisted_share() * 100.0,
            self.load_cores,
            self.drain_elapsed.as_secs_f64(),
            self.persisted_rate(),
            self.persisted as f64 / self.flushes.max(1) as f64
        );
    }
}

/// A closed-loop `trackBatch` flood of `traffic` on a fresh server with the shipped defaults:
/// each connection sends its next batch as soon as the last is answered, refused or not.
async fn write_path(
    database_url: &str,
    connections: usize,
    duration: Duration,
    traffic: Traffic,
) -> WritePath {
    let server = start(database_url, |_| {}).await;
    let url = format!("http://{}", server.local_addr());
    let pipeline = server.service().pipeline().clone();
    let ticks = cpu_ticks();
    let started = Instant::now();
    let load = drive(
        &url,
        connections,
        duration,
        None,
        &[],
        Arc::new(move |n| batch_body(traffic, n * 50)),
    )
    .await;
    let load_elapsed = started.elapsed();
    let load_cores = cores_busy(ticks);
    let at_load_end = pipeline.stats().counters;
    // The flusher keeps writing full batches by itself; what is left under one batch waits
    // for the timer, which the drain does not wait for.
    let batch_size = Config::default().pipeline.batch_size;
    while pipeline.buffer_len() >= batch_size {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drain(&server).await;
    let drain_elapsed = started.elapsed() - load_elapsed;
    let end = pipeline.stats().counters;
    server.stop().await;
    WritePath {
        load,
        load_elapsed,
        accepted: end.accepted,
        persisted_during_load: at_load_end.persisted,
        persisted: end.persisted,
        drain_elapsed,
        flushes: end.flushes,
        load_cores,
    }
}

/// The seeds' Node.js router (`benches/node-reference`: tRPC, zod, node-postgres, no sessions)
/// under the same `trackBatch` flood, over tRPC HTTP into a database of its own; events it
/// persisted by the end of the load, or `None` where Node.js or its packages are missing.
async fn node_reference(
    database_url: &str,
    connections: usize,
    duration: Duration,
    traffic: Traffic,
) -> Option<u64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/node-reference");
    if !dir.join("node_modules").exists() {
        let installed = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status();
        if !installed.is_ok_and(|status| status.success()) {
            println!("node reference router: not run (npm ci failed)");
            return None;
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .ok()?
        .port();
    let mut child = std::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("DATABASE_URL", database_url)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let base = format!("http://127.0.0.1:{port}/api/trpc/eventIngestion");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let stats = async || -> Option<Value> {
        let uri: http::Uri = format!("{base}.getStats").parse().ok()?;
        let response = client.get(uri).await.ok()?;
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        let reply: Value = serde_json::from_slice(&bytes).ok()?;
        Some(reply["result"]["data"].clone())
    };
    let mut ready = false;
    for _ in 0..200 {
        if stats().await.is_some() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let persisted = if ready {
        let load = drive(
            &format!("{base}.trackBatch"),
            connections,
            duration,
            None,
            &[],
            Arc::new(move |n| {
                let mut text = String::new();
                batch_input(&mut text, traffic, n * 50, &traffic::this_second());
                Body {
                    text,
                    user_agent: traffic.user_agent(n * 50),
                }
            }),
        )
        .await;
        let at_end = stats().await.unwrap_or_default();
        println!(
            "node reference router (tRPC + zod + node-postgres, no sessions), same flood: {:.0} req/s, {} events accepted, {} persisted by the end of the {:.1} s load",
            load.rate(),
            at_end["accepted"],
            at_end["persisted"],
            load.elapsed.as_secs_f64()
        );
        at_end["persisted"].as_u64()
    } else {
        println!("node reference router: not run (it did not start)");
        None
    };
    let _ = child.kill();
    let _ = child.wait();
    persisted
}

/// PostgreSQL databases of the benchmark's own on the shared server, dropped at the end.
struct BenchDatabases {
    admin: String,
    names: Vec<String>,
}

impl BenchDatabases {
    /// A new empty database; its URL.
    async fn create(&mut self, label: &str) -> String {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let name = format!(
            "sluice_bench_{label}_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let mut connection = diesel_async::AsyncPgConnection::establish(&self.admin)
            .await
            .expect("connect");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .expect("create database");
        let base = self
            .admin
            .rsplit_once('/')
            .map_or(self.admin.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        self.names.push(name);
        url
    }

    async fn drop_all(self) {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        if let Ok(mut connection) = diesel_async::AsyncPgConnection::establish(&self.admin).await {
            for name in self.names {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut connection)
                    .await;
            }
        }
    }
}

/// Where each measurement's database lives: a new SQLite file, or a new PostgreSQL database.
enum Target {
    Sqlite(std::path::PathBuf),
    Postgres(BenchDatabases),
}

impl Target {
    async fn database(&mut self, label: &str) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}", dir.join(format!("{label}.db")).display()),
            Self::Postgres(databases) => databases.create(label).await,
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = Duration::from_secs(env_or("SLUICE_BENCH_SECONDS", 5));
    let load_seconds = Duration::from_secs(env_or("SLUICE_BENCH_LOAD_SECONDS", 10));
    let connections: usize = env_or("SLUICE_BENCH_CONNECTIONS", 32);
    let memory_events: u64 = env_or("SLUICE_BENCH_EVENTS", 1_000_000);
    let only: Option<String> = std::env::var("SLUICE_BENCH_ONLY").ok();
    println!(
        "# Sluice benchmark: {} cores, {connections} connections, {}s per run, {}s floods",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        seconds.as_secs(),
        load_seconds.as_secs()
    );
    check_traffic();
    let realistic = Traffic::new(Kind::Realistic);
    let session_less = Traffic::new(Kind::SessionLess);

    let ceiling = transport_ceiling(connections, seconds).await;
    println!(
        "transport ceiling (no-op JSON-RPC): {:.0} req/s, {}",
        ceiling.rate(),
        ceiling.latencies()
    );

    let dir = tempfile::tempdir().expect("dir");
    if only.as_deref().is_none_or(|only| only == "live") {
        println!("\n## live viewers (sqlite)");
        let database = format!("sqlite://{}", dir.path().join("live.db").display());
        live_viewers(&database, connections, seconds, realistic).await;
        if only.is_some() {
            return;
        }
    }
    let mut targets = vec![("sqlite", Target::Sqlite(dir.path().to_owned()))];
    let postgres_url = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty());
    if only.as_deref().is_none_or(|only| only == "tracker") {
        println!("\n## server tracker (sqlite)");
        let database = format!("sqlite://{}", dir.path().join("tracker.db").display());
        tracker::run(&database).await;
        if only.is_some() {
            return;
        }
    }
    if only.as_deref().is_none_or(|only| only == "metrics") {
        println!("\n## metrics (sqlite)");
        let database = format!("sqlite://{}", dir.path().join("metrics.db").display());
        metrics::run(&database, realistic).await;
        if let Some(admin) = &postgres_url {
            println!("\n## metrics (postgres)");
            let mut databases = BenchDatabases {
                admin: admin.clone(),
                names: Vec::new(),
            };
            let database = databases.create("metrics").await;
            metrics::run(&database, realistic).await;
            databases.drop_all().await;
        }
        if only.is_some() {
            return;
        }
    }
    let citus_url = std::env::var("SLUICE_TEST_CITUS_URL")
        .ok()
        .filter(|url| !url.is_empty());
    if let (Some(postgres), Some(citus)) = (&postgres_url, &citus_url)
        && only.as_deref().is_none_or(|only| only == "citus")
    {
        println!("\n## citus 1+2 against one postgres");
        citus::run(
            postgres,
            citus,
            connections,
            load_seconds,
            realistic,
            session_less,
        )
        .await;
        if only.is_some() {
            return;
        }
    }
    if only.as_deref().is_none_or(|only| only == "sustained") {
        let seconds = env_or("SLUICE_BENCH_SUSTAINED_SECONDS", 60);
        // `SLUICE_BENCH_BACKENDS=postgres` leaves SQLite out, and the reverse (default: both).
        let backends = std::env::var("SLUICE_BENCH_BACKENDS").unwrap_or_default();
        let wanted = |name: &str| backends.is_empty() || backends.contains(name);
        if wanted("sqlite") {
            println!("\n## sustained (sqlite)");
            let mut target = Target::Sqlite(dir.path().to_owned());
            sustained::run(&mut target, seconds, connections).await;
        }
        if let Some(admin) = postgres_url.as_ref().filter(|_| wanted("postgres")) {
            println!("\n## sustained (postgres)");
            let mut target = Target::Postgres(BenchDatabases {
                admin: admin.clone(),
                names: Vec::new(),
            });
            sustained::run(&mut target, seconds, connections).await;
            if let Target::Postgres(databases) = target {
                databases.drop_all().await;
            }
        }
        if only.is_some() {
            return;
        }
    }
    if let Some(admin) = postgres_url {
        targets.push((
            "postgres",
            Target::Postgres(BenchDatabases {
                admin,
                names: Vec::new(),
            }),
        ));
    }
    for (name, mut target) in targets {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        println!("\n## {name}");
        // Database ceilings, in writes of the size the flusher uses under a backlog.
        let store = storage::connect(&target.database("ceiling").await, &PoolOptions::default())
            .await
            .expect("store");
        store.run_migrations().await.expect("migrate");
        let bare = database_ceiling(&store, seconds, MAX_WRITE_EVENTS, session_less, 0).await;
        let folded =
            database_ceiling(&store, seconds, MAX_WRITE_EVENTS, realistic, 100_000_000).await;
        let shipped_bare = database_ceiling(
            &store,
            seconds,
            Config::default().pipeline.batch_size,
            session_less,
            200_000_000,
        )
        .await;
        println!(
            "database ceiling, {MAX_WRITE_EVENTS}-row writes: bare inserts {bare:.0} events/s; with the session fold {folded:.0} events/s (bare inserts in writes of {}: {shipped_bare:.0} events/s)",
            Config::default().pipeline.batch_size
        );
        drop(store);
        if std::env::var("SLUICE_BENCH_CEILINGS_ONLY").is_ok() {
            continue;
        }

        // The write path under a flood, realistic traffic first, then the comparison line.
        let flood = write_path(
            &target.database("flood").await,
            connections,
            load_seconds,
            realistic,
        )
        .await;
        flood.print("realistic traffic");
        let flood_plain = write_path(
            &target.database("flood_plain").await,
            connections,
            load_seconds,
            session_less,
        )
        .await;
        flood_plain.print("session-less traffic (comparison)");
        let node = match &mut target {
            Target::Postgres(databases) => {
                let url = databases.create("node").await;
                node_reference(&url, connections, load_seconds, realistic).await
            }
            Target::Sqlite(_) => None,
        };

        let server = start(&target.database("track").await, |_| {}).await;
        let url = format!("http://{}", server.local_addr());
        let track = track_load(&url, connections, seconds, &[], realistic, 0).await;
        println!(
            "track (buffered): {:.0} req/s, {}",
            track.rate(),
            track.latencies()
        );
        // The same load with the writes deferred until it ends: what the request path alone
        // costs, to tell it apart from the database work sharing the machine.
        let deferred = start(&target.database("deferred").await, |config| {
            config.pipeline.batch_size = 10_000_000;
            config.pipeline.buffer_capacity = 10_000_000;
            config.pipeline.batch_timeout_ms = 3_600_000;
        })
        .await;
        let request_path = track_load(
            &format!("http://{}", deferred.local_addr()),
            connections,
            seconds,
            &[],
            realistic,
            50_000_000,
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
        let paced = paced_track(&url, connections, seconds, interval, realistic, 10_000_000).await;
        println!(
            "track at half of peak ({half:.0} req/s offered): {}",
            paced.latencies()
        );
        drain(&server).await;
        let durable = track_load(
            &url,
            connections,
            seconds,
            &[("x-sluice-ack", "durable")],
            realistic,
            30_000_000,
        )
        .await;
        println!(
            "track (durable): {:.0} req/s, {}",
            durable.rate(),
            durable.latencies()
        );
        server.stop().await;

        println!("ratios:");
        let r = flood.persisted_rate() / flood_plain.persisted_rate();
        println!(
            "  realistic / session-less, persisted per second = {r:.2} (target >= 0.80: {})",
            verdict(r >= 0.8)
        );
        let r = flood.persisted_rate() / bare;
        println!(
            "  realistic persisted per second / bare-insert ceiling = {r:.2} (target >= 0.70: {})",
            verdict(r >= 0.7)
        );
        let r = flood.persisted_share();
        println!(
            "  persisted by the end of the flood / accepted = {r:.2} (target >= 0.50: {})",
            verdict(r >= 0.5)
        );
        if let Some(node) = node {
            let r = flood.persisted_during_load as f64 / node.max(1) as f64;
            println!(
                "  persisted by the end of the flood / node reference router's = {r:.2} (target > 1: {})",
                verdict(r > 1.0)
            );
        }
        let r1 = track.rate() / ceiling.rate();
        println!(
            "  track / transport ceiling = {r1:.2} (before this change: 0.37 on both backends)"
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
        println!(
            "  p99 at half load = {:.2} ms (target <= 2 ms: {})",
            paced.percentile(0.99),
            verdict(paced.percentile(0.99) <= 2.0)
        );
        let r3 = durable.rate() / track.rate();
        println!(
            "  durable / buffered = {r3:.2} (target >= 0.50: {})",
            verdict(r3 >= 0.50)
        );
        if let Target::Postgres(databases) = target {
            databases.drop_all().await;
        }
    }
    if only.as_deref().is_some_and(|only| only != "memory") {
        return;
    }

    // Memory: push `memory_events` through trackBatch on SQLite and read the peak RSS.
    // The server runs as a process of its own, with production defaults (a 100 000-event
    // buffer), so its peak RSS is its own: when the database falls behind, the buffer fills
    // and callers are told to retry, so memory stays bounded.
    let server = sustained::ServerProcess::start(
        env!("CARGO_BIN_EXE_sluice"),
        &format!("sqlite://{}", dir.path().join("memory.db").display()),
        &[("SLUICE_RATE_LIMIT_PER_SECOND", "0")],
    )
    .await;
    let url = server.url.clone();
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
                let Body { text, user_agent } = batch_body(realistic, 40_000_000 + n * 50);
                let text = Bytes::from(text);
                // Refused events (full buffer) are sent again; accepted ones come back as
                // duplicates, so nothing is counted twice.
                loop {
                    let request = http::Request::post(&url)
                        .header("content-type", "application/json")
                        .header("user-agent", user_agent.as_ref())
                        .body(Full::new(text.clone()))
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
    let rss = server.peak_rss_mib();
    server.stop();
    println!(
        "\n## memory\n{memory_events} realistic events through trackBatch in {:.1} s; peak RSS of the sluice process {rss:.0} MiB (target <= 150: {})",
        started.elapsed().as_secs_f64(),
        verdict(rss <= 150.0)
    );
}

/// `track` with [`LIVE_VIEWERS`] SSE viewers on `/api/live` against none, in
/// [`LIVE_ROUNDS`] interleaved rounds (none, then with viewers) so that the machine's drift
/// falls on both sides alike, and how long an event takes from its `track` request being
/// sent to a viewer reading it. Viewers read every byte; one of them, through an HTTP
/// client, also looks for the probe events, each tracked with a unique path every 20 ms.
async fn live_viewers(
    database_url: &str,
    connections: usize,
    duration: Duration,
    traffic: Traffic,
) {
    let server = start(database_url, |config| {
        config.auth.admin_token = Some(LIVE_TOKEN.to_owned());
        config.live.live_max_viewers = LIVE_VIEWERS;
    })
    .await;
    let url = format!("http://{}", server.local_addr());
    let probes = Probes::default();
    let bytes = Arc::new(AtomicU64::new(0));
    let (mut none, mut with) = (Vec::new(), Vec::new());
    for round in 0..LIVE_ROUNDS as u64 {
        none.push(
            track_load(
                &url,
                connections,
                duration,
                &[],
                traffic,
                40_000_000 + round * 10_000_000,
            )
            .await,
        );
        let viewers = connect_viewers(&server, &probes, &bytes).await;
        let probing = probes.start(&url);
        with.push(
            track_load(
                &url,
                connections,
                duration,
                &[],
                traffic,
                45_000_000 + round * 10_000_000,
            )
            .await,
        );
        probes.stop(probing).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for viewer in &viewers {
            viewer.abort();
        }
        while server.service().live_viewers().connected() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let dropped = server
        .service()
        .live_viewers()
        .counters()
        .dropped
        .load(Ordering::Relaxed);
    drain(&server).await;
    server.stop().await;

    let rates = |runs: &[Run]| {
        runs.iter()
            .map(|run| format!("{:.0}", run.rate()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mean = |runs: &[Run]| runs.iter().map(Run::rate).sum::<f64>() / runs.len() as f64;
    println!(
        "track req/s, {LIVE_ROUNDS} rounds: no viewer {}; {LIVE_VIEWERS} SSE viewers {} (last: {}); viewers read {:.1} MB, {dropped} dropped",
        rates(&none),
        rates(&with),
        with.last().map(Run::latencies).unwrap_or_default(),
        bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    let (delays, answered) = (
        probes.sorted(&probes.delivered_us),
        probes.sorted(&probes.answered_us),
    );
    println!(
        "send → delivery to a viewer ({} probes): p50 {:.2} ms, p99 {:.2} ms (send → track answered: p50 {:.2} ms, p99 {:.2} ms)",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        percentile(&answered, 0.5),
        percentile(&answered, 0.99)
    );
    let r = mean(&with) / mean(&none);
    println!(
        "  track with {LIVE_VIEWERS} viewers / with none = {r:.2} (target >= 0.90: {})",
        verdict(r >= 0.9)
    );
}

/// The `p` quantile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(f64::NAN, |us| *us as f64 / 1000.0)
}

const LIVE_TOKEN: &str = "bench-admin-token-0123456789";
/// Interleaved rounds of the live benchmark.
const LIVE_ROUNDS: usize = 3;

/// The probe events of the live benchmark: when each was sent, how long until its `track`
/// was answered and until the probing viewer read it.
#[derive(Default, Clone)]
struct Probes {
    sent: Arc<std::sync::Mutex<std::collections::HashMap<u64, Instant>>>,
    delivered_us: Arc<std::sync::Mutex<Vec<u64>>>,
    answered_us: Arc<std::sync::Mutex<Vec<u64>>>,
    next: Arc<AtomicU64>,
}

impl Probes {
    fn sorted(&self, list: &std::sync::Mutex<Vec<u64>>) -> Vec<u64> {
        let mut list = list.lock().map(|d| d.clone()).unwrap_or_default();
        list.sort_unstable();
        list
    }

    /// A viewer read `text`: the probes in it are delivered.
    fn read(&self, text: &str) {
        for probe in text.split("\"/probe/").skip(1) {
            let digits: String = probe.chars().take_while(char::is_ascii_digit).collect();
            let Ok(n) = digits.parse::<u64>() else {
                continue;
            };
            let started = self.sent.lock().ok().and_then(|mut sent| sent.remove(&n));
            if let (Some(started), Ok(mut delays)) = (started, self.delivered_us.lock()) {
                delays.push(started.elapsed().as_micros() as u64);
            }
        }
    }

    /// Tracks a probe every 20 ms until [`stop`](Self::stop).
    fn start(
        &self,
        url: &str,
    ) -> (
        Arc<std::sync::atomic::AtomicBool>,
        tokio::task::JoinHandle<()>,
    ) {
        let probing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let task = load_generator().spawn({
            let (probes, probing, url) = (self.clone(), probing.clone(), url.to_owned());
            async move {
                let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
                while probing.load(Ordering::Relaxed) {
                    let n = probes.next.fetch_add(1, Ordering::Relaxed);
                    let body = rpc_json(
                        "eventIngestion.track",
                        json!({"eventType": "page_viewed", "sessionId": uuid::Uuid::now_v7(),
                               "props": {"path": format!("/probe/{n}")}}),
                    );
                    let started = Instant::now();
                    if let Ok(mut sent) = probes.sent.lock() {
                        sent.insert(n, started);
                    }
                    let request = http::Request::post(&url)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .expect("request");
                    if let Ok(response) = client.request(request).await {
                        let _ = response.into_body().collect().await;
                        if let Ok(mut answered) = probes.answered_us.lock() {
                            answered.push(started.elapsed().as_micros() as u64);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        (probing, task)
    }

    async fn stop(
        &self,
        (probing, task): (
            Arc<std::sync::atomic::AtomicBool>,
            tokio::task::JoinHandle<()>,
        ),
    ) {
        probing.store(false, Ordering::Relaxed);
        let _ = task.await;
    }
}

/// Connects [`LIVE_VIEWERS`] viewers and waits until the server counts them all. Viewer 0
/// reads plain text through an HTTP client and reports the probes; the others read as a
/// remote browser costs the server: they take gzip as browsers do, and read raw bytes off
/// the socket in big reads, with no HTTP client decoding them here.
async fn connect_viewers(
    server: &RunningServer,
    probes: &Probes,
    bytes: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let address = server.local_addr();
    let mut viewers = Vec::new();
    for viewer in 0..LIVE_VIEWERS {
        let (probes, bytes) = (probes.clone(), bytes.clone());
        if viewer != 0 {
            viewers.push(load_generator().spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut socket) = tokio::net::TcpStream::connect(address).await else {
                    return;
                };
                let request = format!(
                    "GET /api/live HTTP/1.1\r\nhost: {address}\r\naccept-encoding: gzip, deflate, br\r\nauthorization: Bearer {LIVE_TOKEN}\r\n\r\n"
                );
                if socket.write_all(request.as_bytes()).await.is_err() {
                    return;
                }
                let mut buffer = vec![0u8; 256 * 1024];
                while let Ok(read) = socket.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    bytes.fetch_add(read as u64, Ordering::Relaxed);
                }
            }));
            continue;
        }
        viewers.push(load_generator().spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let request = http::Request::get(format!("http://{address}/api/live"))
                .header("authorization", format!("Bearer {LIVE_TOKEN}"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let Ok(response) = client.request(request).await else {
                return;
            };
            let mut body = response.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                probes.read(&String::from_utf8_lossy(&data));
            }
        }));
    }
    while server.service().live_viewers().connected() < LIVE_VIEWERS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    viewers
}

/// Live viewers in the live benchmark.
const LIVE_VIEWERS: usize = 100;
