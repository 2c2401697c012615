//! `eventIngestion.getMetrics` over JSON-RPC on both backends, against the hand-counted
//! fixture of `support::metrics_fixture`.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Value, json};
use sluice::domain::Role;

use crate::backend_tests;
use crate::support::metrics_fixture::{self, MetricsFixture};
use crate::support::{Backend, TestServer, assert_error, call, error_data, jwt};

backend_tests!(
    every_figure_of_the_fixture_is_right,
    filters_combine_with_and,
    filter_rules_keep_what_they_say,
    goals_count_visitors_who_reached_them,
    a_range_is_compared_with_the_one_before,
    hourly_buckets_include_the_empty_ones,
    bad_metrics_inputs_are_bad_requests,
    metrics_are_for_admins_only,
    figures_stand_after_compaction_and_after_a_backfill
);

async fn with_fixture(backend: Backend) -> (TestServer, MetricsFixture) {
    metrics_fixture::serve(backend).await
}

async fn metrics(server: &TestServer, input: Value) -> Value {
    server
        .admin_call("eventIngestion.getMetrics", input)
        .await
        .expect("getMetrics")
}

fn item(value: &str, events: u64, visitors: u64) -> Value {
    json!({"value": value, "events": events, "visitors": visitors})
}

async fn every_figure_of_the_fixture_is_right(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let report = metrics(
        &server,
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0)}),
    )
    .await;
    let day = |days| {
        chrono::DateTime::parse_from_rfc3339(&fixture.at(days, 0))
            .expect("time")
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    };
    assert_eq!(report["interval"], "day");
    // Events 1–8; the repeat and the opted-out session are not stored, the crawler (9)
    // only in `botEvents`. Visitors: sessions 1, 2 and 3, and the user (over sessions 5 and
    // 6); the server event has none.
    // Sessions: 1 (two page views 5 min apart), 2 (a page view, then a click 22 h later),
    // and three of one page view each (3, 5, 6): bounces.
    assert_eq!(
        report["totals"],
        json!({"events": 8, "pageviews": 6, "visitors": 4, "sessions": 5, "botEvents": 1,
               "bounceRate": 3.0 / 5.0, "viewsPerVisit": 6.0 / 5.0,
               "visitDurationSeconds": (300.0 + 22.0 * 3600.0) / 5.0})
    );
    let session_page = |value: &str, sessions: u64, visitors: u64| json!({"value": value, "sessions": sessions, "visitors": visitors});
    assert_eq!(
        report["entryPages"],
        json!([session_page("/home", 3, 3), session_page("/docs", 2, 2)])
    );
    // Session 2 ends on its page view: the click is no page.
    assert_eq!(
        report["exitPages"],
        json!([
            session_page("/docs", 2, 2),
            session_page("/home", 2, 2),
            session_page("/pricing", 1, 1)
        ])
    );
    assert_eq!(
        report["series"],
        json!([
            {"t": day(0), "events": 3, "visitors": 2},
            {"t": day(1), "events": 2, "visitors": 2},
            {"t": day(2), "events": 3, "visitors": 1},
        ])
    );
    assert_eq!(
        report["topPages"],
        json!([
            item("/home", 3, 3),
            item("/docs", 2, 2),
            item("/pricing", 2, 2)
        ])
    );
    assert_eq!(
        report["topReferrers"],
        json!([
            item("duckduckgo.com", 1, 1),
            item("news.ycombinator.com", 1, 1)
        ])
    );
    assert_eq!(
        report["topUtmSources"],
        json!([item("google", 1, 1), item("newsletter", 1, 1)])
    );
    assert_eq!(
        report["topCountries"],
        json!([item("DE", 4, 2), item("US", 2, 1), item("FR", 1, 1)])
    );
    assert_eq!(
        report["devices"],
        json!([
            item("desktop", 4, 2),
            item("mobile", 2, 1),
            item("tablet", 1, 1)
        ])
    );
    assert_eq!(
        report["browsers"],
        json!([item("Chrome", 5, 3), item("Mobile Safari", 2, 1)])
    );
    assert_eq!(
        report["eventTypes"],
        json!([
            item("page_viewed", 6, 4),
            item("signup_clicked", 1, 1),
            item("report_exported", 1, 0)
        ])
    );
    let limited = metrics(
        &server,
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "limit": 1}),
    )
    .await;
    assert_eq!(limited["topPages"], json!([item("/home", 3, 3)]));
    assert_eq!(
        limited["totals"], report["totals"],
        "limit trims lists only"
    );
}

