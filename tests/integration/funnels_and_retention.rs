//! `eventIngestion.getFunnel` and `eventIngestion.getRetention` over JSON-RPC on every
//! backend, against the hand-counted fixture of `support::metrics_fixture`.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::metrics_fixture::{self, MetricsFixture};
use crate::support::{Backend, TestServer, assert_error, error_data};

backend_tests!(
    funnels_count_steps_in_order,
    retention_counts_who_came_back,
    bad_funnel_and_retention_inputs_are_bad_requests
);

async fn with_fixture(backend: Backend) -> (TestServer, MetricsFixture) {
    metrics_fixture::serve(backend).await
}

async fn report(server: &TestServer, method: &str, input: Value) -> Value {
    server.admin_call(method, input).await.expect(method)
}

fn visitors_and_drop_offs(funnel: &Value) -> Vec<(u64, u64)> {
    funnel["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            (
                step["visitors"].as_u64().unwrap_or(u64::MAX),
                step["dropOff"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

async fn funnels_count_steps_in_order(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let range = |steps: Value, within: &str| json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "steps": steps, "within": within});
    // /home then a page view of /pricing: sessions 1, 2 and 5 start; only session 1 goes on
    // (session 2's /pricing is a click, not a page view).
    let pricing = json!([{"path": "/home"}, {"eventType": "page_viewed", "path": "/pricing"}]);
    let funnel = report(
        &server,
        "eventIngestion.getFunnel",
        range(pricing, "session"),
    )
    .await;
    assert_eq!(visitors_and_drop_offs(&funnel), [(3, 0), (1, 2)]);
    assert_eq!(funnel["conversionRate"], 1.0 / 3.0);
    assert_eq!(funnel["steps"][1]["conversionRate"], 1.0 / 3.0);
    assert_eq!(funnel["steps"][1]["index"], 2);
    assert_eq!(funnel["steps"][1]["path"], "/pricing");
    // /home then /docs: the signed-in user did both, but in two sessions.
    let docs = json!([{"path": "/home"}, {"path": "/doc*"}]);
    let in_a_session = report(
        &server,
        "eventIngestion.getFunnel",
        range(docs.clone(), "session"),
    )
    .await;
    assert_eq!(visitors_and_drop_offs(&in_a_session), [(3, 0), (0, 3)]);
    assert_eq!(in_a_session["conversionRate"], 0.0);
    let by_visitor = report(&server, "eventIngestion.getFunnel", range(docs, "visitor")).await;
    assert_eq!(visitors_and_drop_offs(&by_visitor), [(3, 0), (1, 2)]);
    // In time order: nobody viewed /pricing before /home.
    let backwards = json!([{"eventType": "page_viewed", "path": "/pricing"}, {"path": "/home"}]);
    let backwards = report(
        &server,
        "eventIngestion.getFunnel",
        range(backwards, "visitor"),
    )
    .await;
    assert_eq!(visitors_and_drop_offs(&backwards), [(1, 0), (0, 1)]);
}

async fn retention_counts_who_came_back(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let retention = report(
        &server,
        "eventIngestion.getRetention",
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "period": "day"}),
    )
    .await;
    assert_eq!(retention["period"], "day");
    let cohorts: Vec<(u64, Value)> = retention["cohorts"]
        .as_array()
        .expect("cohorts")
        .iter()
        .map(|cohort| {
            (
                cohort["visitors"].as_u64().unwrap_or(u64::MAX),
                cohort["retained"].clone(),
            )
        })
        .collect();
    // Day 0: sessions 1 and 2, and session 2 came back on day 1. Day 1: session 3. Day 2:
    // the signed-in user. The server event has no visitor; the crawler does not count.
    assert_eq!(
        cohorts,
        [(2, json!([2, 1, 0])), (1, json!([1, 0])), (1, json!([1]))]
    );
    let weekly = report(
        &server,
        "eventIngestion.getRetention",
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0)}),
    )
    .await;
    assert_eq!(weekly["period"], "week");
    let first_visits: u64 = weekly["cohorts"]
        .as_array()
        .expect("cohorts")
        .iter()
        .filter_map(|cohort| cohort["visitors"].as_u64())
        .sum();
    assert_eq!(first_visits, 4, "every visitor in exactly one cohort");
    let germany = report(
        &server,
        "eventIngestion.getRetention",
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "period": "day",
               "filters": {"country": "DE"}}),
    )
    .await;
    assert_eq!(germany["cohorts"][0]["retained"], json!([1, 0, 0]));
    assert_eq!(germany["cohorts"][2]["retained"], json!([1]));
}

async fn bad_funnel_and_retention_inputs_are_bad_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (method, input, field) in [
        (
            "eventIngestion.getFunnel",
            json!({"steps": [{"path": "/"}]}),
            "steps",
        ),
        (
            "eventIngestion.getFunnel",
            json!({"steps": [{"path": "/"}, {}]}),
            "steps",
        ),
        (
            "eventIngestion.getFunnel",
            json!({"steps": [{"path": "/"}, {"path": "/b"}], "within": "day"}),
            "within",
        ),
        (
            "eventIngestion.getFunnel",
            json!({"steps": (0..9).map(|n| json!({"path": format!("/{n}")})).collect::<Vec<_>>()}),
            "steps",
        ),
        (
            "eventIngestion.getRetention",
            json!({"period": "month"}),
            "period",
        ),
        (
            "eventIngestion.getRetention",
            json!({"from": "soon"}),
            "from",
        ),
    ] {
        let error = server
            .admin_call(method, input.clone())
            .await
            .expect_err("invalid");
        assert_error(&error, "BAD_REQUEST", -32600);
        assert!(
            error_data(&error)["zodError"]["fieldErrors"][field].is_array(),
            "{method} {input} → {}",
            error_data(&error)
        );
    }
    let anonymous = server
        .call("eventIngestion.getRetention", json!({}))
        .await
        .expect_err("anonymous");
    assert_error(&anonymous, "UNAUTHORIZED", -32001);
}
