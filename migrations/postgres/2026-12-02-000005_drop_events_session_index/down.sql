CREATE INDEX events_session_id_idx ON events (session_id) WHERE session_id IS NOT NULL;