async fn filters_combine_with_and(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let range = |extra: Value| {
        let mut input = json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0)});
        if let (Value::Object(input), Value::Object(extra)) = (&mut input, extra) {
            input.extend(extra);
        }
        input
    };
    let germany = metrics(&server, range(json!({"filters": {"country": "DE"}}))).await;
    assert_eq!(
        germany["totals"],
        json!({"events": 4, "pageviews": 4, "visitors": 2, "sessions": 3, "botEvents": 1,
               "bounceRate": 2.0 / 3.0, "viewsPerVisit": 4.0 / 3.0,
               "visitDurationSeconds": 100.0})
    );
    assert_eq!(germany["topCountries"], json!([item("DE", 4, 2)]));
    let home_in_germany = metrics(
        &server,
        range(json!({"filters": {"country": "DE", "path": "/home"}})),
    )
    .await;
    assert_eq!(
        home_in_germany["totals"],
        json!({"events": 2, "pageviews": 2, "visitors": 2, "sessions": 2, "botEvents": 1,
               "bounceRate": 1.0, "viewsPerVisit": 1.0, "visitDurationSeconds": 0.0})
    );
    let mobile_views = metrics(
        &server,
        range(json!({"eventType": "page_viewed", "filters": {"deviceType": "mobile"}})),
    )
    .await;
    assert_eq!(mobile_views["totals"]["events"], 1);
    assert_eq!(
        mobile_views["totals"]["botEvents"], 0,
        "the crawler is no phone"
    );
    assert_eq!(mobile_views["topPages"], json!([item("/home", 1, 1)]));
    let from_newsletter = metrics(
        &server,
        range(json!({"filters": {"utmSource": "newsletter", "referrerHost": "duckduckgo.com"}})),
    )
    .await;
    assert_eq!(from_newsletter["totals"]["events"], 0, "no event has both");
    assert_eq!(from_newsletter["series"].as_array().map(Vec::len), Some(3));
}

async fn filter_rules_keep_what_they_say(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let events = |filters: Value| {
        let server = &server;
        let input = json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "filters": filters});
        async move { metrics(server, input).await["totals"]["events"].clone() }
    };
    // Not Germany: the two US events, the French one, and the server event without country.
    assert_eq!(events(json!({"country": {"isNot": ["DE"]}})).await, 4);
    // The page view of /pricing and the click on it.
    assert_eq!(events(json!({"path": {"contains": "ric"}})).await, 2);
    assert_eq!(
        events(json!({"eventType": {"is": ["signup_clicked", "report_exported"]}})).await,
        2
    );
    assert_eq!(events(json!({"browserName": "Mobile Safari"})).await, 2);
    assert_eq!(
        events(
            json!({"country": {"is": ["DE", "FR"], "isNot": ["FR"]}, "eventType": "page_viewed"})
        )
        .await,
        4,
        "the parts of a rule and the filters all hold"
    );
    assert_eq!(
        events(json!({"browserName": {"contains": "Opera"}})).await,
        0
    );
}

async fn goals_count_visitors_who_reached_them(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let report = metrics(
        &server,
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "goals": [
            {"name": "Signed up", "eventType": "signup_clicked"},
            {"name": "Read the docs", "path": "/doc*"},
            {"name": "Saw pricing", "eventType": "page_viewed", "path": "/pricing"},
            {"name": "Nobody", "path": "/careers"}
        ]}),
    )
    .await;
    let goal = |name: &str, events: u64, visitors: u64, rate: f64| json!({"name": name, "events": events, "visitors": visitors, "conversionRate": rate});
    // Four visitors in all; the docs were read in session 3 and by the signed-in user.
    assert_eq!(
        report["goals"],
        json!([
            goal("Signed up", 1, 1, 0.25),
            goal("Read the docs", 2, 2, 0.5),
            goal("Saw pricing", 1, 1, 0.25),
            goal("Nobody", 0, 0, 0.0)
        ])
    );
    let without = metrics(
        &server,
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0)}),
    )
    .await;
    assert!(
        without.get("goals").is_none(),
        "no goals asked, none answered"
    );
    assert!(without.get("comparison").is_none());
}

