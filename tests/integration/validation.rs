//! Every validation rule of the README's "API" section, from one table, through one real
//! server per backend: the exact error code (BAD_REQUEST, -32600) and the field it names,
//! and nothing stored.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::{Backend, TestServer, assert_error, error_data};

backend_tests!(
    every_rule_is_enforced,
    edge_values_are_accepted,
    missing_input_is_a_form_error
);

/// Every rule: its name, an input that breaks it, and the field its error names (empty for
/// a form error).
fn rules() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "event_type_is_required",
            json!({"source": "web"}),
            "eventType",
        ),
        (
            "event_type_must_not_be_empty",
            json!({"eventType": ""}),
            "eventType",
        ),
        (
            "event_type_is_at_most_100_characters",
            json!({"eventType": "x".repeat(101)}),
            "eventType",
        ),
        (
            "event_type_must_be_a_string",
            json!({"eventType": 42}),
            "eventType",
        ),
        (
            "source_must_be_a_known_source",
            json!({"eventType": "x", "source": "fax"}),
            "source",
        ),
        (
            "entity_id_must_be_a_cuid",
            json!({"eventType": "x", "entityId": "not a cuid!", "entityType": "asset"}),
            "entityId",
        ),
        (
            "entity_type_must_be_known",
            json!({"eventType": "x", "entityId": "cjld2cjxh0000qzrmn831i7rn", "entityType": "planet"}),
            "entityType",
        ),
        (
            "entity_type_is_required_with_entity_id",
            json!({"eventType": "x", "entityId": "cjld2cjxh0000qzrmn831i7rn"}),
            "entityType",
        ),
        (
            "session_id_must_be_a_uuid",
            json!({"eventType": "x", "sessionId": "abc"}),
            "sessionId",
        ),
        (
            "idempotency_key_must_be_a_uuid",
            json!({"eventType": "x", "idempotencyKey": "123"}),
            "idempotencyKey",
        ),
        (
            "props_must_be_an_object",
            json!({"eventType": "x", "props": [1, 2]}),
            "props",
        ),
        (
            "props_are_at_most_32_kib",
            json!({"eventType": "x", "props": {"blob": "x".repeat(33 * 1024)}}),
            "props",
        ),
        (
            "utm_fields_are_at_most_255_characters",
            json!({"eventType": "x", "attribution": {"utmCampaign": "c".repeat(256)}}),
            "attribution.utmCampaign",
        ),
        (
            "referrer_must_be_a_url",
            json!({"eventType": "x", "attribution": {"referrer": "not a url"}}),
            "attribution.referrer",
        ),
        (
            "landing_page_must_be_a_url",
            json!({"eventType": "x", "attribution": {"landingPage": "/relative"}}),
            "attribution.landingPage",
        ),
        (
            "unknown_attribution_fields_are_rejected",
            json!({"eventType": "x", "attribution": {"gclid": "1"}}),
            "attribution",
        ),
        (
            "unknown_fields_are_rejected",
            json!({"eventType": "x", "userId": "spoofed"}),
            "",
        ),
        (
            "occurred_at_must_be_rfc3339",
            json!({"eventType": "x", "props": {"occurred_at": "yesterday"}}),
            "props.occurred_at",
        ),
        (
            "occurred_at_at_most_5_minutes_ahead",
            json!({"eventType": "x", "props": {"occurred_at": (Utc::now() + Duration::minutes(6)).to_rfc3339()}}),
            "props.occurred_at",
        ),
        (
            "occurred_at_at_most_30_days_old",
            json!({"eventType": "x", "props": {"occurred_at": hours_ago(31 * 24)}}),
            "props.occurred_at",
        ),
        (
            "asset_viewed_requires_view_duration",
            json!({"eventType": "asset_viewed", "props": {}}),
            "props.view_duration_ms",
        ),
        (
            "license_signed_requires_license_id",
            json!({"eventType": "license_signed"}),
            "props.license_id",
        ),
        (
            "payout_completed_requires_amount",
            json!({"eventType": "payout_completed", "props": {"payment_method": "card"}}),
            "props.amount_cents",
        ),
        (
            "payout_completed_requires_payment_method",
            json!({"eventType": "payout_completed", "props": {"amount_cents": 100}}),
            "props.payment_method",
        ),
        (
            "post_viewed_requires_post_id",
            json!({"eventType": "post_viewed", "props": {"other": 1}}),
            "props.post_id",
        ),
        (
            "post_cta_clicked_requires_cta_type",
            json!({"eventType": "post_cta_clicked", "props": {"cta_url": "https://x.io"}}),
            "props.cta_type",
        ),
        (
            "post_cta_clicked_requires_cta_url",
            json!({"eventType": "post_cta_clicked", "props": {"cta_type": "buy"}}),
            "props.cta_url",
        ),
        (
            "nul_characters_are_rejected_in_event_type",
            json!({"eventType": "bad\u{0}type"}),
            "eventType",
        ),
        (
            "nul_characters_are_rejected_in_props",
            json!({"eventType": "x", "props": {"k": ["ok", "b\u{0}d"]}}),
            "props",
        ),
    ]
}

