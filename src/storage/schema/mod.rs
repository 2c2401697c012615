//! Sluice's tables, one definition for both backends. The migrations of each backend
//! (`migrations/postgres`, `migrations/sqlite`) create them; the columns whose storage differs
//! (uuids, timestamps, JSON) have the portable SQL types of [`types`], and the rest are the same
//! on both. `metric_segments` is in `storage::metrics::schema`. On Citus, `events` also has
//! `shard_key`, which only Citus' own statements name (`postgres::citus`).

pub mod types;

diesel::table! {
    use diesel::sql_types::*;
    use super::types::{Id, Json, UtcTime};

    events (id) {
        id -> Id,
        event_type -> Text,
        source -> Text,
        actor_id -> Nullable<Text>,
        actor_type -> Nullable<Text>,
        user_id -> Nullable<Text>,
        creator_id -> Nullable<Text>,
        brand_id -> Nullable<Text>,
        entity_id -> Nullable<Text>,
        entity_type -> Nullable<Text>,
        session_id -> Nullable<Id>,
        props -> Nullable<Json>,
        utm_source -> Nullable<Text>,
        utm_medium -> Nullable<Text>,
        utm_campaign -> Nullable<Text>,
        utm_term -> Nullable<Text>,
        utm_content -> Nullable<Text>,
        referrer -> Nullable<Text>,
        landing_page -> Nullable<Text>,
        idempotency_key -> Nullable<Id>,
        dedup_fingerprint -> Nullable<Text>,
        occurred_at -> UtcTime,
        received_at -> UtcTime,
        stored_at -> UtcTime,
        browser_name -> Nullable<Text>,
        browser_version -> Nullable<Text>,
        os_name -> Nullable<Text>,
        os_version -> Nullable<Text>,
        device_type -> Nullable<Text>,
        is_bot -> Bool,
        country -> Nullable<Text>,
        region -> Nullable<Text>,
        city -> Nullable<Text>,
        ip_address -> Nullable<Text>,
        referrer_host -> Nullable<Text>,
        path -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::types::{Id, Json, UtcTime};

    sessions (id) {
        id -> Id,
        user_id -> Nullable<Text>,
        first_seen_at -> UtcTime,
        last_seen_at -> UtcTime,
        event_count -> Int8,
        entry_page -> Nullable<Text>,
        device_type -> Nullable<Text>,
        country -> Nullable<Text>,
        utm_source -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::types::{Id, Json, UtcTime};

    consents (subject_type, subject_id) {
        subject_type -> Text,
        subject_id -> Text,
        granted -> Bool,
        updated_at -> UtcTime,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::types::{Id, Json, UtcTime};

    dead_letters (id) {
        id -> Id,
        event -> Json,
        error -> Text,
        failed_at -> UtcTime,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    consents,
    dead_letters,
    events,
    idempotency_keys,
    sessions
);

diesel::table! {
    use diesel::sql_types::*;
    use super::types::{Id, Json, UtcTime};

    idempotency_keys (key) {
        key -> Id,
        event_id -> Id,
        claimed_at -> UtcTime,
    }
}