async fn a_range_is_compared_with_the_one_before(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let report = metrics(
        &server,
        json!({"from": fixture.at(1, 0), "to": fixture.at(3, 0), "interval": "day",
               "compare": "previousPeriod"}),
    )
    .await;
    assert_eq!(report["totals"]["events"], 5, "days 1 and 2");
    let comparison = &report["comparison"];
    let day = |days| {
        chrono::DateTime::parse_from_rfc3339(&fixture.at(days, 0))
            .expect("time")
            .with_timezone(&Utc)
    };
    let parsed = |field: &str| {
        comparison[field]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .expect("time")
    };
    assert_eq!((parsed("from"), parsed("to")), (day(-1), day(1)));
    // Day 0: session 1's two page views and session 2's first.
    assert_eq!(comparison["totals"]["events"], 3);
    assert_eq!(comparison["totals"]["visitors"], 2);
    assert_eq!(comparison["totals"]["sessions"], 2);
    let series: Vec<u64> = comparison["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|point| point["events"].as_u64())
        .collect();
    assert_eq!(series, [0, 3]);
    let a_year_before = metrics(
        &server,
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "compare": "previousYear"}),
    )
    .await;
    assert_eq!(a_year_before["comparison"]["totals"]["events"], 0);
    assert_eq!(a_year_before["totals"]["events"], 8);
}

