//! eventIngestion.trackBatch: each item settles on its own; the batch size is 1..=50.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_tests;
use crate::support::{Backend, TestServer, assert_error, error_data, page_view};

backend_tests!(
    a_bad_item_fails_alone,
    fifty_events_are_accepted,
    empty_and_oversized_batches_are_bad_requests,
    batch_input_must_have_events
);

async fn a_bad_item_fails_alone(backend: Backend) {
    let server = TestServer::start(backend).await;
    let output = server
        .call(
            "eventIngestion.trackBatch",
            json!({"events": [page_view(), {"eventType": "asset_viewed"}, page_view(), "not an object"]}),
        )
        .await
        .expect("batch call succeeds");
    assert_eq!(output["total"], 4);
    assert_eq!(output["successful"], 2);
    assert_eq!(output["failed"], 2);
    let results = output["results"].as_array().expect("results");
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["fulfilled", "rejected", "fulfilled", "rejected"]);
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index);
    }
    let rejected = &results[1]["error"];
    assert_eq!(rejected["code"], -32600);
    assert_eq!(rejected["data"]["code"], "BAD_REQUEST");
    assert!(
        rejected["data"]["zodError"]["fieldErrors"]["props.view_duration_ms"].is_array(),
        "{rejected}"
    );
    assert_eq!(results[1]["data"], Value::Null);
    assert_eq!(
        results[3]["error"]["data"]["zodError"]["formErrors"][0],
        "Expected object, received string"
    );

    let accepted: Vec<Uuid> = [0, 2]
        .iter()
        .map(|&i| serde_json::from_value(results[i]["data"]["eventId"].clone()).expect("id"))
        .collect();
    server.force_flush().await;
    assert_eq!(server.count().await, 2);
    for id in accepted {
        assert!(server.stored(id).await.is_some());
    }
    let counters = server.stats().await["counters"].clone();
    assert_eq!(counters["accepted"], 2);
    assert_eq!(counters["rejected"], 2);
}

async fn fifty_events_are_accepted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let events: Vec<Value> = (0..50).map(|_| page_view()).collect();
    let output = server
        .call("eventIngestion.trackBatch", json!({"events": events}))
        .await
        .expect("50 events");
    assert_eq!(output["successful"], 50);
    server.force_flush().await;
    assert_eq!(server.count().await, 50);
}

async fn empty_and_oversized_batches_are_bad_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    for size in [0, 51] {
        let events: Vec<Value> = (0..size).map(|_| page_view()).collect();
        let error = server
            .call("eventIngestion.trackBatch", json!({"events": events}))
            .await
            .expect_err("batch size out of range");
        assert_error(&error, "BAD_REQUEST", -32600);
        assert!(
            error_data(&error)["zodError"]["fieldErrors"]["events"].is_array(),
            "{size}: {error:?}"
        );
    }
    server.force_flush().await;
    assert_eq!(
        server.count().await,
        0,
        "nothing of a refused batch is stored"
    );
}

async fn batch_input_must_have_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let error = server
        .call("eventIngestion.trackBatch", json!({"items": []}))
        .await
        .expect_err("wrong key");
    assert_error(&error, "BAD_REQUEST", -32600);
    let error = server
        .call(
            "eventIngestion.trackBatch",
            json!({"events": {"0": page_view()}}),
        )
        .await
        .expect_err("events must be an array");
    assert!(
        error_data(&error)["zodError"]["fieldErrors"]["events"].is_array(),
        "{error:?}"
    );
}
