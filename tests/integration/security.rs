//! Identity, access control and abuse limits, over real sockets.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sluice::domain::{Claims, Role};
use sluice::identity::{Secret, mint_token};
use uuid::Uuid;

use crate::backend_tests;
use crate::support::raw_http::{post, request};
use crate::support::{
    ADMIN_TOKEN, Backend, JWT_SECRET, TestServer, assert_error, call, error_data, jwt, page_view,
};

backend_tests!(
    jwt_claims_are_stamped_on_events,
    every_bad_token_is_unauthorized_on_every_procedure,
    roles_cannot_escalate,
    tokens_work_over_websocket_headers_and_query,
    oversized_bodies_are_payload_too_large,
    a_client_still_sending_a_refused_body_reads_the_refusal,
    deep_nesting_is_refused_without_harm,
    the_rate_limit_trips_and_recovers,
    spoofed_forwarded_headers_are_ignored,
    trusted_proxies_name_the_client,
    websocket_connections_are_capped
);

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn jwt_claims_are_stamped_on_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let claims = Claims {
        sub: "user-42".into(),
        role: Role::Creator,
        creator_id: Some("creator-7".into()),
        brand_id: Some("brand-9".into()),
        exp: None,
    };
    let token = mint_token(&Secret::new(JWT_SECRET), claims, Some(600)).expect("mint");
    let client = server.client_with_authorization(&bearer(&token));
    let output = call(&client, "eventIngestion.track", page_view())
        .await
        .expect("track");
    let id: Uuid = serde_json::from_value(output["eventId"].clone()).expect("id");
    server.force_flush().await;
    let stored = server.stored(id).await.expect("stored");
    assert_eq!(stored.actor_id.as_deref(), Some("user-42"));
    assert_eq!(stored.actor_type.as_deref(), Some("CREATOR"));
    assert_eq!(stored.user_id.as_deref(), Some("user-42"));
    assert_eq!(stored.creator_id.as_deref(), Some("creator-7"));
    assert_eq!(stored.brand_id.as_deref(), Some("brand-9"));
}

/// A token signed with `alg` and `secret` over hand-written claims.
fn forged(header: Value, claims: Value, signature: &[u8]) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        encode(header.to_string().as_bytes()),
        encode(claims.to_string().as_bytes()),
        encode(signature)
    )
}

fn bad_tokens() -> Vec<(&'static str, String)> {
    let wrong_secret = mint_token(
        &Secret::new("some-other-secret-some-other-secret"),
        Claims {
            sub: "u".into(),
            role: Role::Admin,
            creator_id: None,
            brand_id: None,
            exp: None,
        },
        Some(600),
    )
    .expect("mint");
    let expired = {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        let claims = json!({"sub": "u", "role": "ADMIN", "exp": 1_000_000_000});
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .expect("encode")
    };
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({"sub": "u", "role": "ADMIN"}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("encode");
    let unknown_role = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "u", "role": "SUPERUSER"}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("encode");
    vec![
        ("bad signature", wrong_secret),
        (
            "alg none",
            forged(
                json!({"alg": "none", "typ": "JWT"}),
                json!({"sub": "u", "role": "ADMIN"}),
                b"",
            ),
        ),
        ("expired", expired),
        ("other algorithm", hs512),
        ("unknown role", unknown_role),
        ("malformed", "not.a.jwt".to_owned()),
        ("garbage", "%%%".to_owned()),
    ]
}

async fn every_bad_token_is_unauthorized_on_every_procedure(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (case, token) in bad_tokens() {
        let client = server.client_with_authorization(&bearer(&token));
        for (method, input) in [
            ("eventIngestion.track", page_view()),
            (
                "eventIngestion.trackBatch",
                json!({"events": [page_view()]}),
            ),
            ("eventIngestion.getStats", json!({})),
            ("eventIngestion.forceFlush", json!({})),
        ] {
            let error = call(&client, method, input)
                .await
                .expect_err(&format!("{case} on {method}"));
            assert_error(&error, "UNAUTHORIZED", -32001);
            assert!(!error.message().contains(&token), "the token is not echoed");
        }
    }
    server.force_flush().await;
    assert_eq!(
        server.count().await,
        0,
        "no bad token fell back to anonymous"
    );
}

