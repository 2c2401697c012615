-- getMetrics reads per-hour segments of the events' metric fields (storage::metrics::segment)
-- instead of the events: written with every batch, merged in the background.
CREATE TABLE metric_segments (
    id INTEGER PRIMARY KEY,
    hour_start BIGINT NOT NULL,
    events INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX metric_segments_hour_start_idx ON metric_segments (hour_start);
-- The events stored before this migration are encoded once by the server right after it
-- (storage::metrics::backfill), which then deletes this marker.
CREATE TABLE metric_segments_backfill (pending BOOLEAN NOT NULL);
INSERT INTO metric_segments_backfill (pending) VALUES (TRUE);
