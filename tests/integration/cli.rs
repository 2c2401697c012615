//! The `sluice` binary's subcommands and start-up checks.

use std::process::Command;

use sluice::storage::{self, PoolOptions};

use crate::backend_tests;
use crate::support::{Backend, TestDatabase};

backend_tests!(migrate_creates_the_schema_once, doctor_reports_the_database);

async fn doctor_reports_the_database(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let doctor = || {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("doctor")
            .env("SLUICE_DATABASE_URL", &database.url)
            .output()
            .expect("run sluice doctor")
    };
    let before = doctor();
    assert!(
        !before.status.success(),
        "an unmigrated database is a problem"
    );
    let log = String::from_utf8_lossy(&before.stderr);
    assert!(log.contains("migrations pending"), "{log}");

    let migrated = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("migrate")
        .env("SLUICE_DATABASE_URL", &database.url)
        .output()
        .expect("migrate");
    assert!(migrated.status.success());
    let after = doctor();
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&after.stdout).expect("JSON report");
    assert_eq!(report["reachable"], true);
    assert_eq!(report["pendingMigrations"], 0);
    assert_eq!(
        report["tables"][0],
        serde_json::json!({"name": "events", "rows": 0})
    );
    let distribution = &report["distribution"];
    if !matches!(backend, Backend::Citus { .. }) {
        assert!(distribution.is_null(), "{distribution}");
        return;
    }
    let spread: Vec<(String, String)> = distribution["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|table| {
            let column = table["column"].as_str().unwrap_or("-");
            let shards = table["shards"].as_i64().expect("shards");
            let method = table["method"].as_str().expect("method");
            (
                table["name"].as_str().expect("name").to_owned(),
                format!("{method} {column} {shards}"),
            )
        })
        .collect();
    let expected = [
        ("events", "distributed shard_key 2"),
        ("sessions", "distributed id 2"),
        ("idempotency_keys", "distributed key 2"),
        ("consents", "reference - 1"),
        ("dead_letters", "distributed id 2"),
        ("metric_segments", "local - 0"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(name, spread)| ((*name).to_owned(), (*spread).to_owned()))
        .collect();
    assert_eq!(
        spread, expected,
        "a shard per worker, the rest as SCALING.md says"
    );
    let workers = distribution["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2, "{distribution}");
    assert!(
        workers
            .iter()
            .all(|worker| worker["shardPlacements"].as_i64() > Some(0)),
        "{distribution}"
    );
}

async fn migrate_creates_the_schema_once(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    for run in ["first", "second"] {
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("migrate")
            .env("SLUICE_DATABASE_URL", &database.url)
            .output()
            .expect("run sluice migrate");
        let log = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{run} migrate failed: {log}");
        let applied: usize = log
            .split("applied=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("{run} run reports a count: {log}"));
        if run == "first" {
            assert!(applied > 0, "the first run applies the migrations: {log}");
        } else {
            assert_eq!(applied, 0, "the second run finds nothing to do: {log}");
        }
    }
    let store = storage::connect(&database.url, &PoolOptions::default())
        .await
        .expect("open");
    assert_eq!(store.count_events().await.expect("events table exists"), 0);
}

#[test]
fn contradictory_settings_refuse_to_boot() {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--batch-size", "500", "--buffer-capacity", "100", "migrate"])
        .env("SLUICE_DATABASE_URL", "sqlite://never-created.db")
        .output()
        .expect("run sluice");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("buffer capacity"), "{log}");
    assert!(!std::path::Path::new("never-created.db").exists());
}

/// Each setting the docs bound is refused with a one-line error naming it, and the process
/// exits non-zero before it listens.
#[test]
fn settings_the_docs_forbid_refuse_to_start() {
    let cases = [
        (
            "SLUICE_JWT_SECRET",
            "abc",
            "SLUICE_JWT_SECRET must be at least 32 bytes",
        ),
        ("SLUICE_TRUSTED_PROXIES", "10.0.0.1,notanip", "notanip"),
        (
            "SLUICE_RATE_LIMIT_BURST",
            "1",
            "SLUICE_RATE_LIMIT_BURST must be at least 50",
        ),
        (
            "SLUICE_ADMIN_TOKEN",
            "short",
            "SLUICE_ADMIN_TOKEN must be at least 16",
        ),
        (
            "SLUICE_MAX_BODY_BYTES",
            "10",
            "SLUICE_MAX_BODY_BYTES must be at least",
        ),
        (
            "SLUICE_DB_POOL_SIZE",
            "0",
            "SLUICE_DB_POOL_SIZE must be at least 1",
        ),
        (
            "SLUICE_MAX_CONNECTIONS",
            "0",
            "SLUICE_MAX_CONNECTIONS must be at least 1",
        ),
    ];
    for (name, value, expected) in cases {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("port")
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env(name, value)
            .env("SLUICE_BIND", format!("127.0.0.1:{port}"))
            .env("SLUICE_DATABASE_URL", "sqlite://never-created.db")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run sluice");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                "{name}={value}: sluice listened"
            );
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name}={value}: sluice did not exit");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let output = child.wait_with_output().expect("output");
        let log = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(!status.success(), "{name}={value}: {log}");
        let line: Vec<&str> = log.lines().filter(|line| line.contains(expected)).collect();
        assert_eq!(line.len(), 1, "{name}={value}: one line names it: {log}");
    }
    assert!(!std::path::Path::new("never-created.db").exists());
}
