//! The listener: accepts TCP connections under the connection cap ([`connection`]) and serves
//! each with the route table ([`routes`]), the peer's address attached to every request.

use axum::Router;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use ipnet::IpNet;
use jsonrpsee::server::StopHandle;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::connection::{self, Acceptor};
#[cfg(doc)]
use super::routes;

/// Transport limits and policies.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_request_body_bytes: u32,
    pub max_connections: u32,
    /// Most calls in one JSON-RPC batch.
    pub max_batch_len: u32,
    /// Most WebSocket connections open at once.
    pub max_ws_connections: usize,
    /// Peers whose `X-Forwarded-For`/`X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins browsers may call from; `*` for any (then without credentials); empty: none.
    pub cors_origins: Vec<String>,
    /// Longest a client may take to send a request head, counted from when the connection
    /// is ready for it: also how long an idle keep-alive connection stays open.
    pub header_read_timeout: std::time::Duration,
}

/// Largest request body by default, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: u32 = 1024 * 1024;
/// Most concurrent connections by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;
/// How long a client may take to send a request head, or sit idle, by default, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 15;
/// Most WebSocket connections open at once by default.
pub const DEFAULT_MAX_WS_CONNECTIONS: usize = 1024;

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_request_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_batch_len: 100,
            max_ws_connections: DEFAULT_MAX_WS_CONNECTIONS,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            header_read_timeout: std::time::Duration::from_secs(
                DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
            ),
        }
    }
}

/// Serves `app` (see [`routes::app`]) on `listener` until `stop` fires; each connection
/// finishes its current requests before it closes.
pub async fn serve(listener: TcpListener, app: Router, settings: &HttpSettings, stop: StopHandle) {
    let acceptor = Acceptor::new(listener, settings.max_connections as usize);
    let header_read_timeout = settings.header_read_timeout;
    loop {
        let (socket, peer_addr, permit) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = stop.clone().shutdown() => break,
        };
        let _ = socket.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer_addr));
                request
            });
        // Held until the connection ends, so shutdown can wait for open connections.
        let connection_stop = stop.clone();
        tokio::spawn(async move {
            let served = connection::serve(
                socket,
                service,
                header_read_timeout,
                connection_stop.clone().shutdown(),
            );
            if let Err(error) = served.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(connection_stop);
            drop(permit);
        });
    }
}

/// Runs `serve` on a spawned task, returning its join handle.
pub fn spawn(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    stop: StopHandle,
) -> tokio::task::JoinHandle<()> {
    let settings = settings.clone();
    tokio::spawn(async move { serve(listener, app, &settings, stop).await })
}
