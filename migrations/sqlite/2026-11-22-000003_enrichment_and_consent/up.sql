-- Enrichment done at ingestion: device, geography and referrer, and the client address in
-- the form the operator chose (truncated by default).
ALTER TABLE events ADD COLUMN browser_name TEXT;
ALTER TABLE events ADD COLUMN browser_version TEXT;
ALTER TABLE events ADD COLUMN os_name TEXT;
ALTER TABLE events ADD COLUMN os_version TEXT;
ALTER TABLE events ADD COLUMN device_type TEXT;
ALTER TABLE events ADD COLUMN is_bot BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN country TEXT;
ALTER TABLE events ADD COLUMN region TEXT;
ALTER TABLE events ADD COLUMN city TEXT;
ALTER TABLE events ADD COLUMN ip_address TEXT;
ALTER TABLE events ADD COLUMN referrer_host TEXT;

-- Opt-outs: events of an opted-out session or user are not stored.
CREATE TABLE consents (
    subject_type TEXT    NOT NULL CHECK (subject_type IN ('session', 'user')),
    subject_id   TEXT    NOT NULL,
    granted      BOOLEAN NOT NULL,
    updated_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (subject_type, subject_id)
) WITHOUT ROWID;
