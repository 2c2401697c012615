//! Live analytics over real sockets: SSE `/api/live`, the JSON-RPC subscription over
//! WebSocket, and the relay between two nodes on PostgreSQL.

use std::time::Duration;

use jsonrpsee::core::client::SubscriptionClientT;
use jsonrpsee::rpc_params;
use serde_json::{Value, json};
use sluice::domain::Role;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::backend_tests;
use crate::support::proxy::ChaosProxy;
use crate::support::raw_http::get;
use crate::support::sse::{self, SseStream};
use crate::support::{ADMIN_TOKEN, Backend, TestDatabase, TestServer, jwt, test_config};

backend_tests!(
    the_stream_counts_each_visitor_once_on_its_latest_page,
    the_stream_is_for_admins_only,
    opted_out_and_suppressed_events_never_appear,
    last_event_id_replays_what_the_viewer_missed,
    the_stream_sends_stats_and_heartbeats,
    viewers_past_the_limit_are_refused,
    a_viewer_that_stops_reading_is_dropped_while_ingestion_goes_on,
    the_json_rpc_subscription_streams_the_same_items,
    the_live_page_is_served,
    visitors_leave_after_five_minutes_by_the_servers_clock,
    the_stream_is_gzip_when_the_viewer_takes_it,
);

const SOON: Duration = Duration::from_secs(5);

fn view(session: Uuid, path: &str) -> Value {
    json!({"eventType": "page_viewed", "sessionId": session, "props": {"path": path}})
}

async fn open_live(server: &TestServer) -> SseStream {
    let url = format!("{}/api/live", server.http_url());
    let stream = sse::open(&url, &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))]).await;
    assert_eq!(stream.status, 200);
    stream
}

/// Reads the opening `retry:` hint and the `connected` snapshot.
async fn connected(stream: &mut SseStream) -> Value {
    let opening = stream.next_frame(SOON).await.expect("an opening frame");
    assert_eq!(opening.retry, Some(2000));
    let frame = stream.next_data(SOON).await;
    let message = frame.json();
    assert_eq!(message["type"], "connected", "{message}");
    message["data"].clone()
}

async fn subscribe_live(
    client: &jsonrpsee::ws_client::WsClient,
) -> Result<jsonrpsee::core::client::Subscription<Value>, jsonrpsee::core::ClientError> {
    client
        .subscribe(
            "eventIngestion.subscribeLive",
            rpc_params![],
            "eventIngestion.unsubscribeLive",
        )
        .await
}

async fn live_metric(server: &TestServer, name: &str) -> f64 {
    let metrics = get(&format!("{}/metrics", server.http_url())).await.text;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("sluice_{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"))
}

async fn the_stream_counts_each_visitor_once_on_its_latest_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    server.track(view(a, "/")).await;
    server.track(view(b, "/pricing")).await;
    server.track(view(c, "/")).await;
    let last = server.track(view(a, "/pricing")).await;
    let mut stream = open_live(&server).await;
    assert_eq!(
        stream.headers["content-type"], "text/event-stream",
        "{:?}",
        stream.headers
    );
    let snapshot = connected(&mut stream).await;
    assert_eq!(snapshot["currentVisitors"], 3, "{snapshot}");
    assert_eq!(
        snapshot["activePages"],
        json!([{"path": "/pricing", "visitors": 2}, {"path": "/", "visitors": 1}])
    );
    assert_eq!(snapshot["windowSeconds"], 300);
    let recent = snapshot["recentEvents"].as_array().expect("recent events");
    assert_eq!(recent.len(), 4);
    assert_eq!(recent[0]["eventId"], last.to_string(), "newest first");

    let signed_in = jwt("alice@example.com", Role::Viewer);
    let output = crate::support::call(
        &server.client_with_authorization(&format!("Bearer {signed_in}")),
        "eventIngestion.track",
        json!({"eventType": "signup_completed", "props": {"page": "/signup", "email": "alice@example.com"}}),
    )
    .await
    .expect("track");
    let frame = stream.next_of("new_event", SOON).await;
    assert_eq!(frame.id.as_deref(), output["eventId"].as_str());
    let event = frame.json()["data"].clone();
    assert_eq!(event["eventType"], "signup_completed");
    assert_eq!(event["path"], "/signup");
    assert!(event["visitorId"].as_str().is_some_and(|id| id.len() == 16));
    let text = frame.data.unwrap_or_default();
    assert!(
        !text.contains("alice") && !text.contains("127.0.0.1"),
        "no personal data: {text}"
    );
}