/// One server per backend, every rule through it: BAD_REQUEST naming the field, counted as
/// rejected, and nothing stored.
async fn every_rule_is_enforced(backend: Backend) {
    let server = TestServer::start(backend).await;
    let rules = rules();
    for (rule, input, field) in &rules {
        assert_rejected(&server, rule, input, field).await;
    }
    server.force_flush().await;
    assert_eq!(server.count().await, 0);
    assert_eq!(
        server.stats().await["counters"]["rejected"],
        rules.len() as u64
    );
}

/// Tracks `input`, expects BAD_REQUEST naming `field` (or a form error when `field` is "").
async fn assert_rejected(server: &TestServer, rule: &str, input: &Value, field: &str) {
    let error = server
        .call("eventIngestion.track", input.clone())
        .await
        .expect_err(rule);
    assert_error(&error, "BAD_REQUEST", -32600);
    let data = error_data(&error);
    assert_eq!(data["httpStatus"], 400, "{rule}");
    assert_eq!(data["path"], "eventIngestion.track", "{rule}");
    let zod = &data["zodError"];
    if field.is_empty() {
        assert!(
            !zod["formErrors"].as_array().expect("formErrors").is_empty(),
            "{rule}: expected a form error for {input}: {data}"
        );
    } else {
        let messages = zod["fieldErrors"][field].as_array();
        assert!(
            messages.is_some_and(|m| !m.is_empty()),
            "{rule}: expected a field error on {field} for {input}: {data}"
        );
        assert!(
            error.message().contains(field),
            "{rule}: the message names the field: {}",
            error.message()
        );
    }
}

fn hours_ago(hours: i64) -> String {
    (Utc::now() - Duration::hours(hours)).to_rfc3339()
}

/// The boundaries themselves pass: 100-character type, empty URL fields, exactly 32 KiB of
/// props, an occurred_at just inside both ends of the window, required props present.
async fn edge_values_are_accepted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let padding = 32 * 1024 - r#"{"p":""}"#.len();
    let inputs = [
        json!({"eventType": "x".repeat(100)}),
        json!({"eventType": "x", "attribution": {"referrer": "", "landingPage": ""}}),
        json!({"eventType": "x", "props": {"p": "y".repeat(padding)}}),
        json!({"eventType": "x", "props": {"occurred_at": (Utc::now() + Duration::minutes(4)).to_rfc3339()}}),
        json!({"eventType": "x", "props": {"occurred_at": hours_ago(29 * 24)}}),
        json!({"eventType": "asset_viewed", "props": {"view_duration_ms": 0}}),
        json!({"eventType": "x", "entityId": "tz4a98xxat96iws9zmbrgj3a", "entityType": "post"}),
    ];
    for input in inputs {
        server.track(input).await;
    }
    server.force_flush().await;
    assert_eq!(server.count().await, 7);
}

async fn missing_input_is_a_form_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    let send = |params: &str| {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eventIngestion.track"{params}}}"#);
        let url = server.http_url();
        async move { crate::support::raw_http::post(&url, body, &[]).await }
    };
    let response = send(r#","params":{}"#).await;
    let error = &response.body["error"];
    assert_eq!(error["code"], -32600, "{}", response.text);
    assert_eq!(
        error["data"]["zodError"]["fieldErrors"]["eventType"][0],
        "Required"
    );
    for no_input in ["", r#","params":[]"#, r#","params":null"#] {
        let response = send(no_input).await;
        let error = &response.body["error"];
        assert_eq!(error["code"], -32600, "{}", response.text);
        assert_eq!(error["data"]["zodError"]["formErrors"][0], "Required");
    }
}
