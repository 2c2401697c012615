-- Analytics events, one row per accepted event. Ids are UUIDv7, so the primary key is also
-- roughly time-ordered.
CREATE TABLE events (
    id                uuid PRIMARY KEY,
    event_type        text        NOT NULL,
    source            text        NOT NULL,
    actor_id          text,
    actor_type        text,
    user_id           text,
    creator_id        text,
    brand_id          text,
    entity_id         text,
    entity_type       text,
    session_id        uuid,
    props             jsonb,
    utm_source        text,
    utm_medium        text,
    utm_campaign      text,
    utm_term          text,
    utm_content       text,
    referrer          text,
    landing_page      text,
    idempotency_key   uuid,
    dedup_fingerprint text,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    stored_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_event_type_occurred_at_idx ON events (event_type, occurred_at);
CREATE INDEX events_user_id_idx ON events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_session_id_idx ON events (session_id) WHERE session_id IS NOT NULL;

-- Analytics sessions, upserted alongside the events they group.
CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    user_id       text,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    event_count   bigint      NOT NULL DEFAULT 0,
    entry_page    text,
    device_type   text,
    country       text,
    utm_source    text
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE user_id IS NOT NULL;
