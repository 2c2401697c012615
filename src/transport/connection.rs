//! Connections: how many are taken at once, what happens when accepting fails, and how long
//! a client may take to send a request head or sit idle between requests.
//!
//! - Past `max_connections`, new connections are not accepted: they wait in the kernel's
//!   backlog until a connection closes, and the server never runs out of memory or file
//!   descriptors because of them.
//! - An accept error (out of file descriptors, say) is retried after a pause that doubles up
//!   to a second, never in a tight loop.
//! - A client has `header_read_timeout` to send a whole request head, counted from the moment
//!   the connection is ready for its next request: a connection that sends nothing, or a head
//!   at one byte a second, or that sits idle between requests, is closed after it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest pause between two failed accepts.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Accepts connections on `listener`, at most `limit` open at once, until `stop` resolves.
pub struct Acceptor {
    listener: TcpListener,
    permits: Arc<Semaphore>,
}

impl Acceptor {
    pub fn new(listener: TcpListener, limit: usize) -> Self {
        Self {
            listener,
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// The next connection with the permit it holds until it closes; waits while the limit
    /// is reached, and pauses after accept errors.
    pub async fn accept(&self) -> (TcpStream, std::net::SocketAddr, OwnedSemaphorePermit) {
        let mut backoff = FIRST_ACCEPT_BACKOFF;
        loop {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                // The semaphore is never closed; wait for nothing rather than spin.
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((socket, peer)) => return (socket, peer, permit),
                Err(error) => {
                    drop(permit);
                    tracing::warn!(%error, pause_ms = backoff.as_millis() as u64, "failed to accept a connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }
}

/// Serves one HTTP/1.1 connection (with upgrades, for WebSocket) until it ends; once
/// `stopped` resolves, it finishes the request in progress and closes. HTTP/1 only: sniffing
/// for an HTTP/2 preface would wait on a silent client with no timeout at all.
pub async fn serve<S, B>(
    socket: TcpStream,
    service: S,
    header_read_timeout: Duration,
    stopped: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body<Data = hyper::body::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(socket), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(stopped, connection);
    tokio::select! {
        served = &mut connection => served.map_err(Into::into),
        () = &mut stopped => {
            connection.as_mut().graceful_shutdown();
            connection.await.map_err(Into::into)
        }
    }
}
