//! Graceful shutdown drains the buffer: in-process, and for the real binary on SIGTERM and
//! SIGINT.

use std::time::Duration;

use serde_json::{Value, json};
use sluice::storage::{self, PoolOptions};

use crate::backend_tests;
use crate::support::process::SluiceProcess;
use crate::support::{Backend, TestDatabase, TestServer, call, page_view};

backend_tests!(
    stopping_drains_the_buffer,
    sigterm_drains_the_buffer_and_exits_zero,
    sigint_drains_the_buffer_and_exits_zero
);

async fn stopping_drains_the_buffer(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(server.track(page_view()).await);
    }
    assert_eq!(server.count().await, 0);
    let report = server.stop().await;
    assert_eq!(report.persisted, 7);
    assert_eq!(report.remaining, 0);
    server.restart().await;
    for id in ids {
        assert!(
            server.stored(id).await.is_some(),
            "{id} survived the shutdown"
        );
    }
}

async fn sigterm_drains_the_buffer_and_exits_zero(backend: Backend) {
    drains_on_signal(backend, "TERM").await;
}

async fn sigint_drains_the_buffer_and_exits_zero(backend: Backend) {
    drains_on_signal(backend, "INT").await;
}

async fn drains_on_signal(backend: Backend, signal: &str) {
    let database = TestDatabase::create(&backend).await;
    let mut sluice = SluiceProcess::start(&database.url).await;
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(sluice.url())
        .expect("client");
    let mut accepted = 0;
    for _ in 0..4 {
        let events: Vec<Value> = (0..5).map(|_| page_view()).collect();
        let output = call(
            &client,
            "eventIngestion.trackBatch",
            json!({"events": events}),
        )
        .await
        .expect("batch");
        accepted += output["successful"].as_u64().expect("count");
    }
    assert_eq!(accepted, 20);

    sluice.signal(signal);
    let exit = sluice.wait_for_exit(Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(0), "graceful shutdown exits 0");

    let store = storage::connect(&database.url, &PoolOptions::default())
        .await
        .expect("reopen database");
    assert_eq!(store.count_events().await.expect("count"), 20);
}
