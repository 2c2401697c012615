-- Enrichment done at ingestion: device, geography and referrer, and the client address in
-- the form the operator chose (truncated by default).
ALTER TABLE events
    ADD COLUMN browser_name    text,
    ADD COLUMN browser_version text,
    ADD COLUMN os_name         text,
    ADD COLUMN os_version      text,
    ADD COLUMN device_type     text,
    ADD COLUMN is_bot          boolean NOT NULL DEFAULT false,
    ADD COLUMN country         text,
    ADD COLUMN region          text,
    ADD COLUMN city            text,
    ADD COLUMN ip_address      text,
    ADD COLUMN referrer_host   text;

-- Opt-outs: events of an opted-out session or user are not stored.
CREATE TABLE consents (
    subject_type text        NOT NULL CHECK (subject_type IN ('session', 'user')),
    subject_id   text        NOT NULL,
    granted      boolean     NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject_type, subject_id)
);
