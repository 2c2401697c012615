//! ADMIN-only procedures and the honesty of getStats.

use serde_json::json;

use crate::backend_tests;
use crate::support::{ADMIN_TOKEN, Backend, TestServer, assert_error, call, page_view};

backend_tests!(
    admin_procedures_refuse_anonymous_callers,
    a_wrong_token_is_unauthorized_everywhere,
    get_stats_has_the_contract_shape,
    admin_procedures_take_no_input
);

async fn admin_procedures_refuse_anonymous_callers(backend: Backend) {
    let server = TestServer::start(backend).await;
    for method in ["eventIngestion.getStats", "eventIngestion.forceFlush"] {
        let error = server.call(method, json!({})).await.expect_err(method);
        assert_error(&error, "UNAUTHORIZED", -32001);
        assert_eq!(crate::support::error_data(&error)["httpStatus"], 401);
    }
}

async fn a_wrong_token_is_unauthorized_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let client = server.client_with_authorization("Bearer not-the-admin-token");
    for (method, input) in [
        ("eventIngestion.getStats", json!({})),
        ("eventIngestion.forceFlush", json!({})),
        ("eventIngestion.track", page_view()),
        (
            "eventIngestion.trackBatch",
            json!({"events": [page_view()]}),
        ),
    ] {
        let error = call(&client, method, input).await.expect_err(method);
        assert_error(&error, "UNAUTHORIZED", -32001);
    }
    let malformed = server.client_with_authorization(&format!("Token {ADMIN_TOKEN}"));
    let error = call(&malformed, "eventIngestion.track", page_view())
        .await
        .expect_err("scheme");
    assert_error(&error, "UNAUTHORIZED", -32001);
    server.force_flush().await;
    assert_eq!(
        server.count().await,
        0,
        "a refused caller's events are not stored"
    );
}

async fn get_stats_has_the_contract_shape(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.pipeline.batch_size = 7;
        config.pipeline.batch_timeout_ms = 60_000;
        config.pipeline.dedup_ttl_seconds = 90;
    })
    .await;
    server.track(page_view()).await;
    server.track(page_view()).await;
    let _ = server
        .call("eventIngestion.track", json!({"eventType": ""}))
        .await;
    let stats = server.stats().await;
    assert_eq!(stats["bufferSize"], 2);
    assert_eq!(stats["isProcessing"], false);
    assert_eq!(
        stats["config"],
        json!({
            "batchSize": 7, "batchTimeoutMs": 60000, "enableDeduplication": true,
            "enableEnrichment": true, "deduplicationTtlSeconds": 90, "bufferCapacity": 100000
        })
    );
    let counters = &stats["counters"];
    assert_eq!(counters["accepted"], 2);
    assert_eq!(counters["rejected"], 1);
    assert_eq!(counters["persisted"], 0);
    assert_eq!(counters["duplicates"], 0);
    assert_eq!(counters["replayed"], 0);
    assert_eq!(counters["failedFlushes"], 0);
    assert_eq!(counters["deadLettered"], 0);
    assert_eq!(stats["deliveryRate"], 0.0, "nothing persisted yet");
    assert_eq!(stats["failureRate"], 0.0);
    assert_eq!(stats["health"], "healthy");
    let expected_backend = match server.store().backend() {
        sluice::storage::Backend::Postgres => "postgres",
        _ => "sqlite",
    };
    assert_eq!(stats["pool"]["backend"], expected_backend);
    assert_eq!(stats["pool"]["maxSize"], 4);
}

async fn admin_procedures_take_no_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let error = server
        .admin_call("eventIngestion.getStats", json!({"verbose": true}))
        .await
        .expect_err("unknown key");
    assert_error(&error, "BAD_REQUEST", -32600);
}