async fn hourly_buckets_include_the_empty_ones(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    let report = metrics(
        &server,
        json!({"from": fixture.at(0, 9), "to": fixture.at(0, 13)}),
    )
    .await;
    assert_eq!(report["interval"], "hour");
    let counts: Vec<(u64, u64)> = report["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|point| {
            (
                point["events"].as_u64().unwrap_or(u64::MAX),
                point["visitors"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    assert_eq!(counts, [(0, 0), (2, 1), (1, 1), (0, 0)]);
    // `from` is inclusive and `to` exclusive, to the minute.
    let edge = metrics(
        &server,
        json!({"from": fixture.at_minute(0, 10, 15), "to": fixture.at_minute(0, 10, 20)}),
    )
    .await;
    assert_eq!(edge["totals"]["events"], 1);
    // Weeks start on Monday 00:00 UTC, months on the first: every event in one bucket.
    for (interval, starts_a_bucket) in [
        (
            "week",
            (|t| t.weekday() == chrono::Weekday::Mon) as fn(&DateTime<Utc>) -> bool,
        ),
        ("month", |t| t.day() == 1),
    ] {
        let report = metrics(
            &server,
            json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "interval": interval}),
        )
        .await;
        assert_eq!(report["interval"], interval);
        let series = report["series"].as_array().expect("series");
        assert!((1..=2).contains(&series.len()), "{report}");
        let events: u64 = series
            .iter()
            .filter_map(|point| point["events"].as_u64())
            .sum();
        assert_eq!(events, 8, "{report}");
        for point in series {
            let t: DateTime<Utc> = point["t"].as_str().and_then(|t| t.parse().ok()).expect("t");
            assert!(
                starts_a_bucket(&t) && t.time() == chrono::NaiveTime::MIN,
                "{report}"
            );
        }
    }
}

async fn bad_metrics_inputs_are_bad_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (input, field) in [
        (json!({"from": "last tuesday"}), "from"),
        (json!({"to": "2026-13-01T00:00:00Z"}), "to"),
        (
            json!({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
            "from",
        ),
        (
            json!({"from": "2024-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
            "to",
        ),
        (json!({"interval": "minute"}), "interval"),
        (json!({"limit": 0}), "limit"),
        (json!({"limit": 1000}), "limit"),
        (json!({"filters": {"city": "Berlin"}}), "filters"),
        (json!({"filters": {"country": {}}}), "filters"),
        (
            json!({"filters": {"country": {"isnt": ["DE"]}}}),
            "filters.country",
        ),
        (json!({"filters": {"country": 7}}), "filters.country"),
        (json!({"compare": "lastWeek"}), "compare"),
        (json!({"goals": [{"name": "Everything"}]}), "goals"),
        (
            json!({"goals": [{"name": "", "eventType": "signup"}]}),
            "goals",
        ),
        (
            json!({"goals": (0..21).map(|n| json!({"name": n.to_string(), "path": "/"})).collect::<Vec<_>>()}),
            "goals",
        ),
    ] {
        let error = server
            .admin_call("eventIngestion.getMetrics", input.clone())
            .await
            .expect_err("invalid");
        assert_error(&error, "BAD_REQUEST", -32600);
        let data = error_data(&error);
        assert_eq!(data["httpStatus"], 400);
        assert!(
            data["zodError"]["fieldErrors"][field].is_array(),
            "{input} → {data}"
        );
    }
}

async fn metrics_are_for_admins_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let error = server
        .call("eventIngestion.getMetrics", json!({}))
        .await
        .expect_err("anonymous");
    assert_error(&error, "UNAUTHORIZED", -32001);
    let viewer =
        server.client_with_authorization(&format!("Bearer {}", jwt("someone", Role::Viewer)));
    let error = call(&viewer, "eventIngestion.getMetrics", json!({}))
        .await
        .expect_err("viewer");
    assert_error(&error, "FORBIDDEN", -32003);
    let empty = server
        .admin_call("eventIngestion.getMetrics", json!({}))
        .await
        .expect("an empty store answers");
    assert_eq!(
        empty["totals"],
        json!({"events": 0, "pageviews": 0, "visitors": 0, "sessions": 0, "botEvents": 0,
               "bounceRate": 0.0, "viewsPerVisit": 0.0, "visitDurationSeconds": 0.0})
    );
    assert_eq!(
        empty["series"].as_array().map(Vec::len),
        Some(8),
        "7 days from mid-day"
    );
}

/// The fixture's figures come from the metric segments its batches wrote; merged by the
/// compactor, or rebuilt from the events as for a database that held events before segments
/// existed, they are the same.
async fn figures_stand_after_compaction_and_after_a_backfill(backend: Backend) {
    let (server, fixture) = with_fixture(backend).await;
    // Two more batches into one hour: three segments there.
    for minute in [10, 20] {
        server
            .track(json!({"eventType": "page_viewed", "sessionId": uuid::Uuid::now_v7(),
                          "props": {"path": "/late", "occurred_at": fixture.at_minute(1, 5, minute)}}))
            .await;
        server.force_flush().await;
    }
    let inputs = [
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0)}),
        json!({"from": fixture.at(0, 0), "to": fixture.at(3, 0), "filters": {"country": "DE"}}),
        json!({"from": fixture.at(1, 0), "to": fixture.at(2, 0), "interval": "hour"}),
    ];
    let mut expected = Vec::new();
    for input in &inputs {
        expected.push(metrics(&server, input.clone()).await);
    }
    let store = server.store();
    let written = store.count_rows("metric_segments").await.expect("count");
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    store.compact_metric_segments(later).await.expect("compact");
    let compacted = store.count_rows("metric_segments").await.expect("count");
    assert!(compacted < written, "{compacted} of {written} segments");
    for (input, expected) in inputs.iter().zip(&expected) {
        assert_eq!(&metrics(&server, input.clone()).await, expected, "{input}");
    }

    // The state the segments migration leaves on a database with events: no segments, and
    // the marker that asks for a backfill.
    let reset = "DELETE FROM metric_segments; \
                 INSERT INTO metric_segments_backfill (pending) VALUES (TRUE);";
    server.execute_sql(reset, reset).await;
    assert_eq!(store.count_rows("metric_segments").await.expect("count"), 0);
    assert_eq!(store.run_migrations().await.expect("migrate"), 0);
    assert!(store.count_rows("metric_segments").await.expect("count") > 0);
    for (input, expected) in inputs.iter().zip(&expected) {
        assert_eq!(&metrics(&server, input.clone()).await, expected, "{input}");
    }
    // The marker is gone: a second start encodes nothing again.
    let segments = store.count_rows("metric_segments").await.expect("count");
    store.run_migrations().await.expect("migrate");
    assert_eq!(
        store.count_rows("metric_segments").await.expect("count"),
        segments
    );
}
