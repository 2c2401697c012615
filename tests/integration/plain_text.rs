//! `Content-Type: text/plain` JSON bodies (beacons, preflight-free sends): taken by `track`,
//! `trackBatch` and `setConsent` over JSON-RPC and tRPC, refused elsewhere; and the
//! tracker script at `/sluice.js` with its caching headers.

use serde_json::json;

use crate::backend_tests;
use crate::support::raw_http::{get, request};
use crate::support::{ADMIN_TOKEN, Backend, TestServer, page_view};

backend_tests!(
    tracking_calls_take_text_plain_bodies,
    other_calls_refuse_text_plain_bodies,
    the_tracker_script_is_served_with_its_etag
);

const PLAIN: (&str, &str) = ("content-type", "text/plain;charset=UTF-8");

async fn tracking_calls_take_text_plain_bodies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = server.http_url();
    let track =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track", "params": page_view()});
    let answer = request("POST", &url, &[PLAIN], track.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["result"]["status"], "accepted",
        "{}",
        answer.text
    );
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.trackBatch",
         "params": {"events": [page_view(), page_view()]}},
        {"jsonrpc": "2.0", "id": 2, "method": "eventIngestion.setConsent",
         "params": {"sessionId": uuid::Uuid::now_v7(), "granted": true}},
    ]);
    let answer = request("POST", &url, &[PLAIN], batch.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body[0]["result"]["successful"], 2, "{}", answer.text);
    assert_eq!(answer.body[1]["result"]["granted"], true, "{}", answer.text);
    let trpc = request(
        "POST",
        &format!("{url}/api/trpc/eventIngestion.track"),
        &[PLAIN],
        page_view().to_string(),
    )
    .await;
    assert_eq!(trpc.status, 200, "{}", trpc.text);
    assert_eq!(trpc.body["result"]["data"]["status"], "accepted");
    server.force_flush().await;
    assert_eq!(server.count().await, 4);
}

async fn other_calls_refuse_text_plain_bodies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = server.http_url();
    let authorization = format!("Bearer {ADMIN_TOKEN}");
    let flush = json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.forceFlush"});
    let refused = request(
        "POST",
        &url,
        &[PLAIN, ("authorization", &authorization)],
        flush.to_string(),
    )
    .await;
    assert_eq!(refused.status, 415, "{}", refused.text);
    // One admin call in a batch is enough to refuse the whole body.
    let mixed = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track", "params": page_view()},
        flush,
    ]);
    let refused = request("POST", &url, &[PLAIN], mixed.to_string()).await;
    assert_eq!(refused.status, 415, "{}", refused.text);
    let form = request(
        "POST",
        &url,
        &[("content-type", "application/x-www-form-urlencoded")],
        "eventType=x",
    )
    .await;
    assert_eq!(form.status, 415);
    server.force_flush().await;
    assert_eq!(
        server.count().await,
        0,
        "nothing of a refused body is stored"
    );
}

async fn the_tracker_script_is_served_with_its_etag(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = format!("{}/sluice.js", server.http_url());
    let script = get(&url).await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers["cache-control"], "public, max-age=3600");
    assert!(script.text.contains("sluice"), "{}", script.text);
    let etag = script.headers["etag"].to_str().expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let current = request("GET", &url, &[("if-none-match", &etag)], "").await;
    assert_eq!(current.status, 304);
    assert!(current.text.is_empty());
    let stale = request("GET", &url, &[("if-none-match", "\"old\"")], "").await;
    assert_eq!(stale.status, 200);
}
