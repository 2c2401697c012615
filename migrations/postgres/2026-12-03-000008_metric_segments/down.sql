DROP TABLE metric_segments_backfill;
DROP TABLE metric_segments;
