//! Citus against one PostgreSQL, in one run (`SLUICE_BENCH_ONLY=citus`, with both
//! `SLUICE_TEST_POSTGRES_URL` and `SLUICE_TEST_CITUS_URL`): the realistic `trackBatch` flood
//! at the shipped defaults, rounds alternating between the two so that the machine's noise
//! falls on both; what each persisted by the end of the load, and the ratio. Then the
//! cluster's own ceiling (the same rows through the same store, no server) and getMetrics
//! over a million events on Citus.

use std::time::Duration;

use crate::traffic::Traffic;
use crate::{BenchDatabases, write_path};

#[path = "../../tests/integration/support/database.rs"]
#[allow(dead_code)]
mod database;

use database::{Backend, TestDatabase};

/// Rounds of each backend (`SLUICE_BENCH_CITUS_ROUNDS`, default 3).
fn rounds() -> usize {
    crate::env_or("SLUICE_BENCH_CITUS_ROUNDS", 3)
}

pub async fn run(
    postgres_admin: &str,
    citus_admin: &str,
    connections: usize,
    load: Duration,
    realistic: Traffic,
    session_less: Traffic,
) {
    let citus = Backend::Citus {
        admin_url: citus_admin.to_owned(),
    };
    let mut postgres = BenchDatabases {
        admin: postgres_admin.to_owned(),
        names: Vec::new(),
    };
    let (mut on_postgres, mut on_citus) = (Vec::new(), Vec::new());
    for round in 1..=rounds() {
        let url = postgres.create("citus_reference").await;
        let flood = write_path(&url, connections, load, realistic).await;
        flood.print(&format!("postgres, round {round}"));
        on_postgres.push(flood.persisted_during_load);
        let database = TestDatabase::create(&citus).await;
        let flood = write_path(&database.url, connections, load, realistic).await;
        flood.print(&format!("citus 1+2, round {round}"));
        on_citus.push(flood.persisted_during_load);
    }
    let database = TestDatabase::create(&citus).await;
    let plain = write_path(&database.url, connections, load, session_less).await;
    plain.print("citus 1+2, session-less traffic (comparison)");
    drop(database);
    postgres.drop_all().await;

    let total = |runs: &[u64]| runs.iter().sum::<u64>() as f64;
    let ratio = total(&on_citus) / total(&on_postgres).max(1.0);
    println!(
        "persisted by the end of the load, citus 1+2 / one postgres = {ratio:.2} over {} rounds (target >= 0.70: {}); per round: {:?} / {:?}",
        on_citus.len(),
        crate::verdict(ratio >= 0.7),
        on_citus,
        on_postgres
    );

    println!("\n## metrics (citus)");
    let database = TestDatabase::create(&citus).await;
    crate::metrics::run(&database.url, realistic).await;
}