async fn roles_cannot_escalate(backend: Backend) {
    let server = TestServer::start(backend).await;
    for role in [Role::Viewer, Role::Creator, Role::Brand] {
        let client = server.client_with_authorization(&bearer(&jwt("u1", role)));
        for method in ["eventIngestion.getStats", "eventIngestion.forceFlush"] {
            let error = call(&client, method, json!({})).await.expect_err(method);
            assert_error(&error, "FORBIDDEN", -32003);
            assert_eq!(error_data(&error)["httpStatus"], 403);
        }
        // A user may track, but cannot claim another identity in the input.
        let error = call(
            &client,
            "eventIngestion.track",
            json!({"eventType": "x", "actorType": "ADMIN", "userId": "root"}),
        )
        .await
        .expect_err("identity fields are not input");
        assert_error(&error, "BAD_REQUEST", -32600);
    }
    let admin = server.client_with_authorization(&bearer(&jwt("boss", Role::Admin)));
    call(&admin, "eventIngestion.getStats", json!({}))
        .await
        .expect("an ADMIN JWT may read stats");
    let lowercase = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "u", "role": "admin"}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("encode");
    let client = server.client_with_authorization(&bearer(&lowercase));
    let error = call(&client, "eventIngestion.getStats", json!({}))
        .await
        .expect_err("roles are exact");
    assert_error(&error, "UNAUTHORIZED", -32001);
}

async fn tokens_work_over_websocket_headers_and_query(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = jwt("ws-user", Role::Viewer);
    let by_header = server
        .try_ws_client("", Some(&bearer(&token)))
        .await
        .expect("ws with header");
    let by_query = server
        .try_ws_client(&format!("/?token={token}"), None)
        .await
        .expect("ws with ?token=");
    let mut ids = Vec::new();
    for client in [&by_header, &by_query] {
        let output = call(client, "eventIngestion.track", page_view())
            .await
            .expect("track");
        ids.push(serde_json::from_value::<Uuid>(output["eventId"].clone()).expect("id"));
        let error = call(client, "eventIngestion.getStats", json!({}))
            .await
            .expect_err("viewer");
        assert_error(&error, "FORBIDDEN", -32003);
    }
    server.force_flush().await;
    for id in ids {
        let stored = server.stored(id).await.expect("stored");
        assert_eq!(stored.user_id.as_deref(), Some("ws-user"));
    }
    let bad = server
        .try_ws_client("/?token=not-a-token", None)
        .await
        .expect("the handshake succeeds; calls are refused");
    let error = call(&bad, "eventIngestion.track", page_view())
        .await
        .expect_err("bad");
    assert_error(&error, "UNAUTHORIZED", -32001);
}

async fn oversized_bodies_are_payload_too_large(backend: Backend) {
    let server = TestServer::start(backend).await;
    let big = json!({
        "jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track",
        "params": {"eventType": "x", "props": {"blob": "x".repeat(2 * 1024 * 1024)}}
    });
    let response = post(&server.http_url(), big.to_string(), &[]).await;
    assert_eq!(response.status, 413);
    assert_eq!(
        response.body["error"]["code"],
        -32013,
        "{}",
        &response.text[..200.min(response.text.len())]
    );
    assert_eq!(response.body["error"]["data"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(response.body["error"]["data"]["httpStatus"], 413);
    // The server is fine afterwards.
    server.track(page_view()).await;
}

/// The body limit answers before the body has arrived; the server reads the rest and throws
/// it away, so that a client still sending gets the 413 rather than a reset connection.
async fn a_client_still_sending_a_refused_body_reads_the_refusal(backend: Backend) {
    let server = TestServer::start(backend).await;
    let body = format!(
        r#"{{"eventType":"x","props":{{"b":"{}"}}}}"#,
        "x".repeat(6 * 1024 * 1024)
    );
    let urls = [
        server.http_url(),
        format!("{}/api/trpc/eventIngestion.track", server.http_url()),
    ];
    let sends = (0..8).map(|attempt| {
        let (url, body) = (urls[attempt % 2].clone(), body.clone());
        tokio::spawn(async move { post(&url, body, &[("content-type", "application/json")]).await })
    });
    for send in sends {
        let response = send.await.expect("task");
        assert_eq!(
            response.status,
            413,
            "{}",
            &response.text[..200.min(response.text.len())]
        );
        assert_eq!(response.body["error"]["data"]["code"], "PAYLOAD_TOO_LARGE");
    }
    server.track(page_view()).await;
}

async fn deep_nesting_is_refused_without_harm(backend: Backend) {
    let server = TestServer::start(backend).await;
    let depth = 10_000;
    let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let as_params = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eventIngestion.track","params":{{"eventType":"x","props":{{"deep":{nested}}}}}}}"#
    );
    let response = post(&server.http_url(), as_params, &[]).await;
    assert!(response.status.as_u16() < 500, "{}", response.status);
    let code = response.body["error"]["code"]
        .as_i64()
        .expect("an error code");
    assert!(code == -32700 || code == -32600, "{}", response.text);
    let as_body = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let response = post(&server.http_url(), as_body, &[]).await;
    assert_eq!(response.body["error"]["code"], -32700, "{}", response.text);
    server.track(page_view()).await;
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}

async fn the_rate_limit_trips_and_recovers(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_limit_per_second = 1;
        config.limits.rate_limit_burst = 50;
    })
    .await;
    let events: Vec<Value> = (0..50).map(|_| page_view()).collect();
    server
        .call("eventIngestion.trackBatch", json!({"events": events}))
        .await
        .expect("a full burst passes");
    let error = server
        .call("eventIngestion.track", page_view())
        .await
        .expect_err("the bucket is empty");
    assert_error(&error, "TOO_MANY_REQUESTS", -32029);
    let data = error_data(&error);
    assert_eq!(data["httpStatus"], 429);
    assert!(
        data["retryAfterSeconds"].as_u64().is_some_and(|s| s >= 1),
        "{data}"
    );
    // Another user has a bucket of its own.
    let other = server.client_with_authorization(&bearer(&jwt("someone-else", Role::Viewer)));
    call(&other, "eventIngestion.track", page_view())
        .await
        .expect("own bucket");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    server.track(page_view()).await;
    server.force_flush().await;
    assert_eq!(
        server.count().await,
        52,
        "only the refused event is missing"
    );
}

