//! The `EventStore` contract, one suite run against every store — in memory, SQLite and
//! PostgreSQL — so that pipeline tests on the memory store and the server on either database
//! rely on the same promises: what is written reads back unchanged, repeats are skipped by
//! id, fingerprint and idempotency key, opt-outs apply inside the write, keys belong to their
//! first claimer, dead letters are kept once, and every table is counted.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use sluice::domain::{Attribution, ConsentSubject, Enrichment, EventRecord, Props};
use sluice::storage::{ConsentDecision, EventStore, TABLES};
use uuid::Uuid;

use crate::store_tests;

store_tests!(
    a_stored_event_reads_back_as_written,
    repeats_by_id_fingerprint_or_idempotency_key_are_skipped,
    opt_outs_apply_inside_the_write_and_can_be_withdrawn,
    consent_decisions_since_a_time_come_newest_first,
    an_idempotency_key_belongs_to_its_first_claimer_until_released,
    dead_letters_are_kept_once_per_event,
    every_table_is_counted,
);

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, second)
        .single()
        .expect("time")
}

/// An event with every column set.
fn full_event() -> EventRecord {
    let id = Uuid::now_v7();
    EventRecord {
        id,
        event_type: "checkout_completed".into(),
        source: "server".into(),
        actor_id: Some("actor-1".into()),
        actor_type: Some("user".into()),
        user_id: Some(format!("user-{id}")),
        creator_id: Some("creator-1".into()),
        brand_id: Some("brand-1".into()),
        entity_id: Some("order-9".into()),
        entity_type: Some("order".into()),
        session_id: Some(Uuid::now_v7()),
        props: Some(Props::from_json_text(
            r#"{"path":"/checkout","amount":12.5,"items":["a","b"]}"#,
        )),
        attribution: Attribution {
            utm_source: Some("newsletter".into()),
            utm_medium: Some("email".into()),
            utm_campaign: Some("winter".into()),
            utm_term: Some("boots".into()),
            utm_content: Some("hero".into()),
            referrer: Some("https://mail.example/".into()),
            landing_page: Some("https://shop.example/boots".into()),
        },
        idempotency_key: Some(Uuid::now_v7()),
        dedup_fingerprint: Some(format!("fp-{id}")),
        occurred_at: at(1),
        received_at: at(2),
        enrichment: Enrichment {
            browser_name: Some("Firefox".into()),
            browser_version: Some("133.0".into()),
            os_name: Some("Linux".into()),
            os_version: None,
            device_type: Some("desktop".into()),
            is_bot: false,
            country: Some("DE".into()),
            region: Some("BE".into()),
            city: Some("Berlin".into()),
            ip_address: Some("203.0.113.7".into()),
            referrer_host: Some("mail.example".into()),
        },
    }
}

/// An anonymous, session-less event with a unique fingerprint.
fn anonymous_event() -> EventRecord {
    let mut event = full_event();
    event.user_id = None;
    event.session_id = None;
    event.idempotency_key = None;
    event
}

async fn a_stored_event_reads_back_as_written(store: Arc<dyn EventStore>) {
    let event = full_event();
    assert_eq!(
        store
            .insert_events(std::slice::from_ref(&event))
            .await
            .expect("write"),
        1
    );
    let mut stored = store
        .find_event(event.id)
        .await
        .expect("read")
        .expect("row");
    // PostgreSQL keeps props as jsonb, which normalises the text: compare the values.
    let props = |event: &EventRecord| event.props.as_ref().map(|p| p.to_value().expect("json"));
    assert_eq!(props(&stored), props(&event));
    assert_eq!(
        props(&stored),
        Some(json!({"path": "/checkout", "amount": 12.5, "items": ["a", "b"]}))
    );
    stored.props = event.props.clone();
    assert_eq!(stored, event);
    assert_eq!(store.find_event(Uuid::now_v7()).await.expect("read"), None);
}

async fn repeats_by_id_fingerprint_or_idempotency_key_are_skipped(store: Arc<dyn EventStore>) {
    let original = full_event();
    assert_eq!(
        store
            .insert_events(std::slice::from_ref(&original))
            .await
            .expect("write"),
        1
    );
    let same_id = original.clone();
    let mut same_fingerprint = full_event();
    same_fingerprint.dedup_fingerprint = original.dedup_fingerprint.clone();
    let mut same_key = full_event();
    same_key.idempotency_key = original.idempotency_key;
    let new = anonymous_event();
    let written = store
        .insert_events(&[same_id, same_fingerprint, same_key, new.clone()])
        .await
        .expect("write");
    assert_eq!(written, 1, "only the new event is written");
    assert_eq!(store.count_events().await.expect("count"), 2);
    assert!(store.find_event(new.id).await.expect("read").is_some());
}

