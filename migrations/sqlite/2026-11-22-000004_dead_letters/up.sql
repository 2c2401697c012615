-- Events the database refused on their own (a poison row), kept with the error instead of
-- blocking every later write.
CREATE TABLE dead_letters (
    id        TEXT PRIMARY KEY NOT NULL,
    event     TEXT NOT NULL,
    error     TEXT NOT NULL,
    failed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;
