//! eventIngestion.track: accepted events are stored with every field, by HTTP and WebSocket.

use chrono::{DateTime, Utc};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_tests;
use crate::support::{Backend, TestServer, page_view};

backend_tests!(
    track_stores_every_field,
    event_ids_are_fresh_uuid_v7,
    track_works_over_websocket,
    strings_are_stored_verbatim
);

async fn track_stores_every_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = Uuid::now_v7();
    let key = Uuid::now_v7();
    let occurred_at = "2026-01-01T10:00:00.250Z"
        .parse::<DateTime<Utc>>()
        .expect("time");
    let occurred_at = if Utc::now() - occurred_at > chrono::Duration::days(29) {
        Utc::now() - chrono::Duration::days(1)
    } else {
        occurred_at
    };
    let before = Utc::now();
    let id = server
        .track(json!({
            "eventType": "asset_viewed",
            "source": "mobile",
            "entityId": "cjld2cjxh0000qzrmn831i7rn",
            "entityType": "asset",
            "sessionId": session,
            "idempotencyKey": key,
            "props": {"view_duration_ms": 1200, "occurred_at": occurred_at.to_rfc3339(), "nested": {"a": [1, 2]}},
            "attribution": {
                "utmSource": "newsletter", "utmMedium": "email", "utmCampaign": "launch",
                "utmTerm": "rust", "utmContent": "hero",
                "referrer": "https://news.example.com/a", "landingPage": "https://app.example.com/?x=1"
            }
        }))
        .await;
    assert_eq!(
        server.stored(id).await,
        None,
        "nothing is written before a flush"
    );
    let flush = server.force_flush().await;
    assert_eq!(flush["persisted"], 1, "{flush}");

    let stored = server.stored(id).await.expect("stored");
    assert_eq!(stored.event_type, "asset_viewed");
    assert_eq!(stored.source, "mobile");
    assert_eq!(
        stored.entity_id.as_deref(),
        Some("cjld2cjxh0000qzrmn831i7rn")
    );
    assert_eq!(stored.entity_type.as_deref(), Some("asset"));
    assert_eq!(stored.session_id, Some(session));
    assert_eq!(stored.idempotency_key, Some(key));
    assert_eq!(stored.actor_type.as_deref(), Some("anonymous"));
    assert_eq!(stored.user_id, None);
    let props = stored.props.expect("props").to_value().expect("props JSON");
    assert_eq!(props["view_duration_ms"], 1200);
    assert_eq!(props["nested"], json!({"a": [1, 2]}));
    assert_eq!(stored.attribution.utm_source.as_deref(), Some("newsletter"));
    assert_eq!(stored.attribution.utm_medium.as_deref(), Some("email"));
    assert_eq!(stored.attribution.utm_campaign.as_deref(), Some("launch"));
    assert_eq!(stored.attribution.utm_term.as_deref(), Some("rust"));
    assert_eq!(stored.attribution.utm_content.as_deref(), Some("hero"));
    assert_eq!(
        stored.attribution.referrer.as_deref(),
        Some("https://news.example.com/a")
    );
    assert_eq!(
        stored.attribution.landing_page.as_deref(),
        Some("https://app.example.com/?x=1")
    );
    assert_eq!(
        stored.occurred_at.timestamp_millis(),
        occurred_at.timestamp_millis()
    );
    assert!(stored.received_at >= before - chrono::Duration::seconds(1));
    assert!(stored.received_at <= Utc::now());
}

async fn event_ids_are_fresh_uuid_v7(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.track(page_view()).await;
    let second = server.track(page_view()).await;
    assert_ne!(first, second);
    assert_eq!(first.get_version_num(), 7);
    assert!(second > first, "v7 ids sort by time");
    let minimal = server.track(json!({"eventType": "signed_up"})).await;
    server.force_flush().await;
    let stored = server.stored(minimal).await.expect("stored");
    assert_eq!(stored.source, "web", "source defaults to web");
    assert_eq!(stored.props, None);
    assert_eq!(
        stored.occurred_at, stored.received_at,
        "no occurred_at: the receive time"
    );
}

async fn track_works_over_websocket(backend: Backend) {
    let server = TestServer::start(backend).await;
    let client = server.ws_client().await;
    let by_position: Value = client
        .request("eventIngestion.track", rpc_params![page_view()])
        .await
        .expect("track by position over ws");
    assert_eq!(by_position["status"], "accepted");
    let by_name = crate::support::call(&client, "eventIngestion.track", page_view())
        .await
        .expect("track by name over ws");
    assert_eq!(by_name["tracked"], true);
    let error = crate::support::call(&client, "eventIngestion.track", json!({"eventType": ""}))
        .await
        .expect_err("invalid over ws");
    crate::support::assert_error(&error, "BAD_REQUEST", -32600);
    server.force_flush().await;
    assert_eq!(server.count().await, 2);
}

async fn strings_are_stored_verbatim(backend: Backend) {
    let server = TestServer::start(backend).await;
    let hostile = "'; DROP TABLE events; -- <script>alert(1)</script> \u{1F600} \"quoted\" \\ back";
    let id = server
        .track(json!({"eventType": hostile, "props": {hostile: hostile}}))
        .await;
    server.force_flush().await;
    let stored = server.stored(id).await.expect("stored");
    assert_eq!(stored.event_type, hostile);
    assert_eq!(
        stored.props.expect("props").to_value().expect("props JSON")[hostile],
        hostile
    );
}
