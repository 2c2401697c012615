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
    sigint_drains_the_buffer_and_exits_zero,
    background_work_stops_before_the_drain
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

/// Shutdown stops the timed work (compaction, retention, the metrics upkeep, the consent
/// refresh) and waits for it before it drains the buffer, and each task says it ended: read
/// from the real binary's log on SIGTERM.
async fn background_work_stops_before_the_drain(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("sluice.log");
    let log = std::fs::File::create(&path).expect("log file");
    let env = [
        ("RUST_LOG", "sluice=info"),
        ("SLUICE_LOG_FORMAT", "json"),
        ("SLUICE_RETENTION_DAYS", "30"),
    ];
    let mut sluice = SluiceProcess::start_logging_to(&database.url, &env, log).await;
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(sluice.url())
        .expect("client");
    call(&client, "eventIngestion.track", page_view())
        .await
        .expect("tracked");
    sluice.signal("TERM");
    let exit = sluice.wait_for_exit(Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(0));

    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .expect("log")
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let position = |wanted: &dyn Fn(&Value) -> bool| lines.iter().position(wanted);
    let drained = position(&|line| line["message"] == "buffer drained; shutdown complete")
        .expect("the drain is logged");
    assert_eq!(lines[drained]["persisted"], 1);
    for task in [
        "compaction",
        "retention",
        "metrics upkeep",
        "consent refresh",
    ] {
        let stopped =
            position(&|line| line["message"] == "background task stopped" && line["task"] == task)
                .unwrap_or_else(|| panic!("{task} says it stopped"));
        assert!(stopped < drained, "{task} stopped before the drain");
    }
}
