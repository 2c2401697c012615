//! Running a statement built once on any of Sluice's connections: PostgreSQL's async one,
//! SQLite's async wrapper, and SQLite's blocking connection inside a write transaction.
//!
//! Statements are built with diesel's query builder on the one schema (`storage::schema`), so
//! the same value is valid SQL for both backends. [`Statement`] and [`Select`] say that a value
//! runs on every connection; [`Run`] runs it on the one at hand. A backend's dialect then
//! writes only what truly differs (`storage::database::Dialect`).

use std::future::Future;

use diesel::SqliteConnection;
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sqlite::Sqlite;
use diesel_async::AsyncPgConnection;
use diesel_async::methods::LoadQuery;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;

/// SQLite's connection behind diesel-async's interface (each statement on the blocking pool).
pub type SqliteAsync = SyncConnectionWrapper<SqliteConnection>;

/// A statement every Sluice connection can execute.
pub trait Statement: Send + 'static + QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId {}

impl<T> Statement for T where T: Send + 'static + QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId
{}

/// A query every Sluice connection can load as rows of `U`. Statements own their values
/// (`'static`): a borrowed one would keep the compiler from proving the write future `Send`
/// (rust-lang/rust#100013).
pub trait Select<U>:
    'static
    + Send
    + LoadQuery<'static, AsyncPgConnection, U>
    + LoadQuery<'static, SqliteAsync, U>
    + diesel::query_dsl::LoadQuery<'static, SqliteConnection, U>
{
}

impl<U, T> Select<U> for T where
    T: 'static
        + Send
        + LoadQuery<'static, AsyncPgConnection, U>
        + LoadQuery<'static, SqliteAsync, U>
        + diesel::query_dsl::LoadQuery<'static, SqliteConnection, U>
{
}

/// A connection that runs [`Statement`]s and [`Select`]s.
pub trait Run: Send {
    /// Executes `statement`; returns how many rows it changed.
    fn execute<S: Statement>(
        &mut self,
        statement: S,
    ) -> impl Future<Output = QueryResult<usize>> + Send;

    /// The rows of `query`.
    fn load<U: Send + 'static, Q: Select<U>>(
        &mut self,
        query: Q,
    ) -> impl Future<Output = QueryResult<Vec<U>>> + Send;

    /// The first row of `query` (which should say `LIMIT 1`), if any.
    fn first<U: Send + 'static, Q: Select<U>>(
        &mut self,
        query: Q,
    ) -> impl Future<Output = QueryResult<Option<U>>> + Send {
        let rows = self.load(query);
        async move { Ok(rows.await?.into_iter().next()) }
    }
}

/// Both async connections run statements through diesel-async. (One impl per type: a blanket
/// impl over `AsyncConnection` would overlap the blocking connection's below, as far as
/// coherence can tell.)
macro_rules! run_through_diesel_async {
    ($($connection:ty),+) => {$(
        impl Run for $connection {
            async fn execute<S: Statement>(&mut self, statement: S) -> QueryResult<usize> {
                diesel_async::RunQueryDsl::execute(statement, self).await
            }

            async fn load<U: Send + 'static, Q: Select<U>>(
                &mut self,
                query: Q,
            ) -> QueryResult<Vec<U>> {
                diesel_async::RunQueryDsl::load(query, self).await
            }
        }
    )+};
}

run_through_diesel_async!(AsyncPgConnection, SqliteAsync);

/// Inside SQLite's write transaction, on the blocking pool: each statement runs when called.
impl Run for SqliteConnection {
    fn execute<S: Statement>(
        &mut self,
        statement: S,
    ) -> impl Future<Output = QueryResult<usize>> + Send {
        std::future::ready(diesel::query_dsl::methods::ExecuteDsl::execute(
            statement, self,
        ))
    }

    fn load<U: Send + 'static, Q: Select<U>>(
        &mut self,
        query: Q,
    ) -> impl Future<Output = QueryResult<Vec<U>>> + Send {
        std::future::ready(
            diesel::query_dsl::LoadQuery::internal_load(query, self)
                .and_then(|rows| rows.collect()),
        )
    }
}
