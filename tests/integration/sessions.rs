//! The session fold: what a written batch does to the `sessions` table, pinned for a fixed set
//! of events on every store (memory, SQLite, PostgreSQL): sessions spread over several flushes, events out of order,
//! duplicates inside a batch, a batch written twice, and an opted-out session.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use sluice::domain::ConsentSubject;
use sluice::domain::{EventRecord, Props};
use sluice::storage::{EventStore, SessionRecord};
use uuid::Uuid;

use crate::store_tests;

store_tests!(
    the_fold_keeps_each_sessions_aggregates,
    a_batch_written_twice_and_repeats_inside_it_count_once,
    an_opted_out_sessions_events_are_neither_stored_nor_folded
);

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, minute, 0)
        .single()
        .expect("time")
}

/// One event of `session` at `minute`, with a unique fingerprint.
fn event(session: Uuid, minute: u32) -> EventRecord {
    let id = Uuid::now_v7();
    EventRecord {
        id,
        event_type: "page_viewed".into(),
        source: "web".into(),
        actor_id: None,
        actor_type: Some("anonymous".into()),
        user_id: None,
        creator_id: None,
        brand_id: None,
        entity_id: None,
        entity_type: None,
        session_id: Some(session),
        props: None,
        attribution: Default::default(),
        idempotency_key: None,
        dedup_fingerprint: Some(format!("fp-{id}")),
        occurred_at: at(minute),
        received_at: at(minute),
        enrichment: Default::default(),
    }
}

fn with_path(mut event: EventRecord, path: &str) -> EventRecord {
    event.props = json!({"path": path, "title": "t"})
        .as_object()
        .cloned()
        .map(Props::from);
    event
}

async fn session(store: &Arc<dyn EventStore>, id: Uuid) -> SessionRecord {
    store
        .find_session(id)
        .await
        .expect("read")
        .expect("session row")
}

async fn the_fold_keeps_each_sessions_aggregates(store: Arc<dyn EventStore>) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());

    // First flush, out of order: a's earliest event (minute 10) has no landing page, so its
    // path is the entry page; its device type is the session's even though a later event's
    // differs; country and utm source come from the earliest events that have them; the user
    // is the latest one signed in.
    let mut a1 = with_path(event(a, 20), "/later");
    a1.enrichment.device_type = Some("tablet".into());
    a1.enrichment.country = Some("DE".into());
    a1.user_id = Some("early-user".into());
    let mut a2 = with_path(event(a, 10), "/pricing");
    a2.enrichment.device_type = Some("mobile".into());
    let mut a3 = event(a, 30);
    a3.enrichment.country = Some("FR".into());
    a3.attribution.utm_source = Some("newsletter".into());
    a3.user_id = Some("late-user".into());
    let mut a4 = event(a, 25);
    a4.attribution.utm_source = Some("ads".into());
    let mut b1 = event(b, 5);
    b1.attribution.landing_page = Some("https://shop.example/?utm_source=x".into());
    let loose = {
        let mut event = event(a, 0);
        event.session_id = None;
        event
    };
    let written = store
        .insert_events(&[a1, a2, a3, a4, b1, loose])
        .await
        .expect("first flush");
    assert_eq!(written, 6);

    let first = session(&store, a).await;
    assert_eq!(first.event_count, 4);
    assert_eq!(first.first_seen_at, at(10));
    assert_eq!(first.last_seen_at, at(30));
    assert_eq!(first.entry_page.as_deref(), Some("/pricing"));
    assert_eq!(first.device_type.as_deref(), Some("mobile"));
    assert_eq!(first.country.as_deref(), Some("DE"));
    assert_eq!(first.utm_source.as_deref(), Some("ads"));
    assert_eq!(first.user_id.as_deref(), Some("late-user"));
    let other = session(&store, b).await;
    assert_eq!(other.event_count, 1);
    assert_eq!(
        other.entry_page.as_deref(),
        Some("https://shop.example/?utm_source=x")
    );
    assert_eq!(other.device_type, None);

    // Second flush: a's session gains an event before its first one (a new entry page and
    // first time, but the device, country and source already known stay), and one after its
    // last one from a new signed-in user; b gains its first device type.
    let mut a5 = event(a, 2);
    a5.attribution.landing_page = Some("https://shop.example/home".into());
    a5.enrichment.device_type = Some("desktop".into());
    a5.enrichment.country = Some("NL".into());
    a5.attribution.utm_source = Some("search".into());
    let mut a6 = event(a, 45);
    a6.user_id = Some("signed-in".into());
    let mut b2 = event(b, 6);
    b2.enrichment.device_type = Some("desktop".into());
    let written = store
        .insert_events(&[a6, b2, a5])
        .await
        .expect("second flush");
    assert_eq!(written, 3);

    let second = session(&store, a).await;
    assert_eq!(second.event_count, 6);
    assert_eq!(second.first_seen_at, at(2));
    assert_eq!(second.last_seen_at, at(45));
    assert_eq!(
        second.entry_page.as_deref(),
        Some("https://shop.example/home")
    );
    assert_eq!(second.device_type.as_deref(), Some("mobile"));
    assert_eq!(second.country.as_deref(), Some("DE"));
    assert_eq!(second.utm_source.as_deref(), Some("ads"));
    assert_eq!(second.user_id.as_deref(), Some("signed-in"));
    let other = session(&store, b).await;
    assert_eq!(other.event_count, 2);
    assert_eq!(other.device_type.as_deref(), Some("desktop"));
    assert_eq!(other.last_seen_at, at(6));

    // A later flush without a signed-in user keeps the user the session had.
    let written = store
        .insert_events(&[event(a, 50)])
        .await
        .expect("third flush");
    assert_eq!(written, 1);
    let third = session(&store, a).await;
    assert_eq!(third.event_count, 7);
    assert_eq!(third.user_id.as_deref(), Some("signed-in"));
    assert_eq!(third.last_seen_at, at(50));
}