async fn the_stream_is_gzip_when_the_viewer_takes_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = format!("{}/api/live", server.http_url());
    let authorization = format!("Bearer {ADMIN_TOKEN}");
    let plain = sse::open(&url, &[("authorization", &authorization)]).await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.headers["vary"], "accept-encoding");
    drop(plain);
    let mut stream = sse::open(
        &url,
        &[
            ("authorization", &authorization),
            ("accept-encoding", "gzip, deflate, br"),
        ],
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-encoding"], "gzip");
    connected(&mut stream).await;
    // Events a batch apart and within one batch: each arrives once, in order, and the
    // stream inflates as it comes (the decoder would fail on a broken segment).
    let mut sent = Vec::new();
    for round in 0..3 {
        for n in 0..5 {
            sent.push(
                server
                    .track(view(Uuid::now_v7(), &format!("/gzip/{round}/{n}")))
                    .await,
            );
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let frame = stream.next_of("new_event", SOON).await;
        received.push(
            frame
                .id
                .and_then(|id| Uuid::parse_str(&id).ok())
                .expect("an id"),
        );
    }
    assert_eq!(received, sent);
}

async fn the_stream_is_for_admins_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = format!("{}/api/live", server.http_url());
    let anonymous = sse::open(&url, &[]).await;
    assert_eq!(anonymous.status, 401);
    let body: Value = serde_json::from_str(&anonymous.text().await).expect("JSON error");
    assert_eq!(body["error"]["data"]["code"], "UNAUTHORIZED", "{body}");
    let viewer = jwt("viewer-1", Role::Viewer);
    let forbidden = sse::open(&url, &[("authorization", &format!("Bearer {viewer}"))]).await;
    assert_eq!(forbidden.status, 403);
    let bad = sse::open(&format!("{url}?token=not-a-token"), &[]).await;
    assert_eq!(bad.status, 401);
    let admin_jwt = jwt("admin-1", Role::Admin);
    let mut by_query = sse::open(&format!("{url}?token={admin_jwt}"), &[]).await;
    assert_eq!(
        by_query.status, 200,
        "EventSource sends the token in the query"
    );
    connected(&mut by_query).await;
}

async fn opted_out_and_suppressed_events_never_appear(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.pipeline.drop_bots = true).await;
    let opted_out = Uuid::now_v7();
    server
        .call(
            "eventIngestion.setConsent",
            json!({"sessionId": opted_out, "granted": false}),
        )
        .await
        .expect("setConsent");
    let suppressed = server
        .call("eventIngestion.track", view(opted_out, "/secret"))
        .await
        .expect("track");
    assert_eq!(suppressed["status"], "suppressed");
    let mut stream = open_live(&server).await;
    let snapshot = connected(&mut stream).await;
    assert_eq!(snapshot["currentVisitors"], 0, "{snapshot}");
    assert_eq!(snapshot["recentEvents"], json!([]));

    server
        .call("eventIngestion.track", view(opted_out, "/secret-2"))
        .await
        .expect("track");
    let bot = crate::support::raw_http::post(
        &server.http_url(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track",
               "params": view(Uuid::now_v7(), "/bot")})
        .to_string(),
        &[(
            "user-agent",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
        )],
    )
    .await;
    assert_eq!(bot.body["result"]["status"], "suppressed", "{}", bot.text);
    let visible = server.track(view(Uuid::now_v7(), "/public")).await;
    let frame = stream.next_of("new_event", SOON).await;
    assert_eq!(
        frame.id,
        Some(visible.to_string()),
        "the first event shown is the first one accepted"
    );
}

async fn last_event_id_replays_what_the_viewer_missed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut stream = open_live(&server).await;
    connected(&mut stream).await;
    let seen = server.track(view(Uuid::now_v7(), "/one")).await;
    let frame = stream.next_of("new_event", SOON).await;
    assert_eq!(frame.id, Some(seen.to_string()));
    drop(stream);
    let missed = [
        server.track(view(Uuid::now_v7(), "/two")).await,
        server.track(view(Uuid::now_v7(), "/three")).await,
    ];
    let url = format!("{}/api/live", server.http_url());
    let mut resumed = sse::open(
        &url,
        &[
            ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
            ("last-event-id", &seen.to_string()),
        ],
    )
    .await;
    assert_eq!(resumed.status, 200);
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let frame = resumed.next_data(SOON).await;
        assert_eq!(
            frame.json()["type"],
            "new_event",
            "no snapshot before a replay"
        );
        replayed.push(frame.id.expect("an id"));
    }
    assert_eq!(replayed, missed.map(|id| id.to_string()));
    let next = server.track(view(Uuid::now_v7(), "/four")).await;
    let frame = resumed.next_data(SOON).await;
    assert_eq!(frame.id, Some(next.to_string()), "no gap, no repeat");
}

