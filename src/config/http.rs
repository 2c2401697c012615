//! The HTTP side: where to listen, how much one request and one client may take, which
//! browsers may call, which proxies are believed.

use std::net::{Ipv4Addr, SocketAddr};

use clap::Args;

use super::ConfigError;
use crate::transport::client_ip::parse_trusted_proxies;
use crate::transport::http::{
    DEFAULT_HEADER_READ_TIMEOUT_SECONDS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_WS_CONNECTIONS, HttpSettings,
};

/// The address Sluice listens on by default: local only.
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// The smallest request body limit: one full trackBatch of small events must fit.
pub const MIN_BODY_BYTES: u32 = 16 * 1024;

/// Listening, request limits, CORS and trusted proxies.
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// Address to listen on (host:port).
    #[arg(long, env = "SLUICE_BIND", default_value_t = DEFAULT_BIND, global = true)]
    pub bind: SocketAddr,

    /// Largest request body, in bytes (at least 16 KiB).
    #[arg(long, env = "SLUICE_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, global = true)]
    pub max_body_bytes: u32,

    /// Seconds a client may take to send a request head, counted from when the connection is
    /// ready for it; an idle keep-alive connection is closed after as long. At least 1.
    #[arg(long, env = "SLUICE_HEADER_READ_TIMEOUT_SECONDS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECONDS, global = true)]
    pub header_read_timeout_seconds: u64,

    /// Most concurrent connections (HTTP and WebSocket), at least 1; past it, new connections
    /// wait to be accepted.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, global = true)]
    pub max_connections: u32,

    /// Most WebSocket connections open at once, at least 1.
    #[arg(long, env = "SLUICE_MAX_WS_CONNECTIONS", default_value_t = DEFAULT_MAX_WS_CONNECTIONS, global = true)]
    pub max_ws_connections: usize,

    /// Origins allowed to call from browsers, comma-separated (`*` for any, without
    /// credentials). Unset: no cross-origin access.
    #[arg(
        long,
        env = "SLUICE_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// Proxies whose X-Forwarded-For / X-Real-IP are believed, comma-separated addresses or
    /// CIDR networks. Unset: those headers are ignored.
    #[arg(
        long,
        env = "SLUICE_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    pub trusted_proxies: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout_seconds: DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_ws_connections: DEFAULT_MAX_WS_CONNECTIONS,
            cors_origins: Vec::new(),
            trusted_proxies: String::new(),
        }
    }
}

impl HttpConfig {
    /// Refuses limits that cannot serve anyone and proxy entries that are not addresses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < MIN_BODY_BYTES {
            return Err(ConfigError::new(format!(
                "SLUICE_MAX_BODY_BYTES must be at least {MIN_BODY_BYTES} (got {})",
                self.max_body_bytes
            )));
        }
        if self.header_read_timeout_seconds == 0 {
            return Err(ConfigError::new(
                "SLUICE_HEADER_READ_TIMEOUT_SECONDS must be at least 1",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "SLUICE_MAX_CONNECTIONS must be at least 1",
            ));
        }
        if self.max_ws_connections == 0 {
            return Err(ConfigError::new(
                "SLUICE_MAX_WS_CONNECTIONS must be at least 1",
            ));
        }
        parse_trusted_proxies(&self.trusted_proxies)
            .map_err(|error| ConfigError::new(format!("SLUICE_TRUSTED_PROXIES: {error}")))?;
        Ok(())
    }

    /// The transport's settings (after [`validate`](Self::validate)).
    pub fn settings(&self) -> HttpSettings {
        HttpSettings {
            max_request_body_bytes: self.max_body_bytes,
            max_connections: self.max_connections,
            max_ws_connections: self.max_ws_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_seconds),
            trusted_proxies: parse_trusted_proxies(&self.trusted_proxies).unwrap_or_default(),
            cors_origins: self
                .cors_origins
                .iter()
                .map(|origin| origin.trim().to_owned())
                .filter(|origin| !origin.is_empty())
                .collect(),
            ..HttpSettings::default()
        }
    }
}
