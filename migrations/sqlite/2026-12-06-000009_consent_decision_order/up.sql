-- Nodes refresh their opt-out caches with the decisions made since their last refresh,
-- newest first (pipeline::consent): by time, not by reading the whole table. Decision times
-- are text; updates used to write another format than the column default, so they are
-- rewritten in the default's, whose text order is time order.
UPDATE consents SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', updated_at);
CREATE INDEX consents_updated_at_idx ON consents (updated_at);
