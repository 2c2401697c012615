//! The metrics benchmark (issue 18): a million stored events over 30 days (100 000
//! sessions, ten events each a few seconds apart, the realistic traffic's paths, user agents
//! and attribution, varied countries, devices and browsers), one compaction pass of their
//! metric segments (what a running server has done for hours long closed), then
//! `getMetrics` over JSON-RPC for 30 days and for 24 hours, with the top lists, for 30 days
//! with two filters (a comparison line), 15 days compared with the 15 before (both full)
//! with three goals, a 4-step
//! funnel and weekly retention over the 30 days: medians of repeated calls.

use std::time::Instant;

use serde_json::json;
use sluice::domain::EventRecord;
use sluice::storage::{self, PoolOptions};

use super::{Traffic, record, rpc_json, start};

/// Stored events.
pub const EVENTS: u64 = 1_000_000;
/// Events per session: 100 000 sessions.
const EVENTS_PER_SESSION: u64 = 10;
/// Calls timed per range.
const CALLS: usize = 11;
const TOKEN: &str = "bench-admin-token-0123456789";

const COUNTRIES: [&str; 8] = ["US", "DE", "GB", "FR", "IN", "BR", "JP", "CA"];
const DEVICES: [(&str, &str); 4] = [
    ("desktop", "Chrome"),
    ("mobile", "Mobile Safari"),
    ("desktop", "Firefox"),
    ("tablet", "Chrome"),
];

/// Event `n` of the stored month: session `n / 10`, sessions spread evenly over the 30
/// days before `now`.
fn stored_event(traffic: Traffic, n: u64, now: chrono::DateTime<chrono::Utc>) -> EventRecord {
    let mut event = record(traffic, n);
    let session = n / EVENTS_PER_SESSION;
    let sessions = EVENTS / EVENTS_PER_SESSION;
    let month = chrono::Duration::days(30).num_seconds();
    let start = month * session as i64 / sessions as i64;
    let at = now - chrono::Duration::seconds(month)
        + chrono::Duration::seconds(start + 20 * (n % EVENTS_PER_SESSION) as i64);
    event.occurred_at = at;
    event.received_at = at;
    event.session_id = Some(uuid::Uuid::from_u128(
        0x5e55_0000_0000_7000_8000_0000_0000_0000 | u128::from(session),
    ));
    // A signed-in user on one session in five, over several sessions each.
    if session.is_multiple_of(5) {
        event.user_id = Some(format!("user-{}", session % 7_919));
    }
    let (device, browser) = DEVICES[(session % DEVICES.len() as u64) as usize];
    event.enrichment.device_type = Some(device.into());
    event.enrichment.browser_name = Some(browser.into());
    event.enrichment.country = Some(COUNTRIES[(session % 13 % 8) as usize].into());
    // Unique per event, so the stored fingerprint never collapses two.
    event.dedup_fingerprint = Some(format!("bench-metrics-{n}"));
    event
}

