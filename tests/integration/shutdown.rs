//! Graceful shutdown drains the buffer: in-process, and for the real binary on SIGTERM and
//! SIGINT.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sluice::storage::{self, PoolOptions};

use crate::backend_tests;
use crate::support::{ADMIN_TOKEN, Backend, TestDatabase, TestServer, call, page_view};

backend_tests!(
    stopping_drains_the_buffer,
    sigterm_drains_the_buffer_and_exits_zero,
    sigint_drains_the_buffer_and_exits_zero
);

async fn stopping_drains_the_buffer(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(server.track(page_view()).await);
    }
    assert_eq!(server.count().await, 0);
    let report = server.stop().await;
    assert_eq!(report.persisted, 7);
    assert_eq!(report.remaining, 0);
    server.restart().await;
    for id in ids {
        assert!(
            server.stored(id).await.is_some(),
            "{id} survived the shutdown"
        );
    }
}

async fn sigterm_drains_the_buffer_and_exits_zero(backend: Backend) {
    drains_on_signal(backend, "TERM").await;
}

async fn sigint_drains_the_buffer_and_exits_zero(backend: Backend) {
    drains_on_signal(backend, "INT").await;
}

async fn drains_on_signal(backend: Backend, signal: &str) {
    let database = TestDatabase::create(&backend).await;
    let port = free_port();
    let mut child = spawn_sluice(&database.url, port);
    let url = format!("http://127.0.0.1:{port}");
    wait_until_listening(port, &mut child).await;

    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(&url)
        .expect("client");
    let mut accepted = 0;
    for _ in 0..4 {
        let events: Vec<Value> = (0..5).map(|_| page_view()).collect();
        let output = call(
            &client,
            "eventIngestion.trackBatch",
            json!({"events": events}),
        )
        .await
        .expect("batch");
        accepted += output["successful"].as_u64().expect("count");
    }
    assert_eq!(accepted, 20);

    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = wait_for_exit(&mut child, Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(0), "graceful shutdown exits 0");

    let store = storage::connect(&database.url, &PoolOptions::default())
        .await
        .expect("reopen database");
    assert_eq!(store.count_events().await.expect("count"), 20);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

fn spawn_sluice(database_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_BIND", format!("127.0.0.1:{port}"))
        .env("SLUICE_DATABASE_URL", database_url)
        .env("SLUICE_BATCH_TIMEOUT_MS", "3600000")
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the sluice binary")
}

async fn wait_until_listening(port: u16, child: &mut Child) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sluice exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("sluice did not listen on {port}");
}

async fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