/// What a node's refresh reads: the decisions since its last refresh, opt-ins included and
/// changed decisions by their new time, newest first up to the limit; or, on its first, the
/// subjects opted out now.
async fn consent_decisions_since_a_time_come_newest_first(store: Arc<dyn EventStore>) {
    let subject = |id: &str| ConsentSubject::Session(format!("{id}-{}", Uuid::now_v7()));
    let (a, b, c) = (subject("a"), subject("b"), subject("c"));
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(30));
    store.set_consent(&a, false).await.expect("opt out");
    pause().await;
    let since = Utc::now();
    pause().await;
    store.set_consent(&b, false).await.expect("opt out");
    pause().await;
    store.set_consent(&a, true).await.expect("opt in again");
    pause().await;
    store.set_consent(&c, false).await.expect("opt out");
    let decision = |subject: &ConsentSubject, granted| ConsentDecision {
        subject: subject.clone(),
        granted,
    };
    let since_then = store.consent_decisions(Some(since), 100).await;
    assert_eq!(
        since_then.expect("read"),
        [decision(&c, false), decision(&a, true), decision(&b, false)]
    );
    let newest = store.consent_decisions(Some(since), 2).await;
    assert_eq!(
        newest.expect("read"),
        [decision(&c, false), decision(&a, true)]
    );
    let opted_out = store.consent_decisions(None, 100).await.expect("read");
    assert_eq!(opted_out, [decision(&c, false), decision(&b, false)]);
}

async fn opt_outs_apply_inside_the_write_and_can_be_withdrawn(store: Arc<dyn EventStore>) {
    let by_user = full_event();
    let mut by_session = full_event();
    by_session.user_id = None;
    let user = ConsentSubject::User(by_user.user_id.clone().expect("user"));
    let session = ConsentSubject::Session(by_session.session_id.expect("session").to_string());
    store.set_consent(&user, false).await.expect("opt out");
    store.set_consent(&session, false).await.expect("opt out");
    let mut opted_out = store.consent_decisions(None, 100).await.expect("read");
    opted_out.sort_by_key(|decision| decision.subject.kind());
    assert_eq!(
        opted_out,
        [&session, &user].map(|subject| ConsentDecision {
            subject: subject.clone(),
            granted: false
        })
    );

    let anonymous = anonymous_event();
    let batch = [by_user.clone(), by_session.clone(), anonymous.clone()];
    assert_eq!(store.insert_events(&batch).await.expect("write"), 1);
    assert!(store.find_event(by_user.id).await.expect("read").is_none());
    assert!(
        store
            .find_event(by_session.id)
            .await
            .expect("read")
            .is_none()
    );
    let session_id = by_session.session_id.expect("session");
    assert_eq!(store.find_session(session_id).await.expect("read"), None);

    // Opting in again: later events of the subject are kept.
    store.set_consent(&user, true).await.expect("opt in");
    store.set_consent(&session, true).await.expect("opt in");
    assert_eq!(
        store.consent_decisions(None, 100).await.expect("read"),
        vec![]
    );
    assert_eq!(
        store
            .insert_events(&[by_user.clone(), by_session.clone()])
            .await
            .expect("write"),
        2
    );
    let folded = store
        .find_session(session_id)
        .await
        .expect("read")
        .expect("session row");
    assert_eq!(folded.event_count, 1);
}

async fn an_idempotency_key_belongs_to_its_first_claimer_until_released(
    store: Arc<dyn EventStore>,
) {
    let key = Uuid::now_v7();
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(
        store
            .claim_idempotency_key(key, first)
            .await
            .expect("claim"),
        first
    );
    assert_eq!(
        store
            .claim_idempotency_key(key, second)
            .await
            .expect("claim"),
        first,
        "a later claimer learns the owner"
    );
    // Only the owner's release frees the key.
    store
        .release_idempotency_key(key, second)
        .await
        .expect("release");
    assert_eq!(
        store
            .claim_idempotency_key(key, second)
            .await
            .expect("claim"),
        first
    );
    store
        .release_idempotency_key(key, first)
        .await
        .expect("release");
    assert_eq!(
        store
            .claim_idempotency_key(key, second)
            .await
            .expect("claim"),
        second
    );
}

async fn dead_letters_are_kept_once_per_event(store: Arc<dyn EventStore>) {
    let event = full_event();
    assert_eq!(store.count_dead_letters().await.expect("count"), 0);
    store
        .dead_letter(&event, "value too long")
        .await
        .expect("keep");
    store
        .dead_letter(&event, "value too long")
        .await
        .expect("again");
    store
        .dead_letter(&anonymous_event(), "another")
        .await
        .expect("keep");
    assert_eq!(store.count_dead_letters().await.expect("count"), 2);
    assert_eq!(
        store.count_events().await.expect("count"),
        0,
        "a dead letter is not an event"
    );
}

async fn every_table_is_counted(store: Arc<dyn EventStore>) {
    let event = full_event();
    let mut same_session = anonymous_event();
    same_session.session_id = event.session_id;
    same_session.occurred_at = event.occurred_at;
    // Claimed before the write, as the pipeline does (on Citus the write claims a key nobody
    // holds yet itself).
    let key = event.idempotency_key.expect("a keyed event");
    store
        .claim_idempotency_key(key, event.id)
        .await
        .expect("claim");
    store
        .insert_events(&[event.clone(), same_session])
        .await
        .expect("write");
    store
        .set_consent(&ConsentSubject::User("someone".into()), false)
        .await
        .expect("consent");
    store
        .dead_letter(&anonymous_event(), "refused")
        .await
        .expect("dead letter");
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push((table, store.count_rows(table).await.expect("count")));
    }
    assert_eq!(
        counts,
        vec![
            ("events", 2),
            ("sessions", 1),
            ("idempotency_keys", 1),
            ("consents", 1),
            ("dead_letters", 1),
            ("metric_segments", 1),
        ]
    );
    store.ping().await.expect("ping");
    assert_eq!(store.pending_migrations().await.expect("pending"), 0);
}