async fn a_batch_written_twice_and_repeats_inside_it_count_once(store: Arc<dyn EventStore>) {
    let s = Uuid::now_v7();
    let original = event(s, 10);
    // The same event again under another id (a repeat the memory cache missed): the stored
    // fingerprint refuses it, so the session must not count it.
    let mut repeat = event(s, 40);
    repeat.dedup_fingerprint = original.dedup_fingerprint.clone();
    repeat.user_id = Some("from-a-repeat".into());
    let next = event(s, 20);
    let batch = [original, repeat, next];
    assert_eq!(store.insert_events(&batch).await.expect("write"), 2);
    // An ambiguous failure makes the flusher write the same batch again.
    assert_eq!(store.insert_events(&batch).await.expect("again"), 0);

    let stored = session(&store, s).await;
    assert_eq!(stored.event_count, 2);
    assert_eq!(stored.first_seen_at, at(10));
    assert_eq!(
        stored.last_seen_at,
        at(20),
        "the refused repeat is not folded"
    );
    assert_eq!(stored.user_id, None);
    assert_eq!(store.count_events().await.expect("count"), 2);
}

async fn an_opted_out_sessions_events_are_neither_stored_nor_folded(store: Arc<dyn EventStore>) {
    let (kept, opted_out, by_user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    store
        .set_consent(&ConsentSubject::Session(opted_out.to_string()), false)
        .await
        .expect("opt out");
    store
        .set_consent(&ConsentSubject::User("quiet-user".into()), false)
        .await
        .expect("opt out");
    let mut of_user = event(by_user, 3);
    of_user.user_id = Some("quiet-user".into());
    let written = store
        .insert_events(&[
            event(kept, 1),
            event(opted_out, 2),
            of_user,
            event(by_user, 4),
        ])
        .await
        .expect("write");
    assert_eq!(written, 2);
    assert_eq!(store.count_events().await.expect("count"), 2);
    assert_eq!(session(&store, kept).await.event_count, 1);
    assert_eq!(store.find_session(opted_out).await.expect("read"), None);
    let mixed = session(&store, by_user).await;
    assert_eq!(mixed.event_count, 1);
    assert_eq!(mixed.first_seen_at, at(4));
    assert_eq!(mixed.user_id, None);
}
