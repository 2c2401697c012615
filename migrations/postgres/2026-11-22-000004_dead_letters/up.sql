-- Events the database refused on their own (a poison row), kept with the error instead of
-- blocking every later write.
CREATE TABLE dead_letters (
    id        uuid PRIMARY KEY,
    event     jsonb       NOT NULL,
    error     text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
