//! When events reach the database: at batch size, at the batch timeout, on forceFlush.

use std::time::Duration;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::{Backend, TestServer, page_view};

backend_tests!(
    a_full_batch_flushes_at_once,
    the_timer_flushes_a_partial_batch,
    force_flush_reports_what_it_wrote,
    batches_larger_than_one_statement_are_written,
    a_batch_of_any_length_is_written_whole
);

async fn a_full_batch_flushes_at_once(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.pipeline.batch_size = 5).await;
    for _ in 0..4 {
        server.track(page_view()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.count().await,
        0,
        "4 < batch size: nothing written yet (timer is 1 h)"
    );
    server.track(page_view()).await;
    assert_eq!(server.wait_for_count(5, Duration::from_secs(10)).await, 5);
    let stats = server.stats().await;
    assert_eq!(stats["bufferSize"], 0);
    assert_eq!(stats["counters"]["persisted"], 5);
    assert_eq!(stats["counters"]["flushes"], 1);
}

async fn the_timer_flushes_a_partial_batch(backend: Backend) {
    let server =
        TestServer::start_with(backend, |config| config.pipeline.batch_timeout_ms = 200).await;
    let started = std::time::Instant::now();
    let id = server.track(page_view()).await;
    assert_eq!(server.wait_for_count(1, Duration::from_secs(10)).await, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(server.stored(id).await.is_some());
}

async fn force_flush_reports_what_it_wrote(backend: Backend) {
    let server = TestServer::start(backend).await;
    for _ in 0..3 {
        server.track(page_view()).await;
    }
    assert_eq!(server.stats().await["bufferSize"], 3);
    let flush = server.force_flush().await;
    assert_eq!(flush["flushed"], true);
    assert_eq!(flush["persisted"], 3);
    assert!(
        flush["message"].as_str().expect("message").contains('3'),
        "{flush}"
    );
    assert_eq!(server.count().await, 3);

    let again = server.force_flush().await;
    assert_eq!(again["persisted"], 0);
    assert_eq!(again["flushed"], true);
    assert_eq!(again["message"], "Buffer was empty; nothing to flush");
    let stats = server.stats().await;
    assert_eq!(stats["bufferSize"], 0);
    assert_eq!(stats["counters"]["accepted"], 3);
    assert_eq!(stats["counters"]["persisted"], 3);
    assert_eq!(stats["deliveryRate"], 1.0);
}

async fn batches_larger_than_one_statement_are_written(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.pipeline.batch_size = 2500).await;
    for _ in 0..50 {
        let events: Vec<Value> = (0..50).map(|_| page_view()).collect();
        server
            .call("eventIngestion.trackBatch", json!({"events": events}))
            .await
            .expect("batch");
    }
    assert_eq!(
        server.wait_for_count(2500, Duration::from_secs(30)).await,
        2500
    );
}

/// Statements have fixed lengths (SQLite writes 25, then 10, then 1 row at a time), so a
/// batch of 123 takes every length; each event must land once, none left behind.
async fn a_batch_of_any_length_is_written_whole(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.pipeline.batch_size = 1000).await;
    for size in [50, 50, 23] {
        let events: Vec<Value> = (0..size).map(|_| page_view()).collect();
        let reply = server
            .call("eventIngestion.trackBatch", json!({"events": events}))
            .await
            .expect("batch");
        assert_eq!(reply["successful"], size);
    }
    let report = server.force_flush().await;
    assert_eq!(report["persisted"], 123);
    assert_eq!(server.count().await, 123);
    assert_eq!(server.stats().await["counters"]["persisted"], 123);
}
