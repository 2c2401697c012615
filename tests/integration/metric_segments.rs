//! Metric segments, on every store: the figures `getMetrics` gives are those of the events
//! written, counted exactly, and they stay the same when compaction merges segments (also
//! two compactions at once), and when retention deletes and trims them.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sluice::domain::{
    EventRecord, FilterValue, Interval, MetricsFilters, MetricsQuery, MetricsReport, Props,
    test_support,
};
use sluice::storage::EventStore;
use uuid::Uuid;

use crate::store_tests;

store_tests!(
    reports_count_exactly_what_was_written,
    compaction_merges_segments_and_keeps_every_figure,
    concurrent_compactions_merge_each_segment_once,
    retention_trims_the_hour_its_cutoff_falls_in,
);

fn hour(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
        .single()
        .expect("time")
        + Duration::hours(n)
}

/// Event `n` of a deterministic mix: 3 hours, 30 sessions (a third signed in, users shared
/// between sessions), 11 pages (a signed-in visitor sees all of them: more than the values a
/// visitor keeps inline, so exact counting goes through the overflow set too), 3 countries,
/// two event types.
fn event(n: u32) -> EventRecord {
    let mut event = test_support::event(if n.is_multiple_of(3) {
        "clicked"
    } else {
        "page_viewed"
    });
    event.occurred_at = hour(i64::from(n % 3)) + Duration::seconds(i64::from(n * 7 % 3_600));
    event.session_id = Some(Uuid::from_u128(u128::from(n % 30) + 1));
    event.user_id = (n % 30 < 10).then(|| format!("user-{}", n % 5));
    event.props = Some(Props::from_json_text(format!(
        r#"{{"path":"/page/{}"}}"#,
        n % 11
    )));
    event.enrichment.country = Some(["DE", "FR", "US"][(n % 3) as usize].into());
    event.dedup_fingerprint = Some(format!("segments-{n}"));
    event
}

/// The events, written in batches of 8: many segments per hour.
async fn write(store: &Arc<dyn EventStore>, events: &[EventRecord]) {
    for batch in events.chunks(8) {
        store.insert_events(batch).await.expect("write");
    }
}

fn whole_range() -> MetricsQuery {
    MetricsQuery {
        from: hour(0),
        to: hour(3),
        interval: Interval::Hour,
        event_type: None,
        filters: MetricsFilters::default(),
        limit: 100,
        compare: None,
        goals: Vec::new(),
    }
}

async fn report(store: &Arc<dyn EventStore>, query: &MetricsQuery) -> MetricsReport {
    store.report(query).await.expect("metrics")
}

async fn segments(store: &Arc<dyn EventStore>) -> i64 {
    store.count_rows("metric_segments").await.expect("count")
}

fn visitor(event: &EventRecord) -> String {
    match (&event.user_id, event.session_id) {
        (Some(user), _) => format!("u:{user}"),
        (None, Some(session)) => format!("s:{session}"),
        (None, None) => unreachable!("every event here has a session"),
    }
}

async fn reports_count_exactly_what_was_written(store: Arc<dyn EventStore>) {
    let events: Vec<EventRecord> = (0..300).map(event).collect();
    write(&store, &events).await;
    // A repeat of a written event is not written, nor counted.
    store.insert_events(&events[..5]).await.expect("repeat");
    let got = report(&store, &whole_range()).await;
    let visitors: HashSet<String> = events.iter().map(visitor).collect();
    let sessions: HashSet<Uuid> = events.iter().filter_map(|event| event.session_id).collect();
    assert_eq!(got.totals.events, 300);
    assert_eq!(got.totals.pageviews, 200);
    assert_eq!(got.totals.visitors, visitors.len() as u64);
    assert_eq!(got.totals.sessions, sessions.len() as u64);
    for (n, point) in got.series.iter().enumerate() {
        let in_hour: Vec<&EventRecord> = events
            .iter()
            .filter(|event| {
                event.occurred_at >= hour(n as i64) && event.occurred_at < hour(n as i64 + 1)
            })
            .collect();
        let visitors: HashSet<String> = in_hour.iter().map(|event| visitor(event)).collect();
        assert_eq!(point.events, in_hour.len() as u64, "hour {n}");
        assert_eq!(point.visitors, visitors.len() as u64, "hour {n}");
    }
    let page = |item: &sluice::domain::TopItem| {
        let of_page: Vec<&EventRecord> = events
            .iter()
            .filter(|event| event.page_path().as_deref() == Some(item.value.as_str()))
            .collect();
        let visitors: HashSet<String> = of_page.iter().map(|event| visitor(event)).collect();
        (of_page.len() as u64, visitors.len() as u64)
    };
    assert_eq!(got.top_pages.len(), 11);
    for item in &got.top_pages {
        assert_eq!((item.events, item.visitors), page(item), "{}", item.value);
    }
    assert_eq!(got.top_countries.len(), 3);
    for item in &got.top_countries {
        let of_country: Vec<&EventRecord> = events
            .iter()
            .filter(|event| event.enrichment.country.as_deref() == Some(item.value.as_str()))
            .collect();
        let visitors: HashSet<String> = of_country.iter().map(|event| visitor(event)).collect();
        assert_eq!(
            (item.events, item.visitors),
            (of_country.len() as u64, visitors.len() as u64),
            "{}",
            item.value
        );
    }
    // A part of an hour counts only its events.
    let part = MetricsQuery {
        from: hour(1) + Duration::minutes(10),
        to: hour(1) + Duration::minutes(20),
        ..whole_range()
    };
    let expected = events
        .iter()
        .filter(|event| event.occurred_at >= part.from && event.occurred_at < part.to)
        .count();
    assert_eq!(report(&store, &part).await.totals.events, expected as u64);
}

