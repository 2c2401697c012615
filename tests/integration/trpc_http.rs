//! tRPC's HTTP wire format, byte for byte: what `@trpc/client` relies on.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::raw_http::{get, request};
use crate::support::{ADMIN_TOKEN, Backend, TestServer, page_view};

backend_tests!(
    a_mutation_is_a_post_with_the_raw_input,
    a_query_is_a_get_with_urlencoded_input,
    wrong_methods_paths_and_types_are_refused,
    a_batch_answers_in_order_with_207_when_mixed,
    a_batch_can_stream_json_lines,
    superjson_envelopes_are_answered_in_kind,
    validation_errors_have_the_trpc_shape
);

fn url(server: &TestServer, path: &str) -> String {
    format!("{}/api/trpc/{path}", server.http_url())
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn admin() -> (&'static str, String) {
    ("authorization", format!("Bearer {ADMIN_TOKEN}"))
}

async fn a_mutation_is_a_post_with_the_raw_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = request(
        "POST",
        &url(&server, "eventIngestion.track"),
        &[JSON],
        page_view().to_string(),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body["result"]["data"]["status"], "accepted",
        "{}",
        response.text
    );
    let (name, value) = admin();
    let empty = request(
        "POST",
        &url(&server, "eventIngestion.forceFlush"),
        &[(name, &value)],
        "",
    )
    .await;
    assert_eq!(
        empty.status, 200,
        "an empty body is no input: {}",
        empty.text
    );
    assert_eq!(empty.body["result"]["data"]["persisted"], 1);
    assert_eq!(server.count().await, 1);
}

async fn a_query_is_a_get_with_urlencoded_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (name, value) = admin();
    for query in ["", "?input=%7B%7D"] {
        let response = request(
            "GET",
            &format!("{}{query}", url(&server, "eventIngestion.getStats")),
            &[(name, &value)],
            "",
        )
        .await;
        assert_eq!(response.status, 200, "{query}: {}", response.text);
        assert_eq!(response.body["result"]["data"]["config"]["batchSize"], 100);
    }
    let anonymous = get(&url(&server, "eventIngestion.getStats")).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.body["error"]["code"], -32001);
    assert_eq!(anonymous.body["error"]["data"]["code"], "UNAUTHORIZED");
}

