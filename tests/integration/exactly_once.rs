//! Every event counts once: deduplication by fingerprint and durable idempotency keys, in
//! memory and in the database, across restarts and across nodes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_tests;
use crate::support::process::SluiceProcess;
use crate::support::{Backend, TestServer, call};

backend_tests!(
    a_repeat_within_the_second_is_a_duplicate,
    the_same_event_two_seconds_apart_is_accepted_twice,
    fifty_identical_events_in_one_batch_are_stored_once,
    an_idempotency_key_replays_before_and_after_a_flush,
    an_idempotency_key_replays_after_a_restart,
    an_idempotency_key_replays_on_another_node,
    an_idempotency_key_replays_in_another_process,
    concurrent_identical_events_are_stored_once,
    concurrent_requests_with_one_key_are_stored_once,
    the_database_refuses_a_duplicate_that_memory_missed,
    deduplication_can_be_switched_off
);

/// An event whose time is pinned, so that its fingerprint does not depend on when it is sent.
fn event_at(at: chrono::DateTime<Utc>) -> Value {
    json!({
        "eventType": "button_clicked",
        "sessionId": "5b0c2a8e-51b4-4d3c-9a51-3f0c3d2a1b00",
        "props": {"button": "buy", "occurred_at": at.to_rfc3339()}
    })
}

async fn track_raw(server: &TestServer, input: Value) -> Value {
    server
        .call("eventIngestion.track", input)
        .await
        .expect("track answers")
}

fn id_of(output: &Value) -> Uuid {
    serde_json::from_value(output["eventId"].clone()).expect("eventId")
}

async fn a_repeat_within_the_second_is_a_duplicate(backend: Backend) {
    let server = TestServer::start(backend).await;
    let second = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(10);
    let first = track_raw(
        &server,
        event_at(second + chrono::Duration::milliseconds(100)),
    )
    .await;
    let repeat = track_raw(
        &server,
        event_at(second + chrono::Duration::milliseconds(900)),
    )
    .await;
    assert_eq!(first["status"], "accepted");
    assert_eq!(repeat["status"], "duplicate", "{repeat}");
    assert_eq!(repeat["tracked"], false);
    assert_eq!(repeat["eventId"], first["eventId"], "the original event id");

    server.force_flush().await;
    assert_eq!(server.count().await, 1);
    let stats = server.stats().await;
    assert_eq!(stats["counters"]["duplicates"], 1);
    assert_eq!(stats["counters"]["accepted"], 1);
}

async fn the_same_event_two_seconds_apart_is_accepted_twice(backend: Backend) {
    let server = TestServer::start(backend).await;
    let at = Utc::now() - chrono::Duration::seconds(30);
    let first = track_raw(&server, event_at(at)).await;
    let later = track_raw(&server, event_at(at + chrono::Duration::seconds(2))).await;
    assert_eq!(first["status"], "accepted");
    assert_eq!(later["status"], "accepted");
    assert_ne!(first["eventId"], later["eventId"]);

    // Without occurred_at the receive time counts: wait two real seconds.
    let live = |input: &Value| track_raw(&server, input.clone());
    let plain = json!({"eventType": "heartbeat"});
    assert_eq!(live(&plain).await["status"], "accepted");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(live(&plain).await["status"], "accepted");
    server.force_flush().await;
    assert_eq!(server.count().await, 4);
}

async fn fifty_identical_events_in_one_batch_are_stored_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let events: Vec<Value> = (0..50)
        .map(|_| json!({"eventType": "post_viewed", "props": {"post_id": "p1"}}))
        .collect();
    let output = server
        .call("eventIngestion.trackBatch", json!({"events": events}))
        .await
        .expect("batch");
    let results = output["results"].as_array().expect("results");
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["data"]["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "accepted").count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == "duplicate").count(), 49);
    assert_eq!(statuses[0], "accepted");
    let original = &results[0]["data"]["eventId"];
    assert!(results.iter().all(|r| &r["data"]["eventId"] == original));
    assert_eq!(
        output["successful"], 50,
        "a duplicate is a settled, successful item"
    );
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}

async fn an_idempotency_key_replays_before_and_after_a_flush(backend: Backend) {
    let server = TestServer::start(backend).await;
    let key = Uuid::now_v7();
    let keyed =
        |n: u32| json!({"eventType": "signed_up", "idempotencyKey": key, "props": {"try": n}});
    let original = track_raw(&server, keyed(1)).await;
    assert_eq!(original["status"], "accepted");

    let buffered = track_raw(&server, keyed(2)).await;
    assert_eq!(buffered["status"], "replayed", "{buffered}");
    assert_eq!(buffered["tracked"], true);
    assert_eq!(buffered["eventId"], original["eventId"]);

    server.force_flush().await;
    let flushed = track_raw(&server, keyed(3)).await;
    assert_eq!(flushed["status"], "replayed");
    assert_eq!(flushed["eventId"], original["eventId"]);

    server.force_flush().await;
    assert_eq!(server.count().await, 1);
    let stored = server.stored(id_of(&original)).await.expect("stored");
    assert_eq!(stored.idempotency_key, Some(key));
    assert_eq!(
        stored.props.expect("props").to_value().expect("props JSON")["try"],
        1,
        "the original is kept"
    );
    assert_eq!(server.stats().await["counters"]["replayed"], 2);
}