/// Loads the month into `database_url` and times `getMetrics` on a server over it.
pub async fn run(database_url: &str, traffic: Traffic) {
    let store = storage::connect(database_url, &PoolOptions::default())
        .await
        .expect("store");
    store.run_migrations().await.expect("migrate");
    let now = chrono::Utc::now();
    let loading = Instant::now();
    let mut n = 0;
    while n < EVENTS {
        let rows: Vec<EventRecord> = (n..(n + 2_000).min(EVENTS))
            .map(|n| stored_event(traffic, n, now))
            .collect();
        n += rows.len() as u64;
        store.insert_events(&rows).await.expect("insert");
    }
    println!(
        "loaded {EVENTS} events over 30 days ({} sessions) in {:.1} s",
        EVENTS / EVENTS_PER_SESSION,
        loading.elapsed().as_secs_f64()
    );
    // What a running server's compactor would have done by now for hours long closed.
    let written = store.count_rows("metric_segments").await.expect("count");
    let compacting = Instant::now();
    store
        .compact_metric_segments(chrono::Utc::now())
        .await
        .expect("compact");
    println!(
        "metric segments: {written} written, {} after compaction ({:.1} s)",
        store.count_rows("metric_segments").await.expect("count"),
        compacting.elapsed().as_secs_f64()
    );
    drop(store);

    let server = start(database_url, |config| {
        config.auth.admin_token = Some(TOKEN.to_owned());
    })
    .await;
    let client = reqwest_like::Client::new(server.local_addr());
    let to = now;
    let month = (to - chrono::Duration::days(30)).to_rfc3339();
    let range = |from: String| json!({"from": from, "to": to.to_rfc3339()});
    let with = |mut input: serde_json::Value, extra: serde_json::Value| {
        if let (Some(input), serde_json::Value::Object(extra)) = (input.as_object_mut(), extra) {
            input.extend(extra);
        }
        input
    };
    let cases = [
        ("getMetrics", "30 days", range(month.clone()), Some(250.0)),
        (
            "getMetrics",
            "24 hours",
            range((to - chrono::Duration::hours(24)).to_rfc3339()),
            Some(50.0),
        ),
        (
            "getMetrics",
            "30 days, 2 filters",
            with(
                range(month.clone()),
                json!({"filters": {"country": "DE", "deviceType": "desktop"}}),
            ),
            None,
        ),
        (
            "getMetrics",
            "15 days compared with the 15 before (30 days of events), 3 goals",
            with(
                range((to - chrono::Duration::days(15)).to_rfc3339()),
                json!({"compare": "previousPeriod", "goals": [
                    {"name": "Signed up", "eventType": "signed_up"},
                    {"name": "Pricing", "path": "/pricing*"},
                    {"name": "Docs search", "eventType": "search_performed", "path": "/docs*"}
                ]}),
            ),
            Some(300.0),
        ),
        (
            "getFunnel",
            "30 days, 4 steps in a session",
            with(
                range(month.clone()),
                json!({"steps": [
                    {"path": "/*"},
                    {"eventType": "page_viewed", "path": "/pricing*"},
                    {"eventType": "button_clicked"},
                    {"eventType": "signed_up"}
                ]}),
            ),
            Some(300.0),
        ),
        (
            "getRetention",
            "30 days, weekly",
            with(range(month.clone()), json!({"period": "week"})),
            Some(300.0),
        ),
    ];
    for (method, label, input, target_ms) in cases {
        let body = rpc_json(&format!("eventIngestion.{method}"), input).to_string();
        let mut times = Vec::new();
        let mut report = serde_json::Value::Null;
        for _ in 0..CALLS {
            let started = Instant::now();
            report = client.post(&body, TOKEN).await;
            times.push(started.elapsed());
        }
        times.sort_unstable();
        let median = times[CALLS / 2].as_secs_f64() * 1000.0;
        let result = &report["result"];
        let summary = if method == "getMetrics" {
            result["totals"].to_string()
        } else if method == "getFunnel" {
            format!("conversion {}", result["conversionRate"])
        } else {
            format!(
                "{} cohorts",
                result["cohorts"].as_array().map_or(0, Vec::len)
            )
        };
        println!(
            "{method} {label}: median {median:.1} ms, min {:.1} ms, max {:.1} ms over {CALLS} calls; {summary}",
            times[0].as_secs_f64() * 1000.0,
            times[CALLS - 1].as_secs_f64() * 1000.0,
        );
        assert!(result.is_object(), "{report}");
        if let Some(target_ms) = target_ms {
            println!(
                "  {label} median <= {target_ms} ms: {}",
                super::verdict(median <= target_ms)
            );
        }
    }
    server.stop().await;
}

/// A keep-alive HTTP client for the admin calls.
mod reqwest_like {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client as Hyper;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    pub struct Client {
        url: String,
        inner: Hyper<HttpConnector, Full<Bytes>>,
    }

    impl Client {
        pub fn new(address: std::net::SocketAddr) -> Self {
            Self {
                url: format!("http://{address}"),
                inner: Hyper::builder(TokioExecutor::new()).build_http(),
            }
        }

        pub async fn post(&self, body: &str, token: &str) -> serde_json::Value {
            let request = http::Request::post(&self.url)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::from(body.to_owned())))
                .expect("request");
            let response = self.inner.request(request).await.expect("getMetrics");
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            serde_json::from_slice(&bytes).expect("JSON")
        }
    }
}
