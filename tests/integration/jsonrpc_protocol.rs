//! JSON-RPC 2.0 on the wire: params by name and by position, batches, notifications, protocol
//! errors, and what other HTTP paths answer.

use std::time::Duration;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::raw_http::{get, post};
use crate::support::{ADMIN_TOKEN, Backend, TestServer, page_view};

backend_tests!(
    params_by_name_and_by_position,
    batches_answer_each_call_in_kind,
    notifications_are_tracked_without_a_reply,
    protocol_errors_are_reported,
    other_paths_are_not_found
);

fn request(id: u64, method: &str, params: Option<Value>) -> Value {
    let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if let Some(params) = params {
        request["params"] = params;
    }
    request
}

async fn params_by_name_and_by_position(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = server.http_url();
    for params in [page_view(), json!([page_view()])] {
        let response = post(
            &url,
            request(1, "eventIngestion.track", Some(params)).to_string(),
            &[],
        )
        .await;
        assert_eq!(
            response.body["result"]["status"], "accepted",
            "{}",
            response.text
        );
    }
    let admin = format!("Bearer {ADMIN_TOKEN}");
    for params in [None, Some(json!({})), Some(json!([])), Some(json!([{}]))] {
        let response = post(
            &url,
            request(2, "eventIngestion.getStats", params.clone()).to_string(),
            &[("authorization", &admin)],
        )
        .await;
        assert_eq!(
            response.body["result"]["bufferSize"], 2,
            "{params:?}: {}",
            response.text
        );
    }
    let response = post(
        &url,
        request(
            3,
            "eventIngestion.track",
            Some(json!([page_view(), page_view()])),
        )
        .to_string(),
        &[],
    )
    .await;
    assert_eq!(response.body["error"]["code"], -32600, "{}", response.text);
    assert_eq!(response.body["error"]["data"]["code"], "BAD_REQUEST");
    let response = post(
        &url,
        request(4, "eventIngestion.track", Some(json!(["text"]))).to_string(),
        &[],
    )
    .await;
    assert_eq!(
        response.body["error"]["data"]["zodError"]["formErrors"][0],
        "Expected object, received string",
        "{}",
        response.text
    );
}

async fn batches_answer_each_call_in_kind(backend: Backend) {
    let server = TestServer::start(backend).await;
    let batch = json!([
        request(10, "eventIngestion.track", Some(page_view())),
        request(11, "eventIngestion.track", Some(json!({"eventType": ""}))),
        request(12, "eventIngestion.nope", None),
        request(13, "eventIngestion.getStats", None),
    ]);
    let response = post(&server.http_url(), batch.to_string(), &[]).await;
    let replies = response.body.as_array().expect("array of replies");
    assert_eq!(replies.len(), 4, "{}", response.text);
    let by_id = |id: u64| {
        replies
            .iter()
            .find(|reply| reply["id"] == id)
            .unwrap_or_else(|| panic!("reply {id} in {}", response.text))
    };
    assert_eq!(by_id(10)["result"]["status"], "accepted");
    assert_eq!(by_id(11)["error"]["data"]["code"], "BAD_REQUEST");
    assert_eq!(by_id(12)["error"]["code"], -32601, "unknown method");
    assert_eq!(by_id(13)["error"]["data"]["code"], "UNAUTHORIZED");
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}

async fn notifications_are_tracked_without_a_reply(backend: Backend) {
    let server = TestServer::start(backend).await;
    let notification =
        || json!({"jsonrpc": "2.0", "method": "eventIngestion.track", "params": page_view()});
    let response = post(&server.http_url(), notification().to_string(), &[]).await;
    assert!(response.status.is_success(), "{}", response.status);
    assert_eq!(
        response.body,
        Value::Null,
        "a notification gets no reply: {}",
        response.text
    );

    let batch = json!([
        notification(),
        notification(),
        request(1, "eventIngestion.track", Some(page_view()))
    ]);
    let response = post(&server.http_url(), batch.to_string(), &[]).await;
    assert_eq!(
        response.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        response.text
    );

    let only_notifications = json!([notification()]);
    let response = post(&server.http_url(), only_notifications.to_string(), &[]).await;
    assert!(response.status.is_success());
    assert_eq!(response.body, Value::Null, "{}", response.text);

    server.force_flush().await;
    assert_eq!(server.wait_for_count(5, Duration::from_secs(5)).await, 5);
}

async fn protocol_errors_are_reported(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = server.http_url();
    let response = post(&url, "{not json", &[]).await;
    assert_eq!(response.body["error"]["code"], -32700, "{}", response.text);
    let response = post(
        &url,
        request(1, "eventIngestion.unknown", None).to_string(),
        &[],
    )
    .await;
    assert_eq!(response.body["error"]["code"], -32601, "{}", response.text);
    let response = post(&url, json!({"jsonrpc": "2.0", "id": 1}).to_string(), &[]).await;
    assert_eq!(response.body["error"]["code"], -32600, "{}", response.text);
    let response = post(
        &url,
        request(1, "eventIngestion.track", Some(json!("text"))).to_string(),
        &[],
    )
    .await;
    assert!(response.body["error"]["code"].is_i64(), "{}", response.text);
    assert!(response.status.as_u16() < 500);
}

async fn other_paths_are_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = get(&format!("{}/nowhere", server.http_url())).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.body["error"]["code"], -32004);
    assert_eq!(response.body["error"]["data"]["code"], "NOT_FOUND");
    assert_eq!(response.body["error"]["data"]["httpStatus"], 404);

    // A known path with a method it does not take is told so, in the same shape.
    let response = post(
        &format!("{}/healthz", server.http_url()),
        String::new(),
        &[],
    )
    .await;
    assert_eq!(response.status, 405, "{}", response.text);
    assert_eq!(
        response.body["error"]["data"]["code"],
        "METHOD_NOT_SUPPORTED"
    );
    assert_eq!(response.body["error"]["data"]["path"], "/healthz");
}
