//! Bounded resources at the socket: the connection cap at accept, the header-read timeout
//! (slow or silent clients) and the idle keep-alive timeout, with real TCP connections.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, TestServer, call};

fn addr(server: &TestServer) -> String {
    server.http_url().trim_start_matches("http://").to_owned()
}

/// A normal client's request, answered within `limit` or not at all.
async fn served_within(server: &TestServer, limit: Duration) -> bool {
    let client = server.client();
    let track = call(
        &client,
        "eventIngestion.track",
        json!({"eventType": "page_viewed"}),
    );
    matches!(tokio::time::timeout(limit, track).await, Ok(Ok(_)))
}

/// Whether the server closed `socket` within `limit` (EOF or reset, after any reply).
async fn closed_within(socket: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_thousand_silent_connections_neither_exhaust_the_server_nor_block_a_client() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.header_read_timeout_seconds = 2;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(TcpStream::connect(addr(&server)).await.expect("connect"));
    }
    assert!(
        served_within(&server, Duration::from_secs(10)).await,
        "a normal client is served beside 1 000 silent connections"
    );
    // Silent connections are closed once the header-read timeout passes.
    for socket in silent.iter_mut().take(20) {
        assert!(closed_within(socket, Duration::from_secs(10)).await);
    }
}

#[tokio::test]
async fn a_header_sent_one_byte_a_second_is_cut_off() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.header_read_timeout_seconds = 2;
    })
    .await;
    let mut slow = TcpStream::connect(addr(&server)).await.expect("connect");
    let head = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n";
    let started = tokio::time::Instant::now();
    let mut cut_off = false;
    for byte in head {
        if slow.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(1000)).await {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the slow head was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(served_within(&server, Duration::from_secs(10)).await);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.header_read_timeout_seconds = 1;
    })
    .await;
    let mut socket = TcpStream::connect(addr(&server)).await.expect("connect");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut reply = [0; 12];
    socket.read_exact(&mut reply).await.expect("reply");
    assert_eq!(&reply, b"HTTP/1.1 200");
    // Kept alive after the reply, then closed once it has sat idle past the timeout.
    assert!(closed_within(&mut socket, Duration::from_secs(10)).await);
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_wait_their_turn() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.max_connections = 4;
        config.http.header_read_timeout_seconds = 60;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&server)).await.expect("connect"));
    }
    // Give the server the moment it needs to take the four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn({
        let client = server.client();
        async move {
            call(
                &client,
                "eventIngestion.track",
                json!({"eventType": "page_viewed"}),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served past the cap");
    drop(held.pop());
    let served = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert!(served.is_ok(), "{served:?}");
}
