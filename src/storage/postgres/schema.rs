// @generated automatically by Diesel CLI.

diesel::table! {
    events (id) {
        id -> Uuid,
        event_type -> Text,
        source -> Text,
        actor_id -> Nullable<Text>,
        actor_type -> Nullable<Text>,
        user_id -> Nullable<Text>,
        creator_id -> Nullable<Text>,
        brand_id -> Nullable<Text>,
        entity_id -> Nullable<Text>,
        entity_type -> Nullable<Text>,
        session_id -> Nullable<Uuid>,
        props -> Nullable<Jsonb>,
        utm_source -> Nullable<Text>,
        utm_medium -> Nullable<Text>,
        utm_campaign -> Nullable<Text>,
        utm_term -> Nullable<Text>,
        utm_content -> Nullable<Text>,
        referrer -> Nullable<Text>,
        landing_page -> Nullable<Text>,
        idempotency_key -> Nullable<Uuid>,
        dedup_fingerprint -> Nullable<Text>,
        occurred_at -> Timestamptz,
        received_at -> Timestamptz,
        stored_at -> Timestamptz,
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
        id -> Uuid,
        user_id -> Nullable<Text>,
        first_seen_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        event_count -> Int8,
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
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> Uuid,
        event -> Jsonb,
        error -> Text,
        failed_at -> Timestamptz,
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
        key -> Uuid,
        event_id -> Uuid,
        claimed_at -> Timestamptz,
    }
}
