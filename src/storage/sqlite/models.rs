//! The SQLite rows: uuids as hyphenated text, props as JSON text (see `storage::rows`).

crate::storage::rows::stored_rows!(
    backend = [diesel::sqlite::Sqlite],
    uuid = String,
    json = String
);