/// Anonymous events without a session are fingerprinted with the client IP, so the IP Sluice
/// believes is observable: the same event from "two addresses" is a duplicate when the
/// addresses are spoofed.
async fn spoofed_forwarded_headers_are_ignored(backend: Backend) {
    let server = TestServer::start(backend).await;
    let at = an_hour_ago();
    let first = forwarded_track(&server, "198.51.100.1", &at).await;
    let second = forwarded_track(&server, "203.0.113.2", &at).await;
    assert_eq!(first["result"]["status"], "accepted");
    assert_eq!(
        second["result"]["status"], "duplicate",
        "XFF was ignored: one client"
    );
}

async fn trusted_proxies_name_the_client(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.http.trusted_proxies = "127.0.0.1/32".into();
    })
    .await;
    let at = an_hour_ago();
    let first = forwarded_track(&server, "198.51.100.1", &at).await;
    let second = forwarded_track(&server, "203.0.113.2", &at).await;
    assert_eq!(first["result"]["status"], "accepted");
    assert_eq!(
        second["result"]["status"], "accepted",
        "two clients behind the proxy"
    );
}

/// Tracks one anonymous, session-less event at the pinned time `at`, claiming to come from
/// `forwarded_for`.
async fn forwarded_track(server: &TestServer, forwarded_for: &str, at: &str) -> Value {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track",
        "params": {"eventType": "page_viewed", "props": {"occurred_at": at, "p": "/"}}
    });
    let headers = [
        ("x-forwarded-for", forwarded_for),
        ("x-real-ip", forwarded_for),
    ];
    post(&server.http_url(), body.to_string(), &headers)
        .await
        .body
}

fn an_hour_ago() -> String {
    (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339()
}

async fn websocket_connections_are_capped(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.http.max_ws_connections = 2).await;
    let first = server.try_ws_client("", None).await.expect("first");
    let second = server.try_ws_client("", None).await.expect("second");
    assert!(
        server.try_ws_client("", None).await.is_err(),
        "the third is refused"
    );
    drop(first);
    let mut reconnected = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(client) = server.try_ws_client("", None).await {
            reconnected = Some(client);
            break;
        }
    }
    let third = reconnected.expect("a closed connection frees its slot");
    call(&third, "eventIngestion.track", page_view())
        .await
        .expect("works");
    call(&second, "eventIngestion.track", page_view())
        .await
        .expect("works");
}

#[test]
fn admin_token_and_jwt_secret_constants_differ() {
    assert_ne!(ADMIN_TOKEN, JWT_SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_for_allowed_origins() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.cors_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        let url = server.http_url();
        async move {
            request(
                "OPTIONS",
                &url,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "content-type,authorization",
                    ),
                ],
                "",
            )
            .await
        }
    };
    let allowed = preflight("https://app.example.com").await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(allowed.headers["access-control-allow-credentials"], "true");
    let allowed_headers = allowed.headers["access-control-allow-headers"]
        .to_str()
        .expect("text");
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let refused = preflight("https://evil.example.net").await;
    assert!(refused.headers.get("access-control-allow-origin").is_none());

    let actual = post(
        &server.http_url(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track", "params": page_view()})
            .to_string(),
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(
        actual.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(actual.body["result"]["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_subcommand_mints_a_working_token() {
    let server = TestServer::start(Backend::Sqlite).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "token",
            "--sub",
            "ops",
            "--role",
            "ADMIN",
            "--ttl-seconds",
            "60",
        ])
        .env("SLUICE_JWT_SECRET", JWT_SECRET)
        .output()
        .expect("run sluice token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let client = server.client_with_authorization(&bearer(&token));
    call(&client, "eventIngestion.getStats", json!({}))
        .await
        .expect("the minted admin token works");
    let without_secret = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["token", "--sub", "ops"])
        .env_remove("SLUICE_JWT_SECRET")
        .output()
        .expect("run sluice token");
    assert!(!without_secret.status.success());
}