async fn the_stream_sends_stats_and_heartbeats(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut stream = open_live(&server).await;
    connected(&mut stream).await;
    server.track(view(Uuid::now_v7(), "/")).await;
    let stats = stream.next_of("stats", Duration::from_secs(7)).await;
    assert_eq!(stats.json()["data"]["currentVisitors"], 1);
    assert_eq!(stats.id, None, "only events carry ids");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = stream.next_frame(left).await.expect("the stream goes on");
        if frame.comment.as_deref() == Some("heartbeat") {
            break;
        }
    }
}

async fn viewers_past_the_limit_are_refused(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.live.live_max_viewers = 1).await;
    let mut first = open_live(&server).await;
    connected(&mut first).await;
    let url = format!("{}/api/live", server.http_url());
    let second = sse::open(&url, &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))]).await;
    assert_eq!(second.status, 429);
    assert!(second.headers.contains_key("retry-after"));
    let body: Value = serde_json::from_str(&second.text().await).expect("JSON");
    assert_eq!(body["error"]["data"]["code"], "TOO_MANY_REQUESTS", "{body}");
    assert_eq!(
        live_metric(&server, "live_viewers_refused_total").await,
        1.0
    );
    let ws = server
        .try_ws_client("", Some(&format!("Bearer {ADMIN_TOKEN}")))
        .await
        .expect("ws");
    let refused = subscribe_live(&ws)
        .await
        .expect_err("the limit covers every transport");
    assert!(
        refused.to_string().contains("Too many live viewers"),
        "{refused}"
    );
}

async fn a_viewer_that_stops_reading_is_dropped_while_ingestion_goes_on(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.live.live_stall_timeout_seconds = 1;
        config.pipeline.buffer_capacity = 1_000_000;
    })
    .await;
    let address = server.http_url().trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let request = format!(
        "GET /api/live HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    );
    stalled.write_all(request.as_bytes()).await.expect("send");
    let mut healthy = open_live(&server).await;
    connected(&mut healthy).await;
    let long_path = format!("/{}", "p".repeat(3_000));
    let batch: Vec<Value> = (0..50).map(|_| view(Uuid::now_v7(), &long_path)).collect();
    let mut accepted = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while live_metric(&server, "live_viewers_dropped_total").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled viewer was never dropped"
        );
        for _ in 0..20 {
            let output = server
                .call("eventIngestion.trackBatch", json!({"events": batch}))
                .await
                .expect("ingestion goes on");
            accepted += output["successful"].as_u64().expect("successful");
            // The healthy viewer keeps up, so it is never the one dropped.
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(1), healthy.next_frame(SOON)).await
            {
            }
        }
    }
    assert!(accepted >= 1_000, "{accepted}");
    assert_eq!(live_metric(&server, "live_viewers").await, 1.0);
    let next = server.track(view(Uuid::now_v7(), "/after")).await;
    let frame = loop {
        let frame = healthy.next_of("new_event", SOON).await;
        if frame.id == Some(next.to_string()) {
            break frame;
        }
    };
    assert_eq!(frame.json()["data"]["path"], "/after");
    drop(stalled);
}

