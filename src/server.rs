//! Assembles and runs a Sluice server: storage → pipeline → procedures → transports.
//!
//! The library never binds ports or traps signals itself: callers pass a bound listener and
//! a shutdown future, so tests can run a real server on port 0 and stop it when they choose.
//! Shutdown order: stop accepting requests, let open requests finish, stop the background
//! work (passes under way finish, with a bound), drain the buffer into the database, then
//! close the pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::server::{ServerHandle, stop_channel};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::EventIngestion;
use crate::api::rate_limit::RateLimits;
use crate::config::{Config, ConfigError};
use crate::identity::Authenticator;
use crate::pipeline::background::{self, Background};
use crate::pipeline::clock::{Clock, SystemClock};
use crate::pipeline::flusher::FlushReport;
use crate::pipeline::{FlusherHandle, Pipeline};
use crate::storage::{self, EventStore, StorageError};
use crate::transport::{http, jsonrpc, routes};

/// How long shutdown waits for open connections before it drains the buffer anyway.
const CONNECTION_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
}

/// A started server.
pub struct RunningServer {
    local_addr: SocketAddr,
    service: Arc<EventIngestion>,
    store: Arc<dyn EventStore>,
    server_handle: ServerHandle,
    app: axum::Router,
    http_task: JoinHandle<()>,
    flusher: FlusherHandle,
    background: Background,
}

impl RunningServer {
    /// Connects to the database, applies migrations, starts the flusher and serves `listener`.
    pub async fn start(config: &Config, listener: TcpListener) -> Result<Self, StartError> {
        Self::start_with_clock(config, listener, Arc::new(SystemClock)).await
    }

    /// [`start`](Self::start) with the pipeline's clock given: tests pin "now" with a
    /// [`ManualClock`](crate::pipeline::clock::ManualClock).
    pub async fn start_with_clock(
        config: &Config,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let database_url = config.database.url();
        let store = storage::connect(&database_url, &config.database.pool()).await?;
        let applied = store.run_migrations().await?;
        tracing::info!(
            database = %storage::redact_url(&database_url),
            backend = ?store.backend(),
            migrations_applied = applied,
            "database ready"
        );
        let mut settings = config.pipeline.settings()?;
        settings.live_visitor_key = live_visitor_key(config);
        let (pipeline, flusher) = Pipeline::start(settings, store.clone(), clock);
        pipeline.refresh_consents().await?;
        let background = background::start_node_work(&pipeline, config.pipeline.retention());
        let service = Arc::new(EventIngestion::new(
            pipeline,
            Authenticator::new(config.auth.admin_token(), config.auth.jwt_secret()),
            RateLimits::new(config.limits.settings()),
            config.live.settings(),
        ));
        let methods = jsonrpc::rpc_module(service.clone());
        let (stop, server_handle) = stop_channel();
        let local_addr = listener.local_addr()?;
        let settings = config.http.settings();
        let app = routes::app(service.clone(), methods.into(), &settings, stop.clone());
        let http_task = http::spawn(listener, app.clone(), &settings, stop);
        tracing::info!(address = %local_addr, "sluice ready to accept requests");
        Ok(Self {
            local_addr,
            service,
            store,
            server_handle,
            app,
            http_task,
            flusher,
            background,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The procedures, for in-process callers.
    pub fn service(&self) -> &Arc<EventIngestion> {
        &self.service
    }

    /// The route table the listener serves, for in-process requests (the fuzz harness
    /// sends through it without a socket). Requests made this way carry no peer address.
    pub fn router(&self) -> axum::Router {
        self.app.clone()
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Stops gracefully and reports what the final drain wrote.
    pub async fn stop(self) -> FlushReport {
        tracing::info!("shutting down: no new connections");
        // Live streams never end by themselves: end them, so their connections can close.
        self.service.pipeline().stop_live();
        // The app holds a stop handle: `stopped` waits for every one to be gone.
        drop(self.app);
        let _ = self.server_handle.stop();
        if let Err(error) = self.http_task.await {
            tracing::error!(%error, "listener task ended abnormally");
        }
        if tokio::time::timeout(CONNECTION_DRAIN_TIMEOUT, self.server_handle.stopped())
            .await
            .is_err()
        {
            tracing::warn!("open connections did not finish in time; draining anyway");
        }
        // Timed work first, so the drain never waits behind a compaction or a sweep.
        self.background.stop(background::STOP_TIMEOUT).await;
        let report = self.flusher.shutdown().await;
        tracing::info!(
            flushed = report.flushed,
            persisted = report.persisted,
            lost = report.remaining,
            "buffer drained; shutdown complete"
        );
        report
    }
}

/// The key of the live visitor hash: a secret every node of a deployment shares, so that
/// they name a visitor alike and nobody without it can match ids to users or sessions.
fn live_visitor_key(config: &Config) -> Vec<u8> {
    let secret = config
        .auth
        .jwt_secret()
        .or_else(|| config.auth.admin_token());
    let mut key = b"sluice-live-visitors:".to_vec();
    if let Some(secret) = secret {
        key.extend_from_slice(secret.expose().as_bytes());
    }
    key
}

/// Runs a server on `listener` until `shutdown` resolves, then stops it gracefully.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<FlushReport, StartError> {
    let server = RunningServer::start(config, listener).await?;
    shutdown.await;
    Ok(server.stop().await)
}
