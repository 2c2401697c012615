DROP INDEX consents_updated_at_idx;