async fn the_json_rpc_subscription_streams_the_same_items(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = Uuid::now_v7();
    server.track(view(session, "/")).await;
    let anonymous = server.ws_client().await;
    let refused = subscribe_live(&anonymous).await.expect_err("admins only");
    assert!(refused.to_string().contains("UNAUTHORIZED"), "{refused}");

    let admin = server
        .try_ws_client("", Some(&format!("Bearer {ADMIN_TOKEN}")))
        .await
        .expect("ws");
    let mut subscription = subscribe_live(&admin).await.expect("subscribed");
    let first = tokio::time::timeout(SOON, subscription.next())
        .await
        .expect("in time")
        .expect("an item")
        .expect("JSON");
    assert_eq!(first["type"], "connected");
    assert_eq!(first["data"]["currentVisitors"], 1);
    let id = server.track(view(session, "/docs")).await;
    let next = tokio::time::timeout(SOON, subscription.next())
        .await
        .expect("in time")
        .expect("an item")
        .expect("JSON");
    assert_eq!(next["type"], "new_event");
    assert_eq!(next["data"]["eventId"], id.to_string());
    assert_eq!(live_metric(&server, "live_viewers").await, 1.0);
    subscription.unsubscribe().await.expect("unsubscribed");
    let deadline = tokio::time::Instant::now() + SOON;
    while live_metric(&server, "live_viewers").await != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place is given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn visitors_leave_after_five_minutes_by_the_servers_clock(backend: Backend) {
    let clock = std::sync::Arc::new(sluice::pipeline::clock::ManualClock::default());
    let server = TestServer::start_with_clock(backend, clock.clone()).await;
    server.track(view(Uuid::now_v7(), "/early")).await;
    clock.advance(chrono::Duration::seconds(200));
    server.track(view(Uuid::now_v7(), "/later")).await;
    let mut stream = open_live(&server).await;
    assert_eq!(connected(&mut stream).await["currentVisitors"], 2);
    drop(stream);
    clock.advance(chrono::Duration::seconds(101));
    let mut stream = open_live(&server).await;
    let snapshot = connected(&mut stream).await;
    assert_eq!(snapshot["currentVisitors"], 1, "{snapshot}");
    assert_eq!(
        snapshot["activePages"],
        json!([{"path": "/later", "visitors": 1}])
    );
    drop(stream);
    clock.advance(chrono::Duration::seconds(200));
    let mut stream = open_live(&server).await;
    let snapshot = connected(&mut stream).await;
    assert_eq!(snapshot["currentVisitors"], 0, "{snapshot}");
    assert_eq!(
        snapshot["recentEvents"].as_array().map(Vec::len),
        Some(2),
        "the feed still lists the events; only the visitor window expires"
    );
}

async fn the_live_page_is_served(backend: Backend) {
    let server = TestServer::start(backend).await;
    let page = get(&format!("{}/live", server.http_url())).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .is_ok_and(|value| value.starts_with("text/html"))
    );
    assert!(
        page.text.contains("/api/live"),
        "the page reads the SSE stream"
    );
    assert!(!page.text.contains("https://"), "nothing from a CDN");
}

/// A viewer on one node sees the events accepted on another, each once, and again after
/// its listener's connection to the database was cut and came back.
async fn a_viewer_on_one_node_sees_every_nodes_events_once(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let node_a = {
        let config = test_config(&database);
        TestServer::start_on(config).await
    };
    let proxy = ChaosProxy::start(database.server_addr()).await;
    let mut config_b = test_config(&database);
    config_b.database.database_url = Some(database.url_through(proxy.addr));
    let node_b = TestServer::start_on(config_b).await;
    let mut on_b = open_live(&node_b).await;
    connected(&mut on_b).await;
    // The listener may still be connecting: wait until node A's events arrive.
    let first = wait_for_relay(&node_a, &mut on_b).await;
    let from_a = node_a.track(view(Uuid::now_v7(), "/a")).await;
    let from_b = node_b.track(view(Uuid::now_v7(), "/b")).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(on_b.next_of("new_event", SOON).await.id.expect("id"));
    }
    seen.sort();
    let mut expected = vec![from_a.to_string(), from_b.to_string()];
    expected.sort();
    assert_eq!(seen, expected, "each once");
    let snapshot = node_b
        .admin_call("eventIngestion.getStats", json!({}))
        .await;
    assert!(snapshot.is_ok());
    let metrics = get(&format!("{}/metrics", node_b.http_url())).await.text;
    assert!(
        metrics.contains("sluice_live_relay_received_total"),
        "{metrics}"
    );
    drop(first);

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    let again = wait_for_relay(&node_a, &mut on_b).await;
    assert!(!again.is_empty());
    assert!(live_metric(&node_b, "live_relay_reconnects_total").await >= 1.0);
}

/// Tracks on `from` until `viewer` shows one of those events; returns the ids tracked.
async fn wait_for_relay(from: &TestServer, viewer: &mut SseStream) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tracked = Vec::new();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node A's events never reached node B"
        );
        tracked.push(from.track(view(Uuid::now_v7(), "/probe")).await.to_string());
        let waited = tokio::time::timeout(
            Duration::from_millis(500),
            viewer.next_of("new_event", Duration::from_secs(60)),
        )
        .await;
        if let Ok(frame) = waited {
            let id = frame.id.expect("id");
            assert!(tracked.contains(&id), "an event of node A: {id}");
            // Drain what else of the probes is on its way.
            while let Ok(frame) = tokio::time::timeout(
                Duration::from_millis(300),
                viewer.next_of("new_event", Duration::from_secs(60)),
            )
            .await
            {
                assert!(tracked.contains(&frame.id.expect("id")));
            }
            return tracked;
        }
    }
}

mod a_viewer_on_one_node_sees_every_nodes_events_once {
    crate::shared_database_tests!(test);

    async fn test(backend: crate::support::Backend) {
        super::a_viewer_on_one_node_sees_every_nodes_events_once(backend).await;
    }
}
