-- Nodes refresh their opt-out caches with the decisions made since their last refresh,
-- newest first (pipeline::consent): by time, not by reading the whole table.
CREATE INDEX consents_updated_at_idx ON consents (updated_at);
