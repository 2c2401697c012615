// @generated automatically by Diesel CLI.

diesel::table! {
    events (id) {
        id -> Text,
        event_type -> Text,
        source -> Text,
        actor_id -> Nullable<Text>,
        actor_type -> Nullable<Text>,
        user_id -> Nullable<Text>,
        creator_id -> Nullable<Text>,
        brand_id -> Nullable<Text>,
        entity_id -> Nullable<Text>,
        entity_type -> Nullable<Text>,
        session_id -> Nullable<Text>,
        props -> Nullable<Text>,
        utm_source -> Nullable<Text>,
        utm_medium -> Nullable<Text>,
        utm_campaign -> Nullable<Text>,
        utm_term -> Nullable<Text>,
        utm_content -> Nullable<Text>,
        referrer -> Nullable<Text>,
        landing_page -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        dedup_fingerprint -> Nullable<Text>,
        occurred_at -> TimestamptzSqlite,
        received_at -> TimestamptzSqlite,
        stored_at -> TimestamptzSqlite,
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
    sessions (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        first_seen_at -> TimestamptzSqlite,
        last_seen_at -> TimestamptzSqlite,
        event_count -> BigInt,
        entry_page -> Nullable<Text>,
        device_type -> Nullable<Text>,
        country -> Nullable<Text>,
        utm_source -> Nullable<Text>,
    }
}

diesel::table! {
    consents (subject_type, subject_id) {
        subject_type -> Text,
        subject_id -> Text,
        granted -> Bool,
        updated_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> Text,
        event -> Json,
        error -> Text,
        failed_at -> TimestamptzSqlite,
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
    idempotency_keys (key) {
        key -> Text,
        event_id -> Text,
        claimed_at -> TimestamptzSqlite,
    }
}
