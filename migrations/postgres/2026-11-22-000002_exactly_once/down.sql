DROP TABLE idempotency_keys;
DROP INDEX events_idempotency_key_key;
DROP INDEX events_dedup_fingerprint_key;