async fn an_idempotency_key_replays_after_a_restart(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let key = Uuid::now_v7();
    let keyed = json!({"eventType": "license_signed", "idempotencyKey": key, "props": {"license_id": "l1"}});
    let original = track_raw(&server, keyed.clone()).await;
    assert_eq!(original["status"], "accepted");
    // Restart while the event is still buffered: shutdown drains it.
    server.restart().await;
    let repeat = track_raw(&server, keyed).await;
    assert_eq!(repeat["status"], "replayed", "{repeat}");
    assert_eq!(repeat["eventId"], original["eventId"]);
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}

async fn an_idempotency_key_replays_on_another_node(backend: Backend) {
    let first = TestServer::start(backend).await;
    let second = first.another_node().await;
    let key = Uuid::now_v7();
    let keyed = json!({"eventType": "payout_completed", "idempotencyKey": key,
                       "props": {"amount_cents": 500, "payment_method": "sepa"}});
    let original = track_raw(&first, keyed.clone()).await;
    // The original is still in the first node's buffer.
    let repeat = track_raw(&second, keyed.clone()).await;
    assert_eq!(repeat["status"], "replayed", "{repeat}");
    assert_eq!(repeat["eventId"], original["eventId"]);
    first.force_flush().await;
    second.force_flush().await;
    let again = track_raw(&second, keyed).await;
    assert_eq!(again["eventId"], original["eventId"]);
    second.force_flush().await;
    assert_eq!(first.count().await, 1);
}

async fn an_idempotency_key_replays_in_another_process(backend: Backend) {
    let server = TestServer::start(backend).await;
    let other = SluiceProcess::start(&server.database_url()).await;
    let other_client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(other.url())
        .expect("client");
    let key = Uuid::now_v7();
    let keyed = json!({"eventType": "signed_up", "idempotencyKey": key});
    let original = track_raw(&server, keyed.clone()).await;
    let repeat = call(&other_client, "eventIngestion.track", keyed)
        .await
        .expect("track on the other process");
    assert_eq!(repeat["status"], "replayed", "{repeat}");
    assert_eq!(repeat["eventId"], original["eventId"]);
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}

async fn concurrent_identical_events_are_stored_once(backend: Backend) {
    let server = Arc::new(TestServer::start(backend).await);
    let input = event_at(Utc::now() - chrono::Duration::minutes(1));
    let outputs = send_concurrently(&server, input, 32).await;
    let accepted: Vec<&Value> = outputs
        .iter()
        .filter(|o| o["status"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{outputs:?}");
    assert!(
        outputs
            .iter()
            .all(|o| o["eventId"] == accepted[0]["eventId"])
    );
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}

async fn concurrent_requests_with_one_key_are_stored_once(backend: Backend) {
    let server = Arc::new(TestServer::start(backend).await);
    let input = json!({"eventType": "checkout", "idempotencyKey": Uuid::now_v7()});
    let outputs = send_concurrently(&server, input, 32).await;
    let accepted = outputs.iter().filter(|o| o["status"] == "accepted").count();
    assert_eq!(accepted, 1, "{outputs:?}");
    assert!(
        outputs
            .iter()
            .all(|o| o["eventId"] == outputs[0]["eventId"])
    );
    assert!(
        outputs.iter().all(|o| o["status"] != "duplicate"),
        "a repeated key replays"
    );
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}

async fn send_concurrently(server: &Arc<TestServer>, input: Value, tasks: usize) -> Vec<Value> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let server = server.clone();
            let input = input.clone();
            tokio::spawn(async move { track_raw(&server, input).await })
        })
        .collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

/// Two nodes do not share memory: both accept the same event, and the database's unique
/// index keeps one row.
async fn the_database_refuses_a_duplicate_that_memory_missed(backend: Backend) {
    let first = TestServer::start(backend).await;
    let second = first.another_node().await;
    let input = event_at(Utc::now() - chrono::Duration::minutes(2));
    assert_eq!(track_raw(&first, input.clone()).await["status"], "accepted");
    assert_eq!(track_raw(&second, input).await["status"], "accepted");
    let written = first.force_flush().await["persisted"].as_u64().expect("n")
        + second.force_flush().await["persisted"].as_u64().expect("n");
    assert_eq!(written, 1);
    assert_eq!(first.count().await, 1);
    let stats = second.stats().await;
    assert_eq!(stats["counters"]["deduplicatedOnWrite"], 1, "{stats}");
    assert_eq!(
        stats["deliveryRate"], 1.0,
        "found in the database counts as delivered"
    );
}

async fn deduplication_can_be_switched_off(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.pipeline.dedup = false).await;
    let input = event_at(Utc::now() - chrono::Duration::minutes(1));
    assert_eq!(
        track_raw(&server, input.clone()).await["status"],
        "accepted"
    );
    assert_eq!(track_raw(&server, input).await["status"], "accepted");
    server.force_flush().await;
    assert_eq!(server.count().await, 2);
    assert_eq!(server.stats().await["config"]["enableDeduplication"], false);
}