async fn compaction_merges_segments_and_keeps_every_figure(store: Arc<dyn EventStore>) {
    let events: Vec<EventRecord> = (0..600).map(event).collect();
    write(&store, &events).await;
    let queries = [
        whole_range(),
        MetricsQuery {
            filters: MetricsFilters {
                country: Some(FilterValue::Equals("DE".into())),
                ..MetricsFilters::default()
            },
            ..whole_range()
        },
        MetricsQuery {
            interval: Interval::Day,
            event_type: Some("page_viewed".into()),
            ..whole_range()
        },
    ];
    let mut before = Vec::new();
    for query in &queries {
        before.push(report(&store, query).await);
    }
    let written = segments(&store).await;
    assert!(written >= 75, "one segment per batch and hour: {written}");

    // Hours 0 and 1 have closed; hour 2 is still open: merged four of a size at a time.
    let now = hour(2) + Duration::minutes(30);
    let compacted = store.compact_metric_segments(now).await.expect("compact");
    assert!(compacted.merged > 0);
    let after_first = segments(&store).await;
    assert!(after_first < written, "{after_first} of {written}");
    for (query, expected) in queries.iter().zip(&before) {
        assert_eq!(&report(&store, query).await, expected);
    }
    // Once every hour has closed, one segment each.
    let later = hour(4);
    store.compact_metric_segments(later).await.expect("compact");
    assert_eq!(segments(&store).await, 3);
    for (query, expected) in queries.iter().zip(&before) {
        assert_eq!(&report(&store, query).await, expected);
    }
    let idle = store.compact_metric_segments(later).await.expect("compact");
    assert_eq!(idle.merged, 0, "nothing left to merge");
}

async fn concurrent_compactions_merge_each_segment_once(store: Arc<dyn EventStore>) {
    let events: Vec<EventRecord> = (0..400).map(event).collect();
    write(&store, &events).await;
    let before = report(&store, &whole_range()).await;
    let later = hour(4);
    let (first, second) = tokio::join!(
        store.compact_metric_segments(later),
        store.compact_metric_segments(later)
    );
    first.expect("compact");
    second.expect("compact");
    store.compact_metric_segments(later).await.expect("compact");
    assert_eq!(segments(&store).await, 3);
    assert_eq!(report(&store, &whole_range()).await, before);
}

async fn retention_trims_the_hour_its_cutoff_falls_in(store: Arc<dyn EventStore>) {
    let at = |minutes: i64| hour(0) + Duration::minutes(minutes);
    let events: Vec<EventRecord> = [10, 50, 65, 80, 130]
        .into_iter()
        .enumerate()
        .map(|(n, minutes)| {
            let mut event = event(n as u32);
            event.occurred_at = at(minutes);
            event
        })
        .collect();
    write(&store, &events).await;
    let cutoff = at(70);
    let swept = sluice::pipeline::retention::sweep(store.as_ref(), cutoff)
        .await
        .expect("sweep");
    assert_eq!(swept.events, 3);
    assert_eq!(swept.segments, 1, "hour 0 is wholly before the cutoff");
    assert!(
        swept.trimmed,
        "of hour 1, the event at 01:05 goes, the one at 01:20 stays"
    );
    let got = report(&store, &whole_range()).await;
    assert_eq!(got.totals.events, 2);
    assert_eq!(
        got.series
            .iter()
            .map(|point| point.events)
            .collect::<Vec<_>>(),
        vec![0, 1, 1]
    );
    let again = sluice::pipeline::retention::sweep(store.as_ref(), cutoff)
        .await
        .expect("sweep");
    assert!(!again.trimmed, "nothing left to trim");
    assert_eq!(report(&store, &whole_range()).await, got);
}