async fn wrong_methods_paths_and_types_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let get_mutation = get(&url(&server, "eventIngestion.track")).await;
    assert_eq!(get_mutation.status, 405);
    assert_eq!(get_mutation.body["error"]["code"], -32005);
    assert_eq!(
        get_mutation.body["error"]["data"]["code"],
        "METHOD_NOT_SUPPORTED"
    );

    let unknown = request("POST", &url(&server, "eventIngestion.nope"), &[JSON], "{}").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["data"]["code"], "NOT_FOUND");
    assert_eq!(unknown.body["error"]["data"]["path"], "eventIngestion.nope");

    let form = request(
        "POST",
        &url(&server, "eventIngestion.track"),
        &[("content-type", "application/x-www-form-urlencoded")],
        "eventType=x",
    )
    .await;
    assert_eq!(form.status, 415);
    assert_eq!(form.body["error"]["data"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    // text/plain is JSON by contract, and only for the tracking procedures.
    let plain_not_json = request(
        "POST",
        &url(&server, "eventIngestion.track"),
        &[("content-type", "text/plain")],
        "eventType=x",
    )
    .await;
    assert_eq!(plain_not_json.status, 400);
    assert_eq!(plain_not_json.body["error"]["data"]["code"], "PARSE_ERROR");
    let plain_admin = request(
        "POST",
        &url(&server, "eventIngestion.forceFlush"),
        &[("content-type", "text/plain;charset=UTF-8")],
        "{}",
    )
    .await;
    assert_eq!(plain_admin.status, 415);

    let malformed = request(
        "POST",
        &url(&server, "eventIngestion.track"),
        &[JSON],
        "{not json",
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["error"]["code"], -32700);
    assert_eq!(malformed.body["error"]["data"]["code"], "PARSE_ERROR");

    let huge = format!(
        r#"{{"eventType":"x","props":{{"b":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let too_large = request("POST", &url(&server, "eventIngestion.track"), &[JSON], huge).await;
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.body["error"]["data"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(server.stats_count_accepted().await, 0);
}

async fn a_batch_answers_in_order_with_207_when_mixed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let path = url(
        &server,
        "eventIngestion.track,eventIngestion.missing,eventIngestion.track?batch=1",
    );
    let body = json!({"0": page_view(), "2": {"eventType": ""}});
    let response = request("POST", &path, &[JSON], body.to_string()).await;
    assert_eq!(response.status, 207, "{}", response.text);
    let items = response.body.as_array().expect("array");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["result"]["data"]["status"], "accepted");
    assert_eq!(items[1]["error"]["data"]["code"], "NOT_FOUND");
    assert_eq!(items[2]["error"]["data"]["code"], "BAD_REQUEST");

    let same = url(&server, "eventIngestion.track,eventIngestion.track?batch=1");
    let body = json!({"0": page_view(), "1": page_view()});
    let response = request("POST", &same, &[JSON], body.to_string()).await;
    assert_eq!(response.status, 200, "all items agree: {}", response.text);
}

async fn a_batch_can_stream_json_lines(backend: Backend) {
    let server = TestServer::start(backend).await;
    let path = url(&server, "eventIngestion.track,eventIngestion.track?batch=1");
    let body = json!({"0": page_view(), "1": {"eventType": ""}});
    let response = request(
        "POST",
        &path,
        &[JSON, ("trpc-accept", "application/jsonl")],
        body.to_string(),
    )
    .await;
    assert_eq!(response.status, 200);
    let lines: Vec<Value> = response
        .text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", response.text);
    assert_eq!(lines[0]["0"][0][0]["result"]["data"]["status"], "accepted");
    assert_eq!(lines[0]["1"][0][0]["error"]["data"]["code"], "BAD_REQUEST");
}

async fn superjson_envelopes_are_answered_in_kind(backend: Backend) {
    let server = TestServer::start(backend).await;
    let body = json!({"json": page_view()});
    let response = request(
        "POST",
        &url(&server, "eventIngestion.track"),
        &[JSON],
        body.to_string(),
    )
    .await;
    assert_eq!(
        response.body["result"]["data"]["json"]["status"], "accepted",
        "{}",
        response.text
    );
    let bad = json!({"json": {"eventType": ""}});
    let response = request(
        "POST",
        &url(&server, "eventIngestion.track"),
        &[JSON],
        bad.to_string(),
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.body["error"]["json"]["data"]["code"], "BAD_REQUEST",
        "{}",
        response.text
    );
    let undefined_input =
        "%7B%22json%22%3Anull%2C%22meta%22%3A%7B%22values%22%3A%5B%22undefined%22%5D%7D%7D";
    let (name, value) = admin();
    let response = request(
        "GET",
        &format!(
            "{}?input={undefined_input}",
            url(&server, "eventIngestion.getStats")
        ),
        &[(name, &value)],
        "",
    )
    .await;
    assert_eq!(
        response.body["result"]["data"]["json"]["bufferSize"], 1,
        "{}",
        response.text
    );
}

async fn validation_errors_have_the_trpc_shape(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = request(
        "POST",
        &url(&server, "eventIngestion.track"),
        &[JSON],
        r#"{"eventType":"x","sessionId":"nope"}"#,
    )
    .await;
    assert_eq!(response.status, 400);
    let error = &response.body["error"];
    assert_eq!(error["code"], -32600);
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("sessionId")
    );
    assert_eq!(error["data"]["code"], "BAD_REQUEST");
    assert_eq!(error["data"]["httpStatus"], 400);
    assert_eq!(error["data"]["path"], "eventIngestion.track");
    assert_eq!(
        error["data"]["zodError"]["fieldErrors"]["sessionId"][0],
        "Invalid uuid"
    );
    assert_eq!(error["data"]["zodError"]["formErrors"], json!([]));
}
