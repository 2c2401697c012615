-- Exactly-once: the database, not memory, is what guarantees a duplicate is never written
-- twice, across restarts.

-- An event fingerprint (type, user, entity, session, props, time to the second) is stored once.
CREATE UNIQUE INDEX events_dedup_fingerprint_key ON events (dedup_fingerprint)
    WHERE dedup_fingerprint IS NOT NULL;

-- An idempotency key names one event forever.
CREATE UNIQUE INDEX events_idempotency_key_key ON events (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Keys are claimed when an event is accepted, before it is buffered, so that a repeat that
-- arrives while the original is still buffered already finds it.
CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY NOT NULL,
    event_id   TEXT NOT NULL,
    claimed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;
