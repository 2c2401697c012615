//! Embedded migrations, one set per backend, applied through diesel-async's harness.

use diesel::backend::Backend;
use diesel_async::{AsyncConnection, AsyncMigrationHarness};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::StorageError;

pub(super) const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub(super) const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

type HarnessResult = diesel::migration::Result<usize>;

/// Applies every pending migration of `migrations` on `connection`; returns how many ran.
pub(super) async fn run<C>(
    connection: C,
    migrations: EmbeddedMigrations,
) -> Result<usize, StorageError>
where
    C: AsyncConnection + Send + 'static,
    C::Backend: Backend,
    AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
{
    with_harness(connection, move |harness| {
        harness
            .run_pending_migrations(migrations)
            .map(|applied| applied.len())
    })
    .await
}

/// How many migrations of `migrations` are not applied yet.
pub(super) async fn pending<C>(
    connection: C,
    migrations: EmbeddedMigrations,
) -> Result<usize, StorageError>
where
    C: AsyncConnection + Send + 'static,
    C::Backend: Backend,
    AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
{
    with_harness(connection, move |harness| {
        harness
            .pending_migrations(migrations)
            .map(|pending| pending.len())
    })
    .await
}

/// Runs `task` with a harness over `connection`. The harness blocks its thread, so it runs on
/// the blocking pool.
async fn with_harness<C>(
    connection: C,
    task: impl FnOnce(&mut AsyncMigrationHarness<C>) -> HarnessResult + Send + 'static,
) -> Result<usize, StorageError>
where
    C: AsyncConnection + Send + 'static,
    C::Backend: Backend,
    AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
{
    tokio::task::spawn_blocking(move || {
        task(&mut AsyncMigrationHarness::new(connection))
            .map_err(|error| StorageError::Migration(error.to_string()))
    })
    .await
    .map_err(|error| StorageError::Migration(error.to_string()))?
}
