-- Retention deletes the sessions last seen before its cutoff, oldest first.
CREATE INDEX sessions_last_seen_at_idx ON sessions (last_seen_at);
