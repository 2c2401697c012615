-- Analytics events, one row per accepted event. SQLite has no uuid, jsonb or timestamptz:
-- ids and keys are hyphenated text, props is JSON text, times are RFC 3339 text in UTC.
CREATE TABLE events (
    id                TEXT PRIMARY KEY NOT NULL,
    event_type        TEXT NOT NULL,
    source            TEXT NOT NULL,
    actor_id          TEXT,
    actor_type        TEXT,
    user_id           TEXT,
    creator_id        TEXT,
    brand_id          TEXT,
    entity_id         TEXT,
    entity_type       TEXT,
    session_id        TEXT,
    props             TEXT,
    utm_source        TEXT,
    utm_medium        TEXT,
    utm_campaign      TEXT,
    utm_term          TEXT,
    utm_content       TEXT,
    referrer          TEXT,
    landing_page      TEXT,
    idempotency_key   TEXT,
    dedup_fingerprint TEXT,
    occurred_at       TEXT NOT NULL,
    received_at       TEXT NOT NULL,
    stored_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;

CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_event_type_occurred_at_idx ON events (event_type, occurred_at);
CREATE INDEX events_user_id_idx ON events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_session_id_idx ON events (session_id) WHERE session_id IS NOT NULL;

-- Analytics sessions, upserted alongside the events they group.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    event_count   BIGINT NOT NULL DEFAULT 0,
    entry_page    TEXT,
    device_type   TEXT,
    country       TEXT,
    utm_source    TEXT
) WITHOUT ROWID;

CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE user_id IS NOT NULL;
