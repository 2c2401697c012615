//! Diagnostics of a deployment: is the database reachable and how fast, are the tables there
//! and the migrations applied, how many rows, and (in a running server) the buffer. Served by
//! `eventIngestion.diagnostics` (admin) and printed by `sluice doctor`.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

use crate::storage::{Backend, Distribution, EventStore, TABLES};

/// The state of the database.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseDiagnosis {
    pub backend: Backend,
    pub reachable: bool,
    /// Round trip of `SELECT 1`, in milliseconds.
    pub latency_ms: Option<f64>,
    pub pending_migrations: Option<usize>,
    /// Row count per table; null for a table that could not be read (missing).
    pub tables: Vec<TableDiagnosis>,
    /// On Citus, how each table is spread and the active workers; null on a single database.
    pub distribution: Option<Distribution>,
    /// What went wrong, when something did.
    pub problems: Vec<String>,
}

/// One table.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableDiagnosis {
    pub name: String,
    pub rows: Option<i64>,
}

impl DatabaseDiagnosis {
    /// Whether everything is in order.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Examines the database behind `store`.
pub async fn diagnose(store: &dyn EventStore) -> DatabaseDiagnosis {
    let mut problems = Vec::new();
    let started = Instant::now();
    let reachable = match store.ping().await {
        Ok(()) => true,
        Err(error) => {
            problems.push(format!("database unreachable ({})", error.tag()));
            false
        }
    };
    let latency_ms = reachable.then(|| started.elapsed().as_secs_f64() * 1000.0);
    let mut tables = Vec::new();
    let mut pending_migrations = None;
    let mut distribution = None;
    if reachable {
        match store.pending_migrations().await {
            Ok(0) => pending_migrations = Some(0),
            Ok(pending) => {
                pending_migrations = Some(pending);
                problems.push(format!(
                    "{pending} migrations pending: run `sluice migrate`"
                ));
            }
            Err(error) => problems.push(format!("migrations unreadable ({})", error.tag())),
        }
        for table in TABLES {
            let rows = store.count_rows(table).await.ok();
            if rows.is_none() {
                problems.push(format!("table {table} is missing or unreadable"));
            }
            tables.push(TableDiagnosis {
                name: table.to_owned(),
                rows,
            });
        }
        match store.distribution().await {
            Ok(spread) => distribution = spread,
            Err(error) => problems.push(format!("distribution unreadable ({})", error.tag())),
        }
    }
    DatabaseDiagnosis {
        backend: store.backend(),
        reachable,
        latency_ms,
        pending_migrations,
        tables,
        distribution,
        problems,
    }
}
