//! Stores opened directly, without a server, for the `EventStore` contract suites: the
//! in-memory store, SQLite and (with `SLUICE_TEST_POSTGRES_URL`, `SLUICE_TEST_CITUS_URL`)
//! PostgreSQL and Citus.

use std::sync::Arc;

use sluice::storage::{self, EventStore, MemoryStore, PoolOptions};

use super::{Backend, TestDatabase};

/// Which store a contract test runs against.
#[derive(Debug, Clone, Copy)]
pub enum StoreKind {
    Memory,
    Sqlite,
    Postgres,
    Citus,
}

/// A migrated store of `kind`, with the database that backs it (dropped with it); `None` for
/// PostgreSQL when no server is configured (the test is skipped).
pub async fn open(kind: StoreKind) -> Option<(Option<TestDatabase>, Arc<dyn EventStore>)> {
    let backend = match kind {
        StoreKind::Memory => return Some((None, Arc::new(MemoryStore::default()))),
        StoreKind::Sqlite => Backend::Sqlite,
        StoreKind::Postgres => Backend::postgres()?,
        StoreKind::Citus => Backend::citus()?,
    };
    let database = TestDatabase::create(&backend).await;
    let store = storage::connect(&database.url, &PoolOptions::default())
        .await
        .expect("store");
    store.run_migrations().await.expect("migrate");
    Some((Some(database), store))
}

/// Generates one `#[tokio::test]` per store for each listed
/// `async fn name(store: Arc<dyn EventStore>)`: `memory::name`, `sqlite::name` and, when
/// `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_CITUS_URL` is set, `postgres::name` /
/// `citus::name`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        $crate::store_tests!(@kind memory, Memory, $($name),*);
        $crate::store_tests!(@kind sqlite, Sqlite, $($name),*);
        $crate::store_tests!(@kind postgres, Postgres, $($name),*);
        $crate::store_tests!(@kind citus, Citus, $($name),*);
    };
    (@kind $module:ident, $kind:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let kind = $crate::support::stores::StoreKind::$kind;
                    if let Some((_database, store)) = $crate::support::stores::open(kind).await {
                        super::$name(store).await;
                    }
                }
            )*
        }
    };
}

/// How many of `ids` the store does not hold.
pub async fn missing_events(store: &dyn EventStore, ids: &[uuid::Uuid]) -> usize {
    let mut missing = 0;
    for id in ids {
        if store.find_event(*id).await.expect("read").is_none() {
            missing += 1;
        }
    }
    missing
}
