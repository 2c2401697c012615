//! Retention (`SLUICE_RETENTION_DAYS`): events older than the setting and the sessions last
//! seen before it are deleted in batches, on both backends, while writes go on.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::backend_tests;
use crate::support::{Backend, TestServer};

backend_tests!(old_events_and_sessions_are_deleted_while_writes_go_on);

/// More than two delete batches' worth.
const OLD_EVENTS: usize = 2 * sluice::pipeline::retention::DELETE_BATCH + 150;

async fn old_events_and_sessions_are_deleted_while_writes_go_on(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.pipeline.retention_days = Some(2);
        config.pipeline.retention_interval_seconds = 1;
    })
    .await;
    let (old_session, kept_session) = (Uuid::now_v7(), Uuid::now_v7());
    // Three days old: past the two-day retention. Just inside it: kept.
    let too_old = (Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let within = (Utc::now() - chrono::Duration::days(2) + chrono::Duration::hours(1)).to_rfc3339();
    for chunk in (0..OLD_EVENTS).collect::<Vec<_>>().chunks(50) {
        let events: Vec<_> = chunk
            .iter()
            .map(|n| {
                json!({"eventType": "page_viewed", "sessionId": old_session,
                       "props": {"path": format!("/old/{n}"), "occurred_at": too_old}})
            })
            .collect();
        let output = server
            .call("eventIngestion.trackBatch", json!({"events": events}))
            .await
            .expect("trackBatch");
        assert_eq!(output["successful"], chunk.len(), "{output}");
    }
    server
        .track(
            json!({"eventType": "page_viewed", "sessionId": kept_session,
                      "props": {"path": "/kept", "occurred_at": within}}),
        )
        .await;
    server.force_flush().await;

    // Writes go on while the sweeps delete: every one of these is stored.
    let mut fresh = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        fresh.push(
            server
                .track(
                    json!({"eventType": "page_viewed", "sessionId": kept_session,
                              "props": {"path": format!("/new/{}", fresh.len())}}),
                )
                .await,
        );
        server.force_flush().await;
        let stored = server.count().await;
        if stored == 1 + fresh.len() as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not delete the old events: {stored} stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &fresh {
        assert!(server.stored(*id).await.is_some(), "a new event was lost");
    }
    assert!(
        server
            .store()
            .find_session(old_session)
            .await
            .expect("read")
            .is_none(),
        "the old session is deleted"
    );
    let kept = server
        .store()
        .find_session(kept_session)
        .await
        .expect("read")
        .expect("the recent session is kept");
    assert_eq!(kept.event_count, 1 + fresh.len() as i64);

    // getMetrics counts what is kept: the old events are gone from the segments too.
    let range = json!({
        "from": (Utc::now() - chrono::Duration::days(7)).to_rfc3339(),
        "to": (Utc::now() + chrono::Duration::minutes(1)).to_rfc3339(),
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = server
            .admin_call("eventIngestion.getMetrics", range.clone())
            .await
            .expect("getMetrics");
        if report["totals"]["events"] == 1 + fresh.len() {
            assert!(
                report["topPages"]
                    .as_array()
                    .is_some_and(|pages| pages.iter().all(|page| page["value"] != "/old/0")),
                "{report}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old events still count: {report}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
