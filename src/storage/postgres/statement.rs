//! Keeping Sluice's own SQL prepared on each connection.
//!
//! diesel never caches the prepared statement of `sql_query`, since the text of a raw query
//! could be anything. Sluice's write statements are constants, so PostgreSQL would parse and
//! plan the same text again for every batch; [`Prepared`] tells diesel-async that the
//! statement may stay prepared on the connection (keyed by its text and bind types).

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;

/// A query built from constant SQL text, safe to keep prepared on the connection.
pub(super) struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    // The text is one of Sluice's constants and the binds are typed, so the same key always
    // names the same statement.
    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Prepared<Q> {
    // No static id: the cache is keyed by the SQL text and the bind types.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

// Rows come back as the wrapped query's rows (`RETURNING`, `SELECT`).
impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}
