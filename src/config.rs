//! Configuration: one typed struct from flags and `SLUICE_*` environment variables (same names),
//! parsed once at start-up and checked for contradictions before anything binds.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::api::rate_limit::RateLimitSettings;
use crate::identity::Secret;
use std::sync::Arc;

use crate::pipeline::enrichment::IpStorage;
use crate::pipeline::enrichment::geo::GeoIp;
use crate::pipeline::flusher::FlushSettings;
use crate::pipeline::validation::BusinessRules;
use crate::pipeline::{AckMode, PipelineConfig};
use crate::storage::PoolOptions;
use crate::transport::client_ip::parse_trusted_proxies;
use crate::transport::http::HttpSettings;

/// The default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sluice.db";

/// Command line of the `sluice` binary.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Analytics event ingestion over JSON-RPC 2.0 and tRPC HTTP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What to run; `serve` when none is given.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the database: connectivity and latency, tables, pending migrations, row counts.
    /// Exits non-zero when something is wrong.
    Doctor,
    /// Print a JWT signed with the configured secret, for local use.
    Token(TokenArgs),
}

/// Claims of a minted token.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// The role.
    #[arg(long, value_enum, default_value_t = crate::domain::Role::Viewer)]
    pub role: crate::domain::Role,
    #[arg(long)]
    pub creator_id: Option<String>,
    #[arg(long)]
    pub brand_id: Option<String>,
    /// Lifetime in seconds; 0 mints a token without expiry.
    #[arg(long, default_value_t = 3600)]
    pub ttl_seconds: u64,
}

/// Every setting, each a flag and an environment variable.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (host:port).
    #[arg(
        long,
        env = "SLUICE_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: SocketAddr,

    /// Database URL: postgres://… or sqlite://path. Falls back to DATABASE_URL, then to
    /// sqlite://sluice.db.
    #[arg(long, env = "SLUICE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Connections in the database pool.
    #[arg(long, env = "SLUICE_DB_POOL_SIZE", default_value_t = 8, global = true)]
    pub db_pool_size: usize,

    /// Events per database write; the buffer flushes as soon as this many are waiting.
    #[arg(long, env = "SLUICE_BATCH_SIZE", default_value_t = 100, global = true)]
    pub batch_size: usize,

    /// Longest an accepted event waits in the buffer before a flush, in milliseconds.
    #[arg(
        long,
        env = "SLUICE_BATCH_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub batch_timeout_ms: u64,

    /// Most events held in memory; past it, track answers SERVICE_UNAVAILABLE.
    #[arg(
        long,
        env = "SLUICE_BUFFER_CAPACITY",
        default_value_t = 100_000,
        global = true
    )]
    pub buffer_capacity: usize,

    /// Deduplicate events by fingerprint.
    #[arg(long, env = "SLUICE_DEDUP", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub dedup: bool,

    /// Deduplication window, in seconds.
    #[arg(
        long,
        env = "SLUICE_DEDUP_TTL_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub dedup_ttl_seconds: u64,

    /// When track answers: buffered (once in memory) or durable (once committed). A request
    /// can choose with the x-sluice-ack header.
    #[arg(long, env = "SLUICE_ACK", value_enum, default_value_t = AckMode::Buffered, global = true)]
    pub ack: AckMode,

    /// Refuse (and do not store) events from bots and automated tools; they are kept and
    /// flagged by default.
    #[arg(long, env = "SLUICE_DROP_BOTS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub drop_bots: bool,

    /// How much of the client IP to store: truncated (/24, /48), none, or full.
    #[arg(long, env = "SLUICE_IP_STORAGE", value_enum, default_value_t = IpStorage::Truncated, global = true)]
    pub ip_storage: IpStorage,

    /// A MaxMind-format (.mmdb) City or Country database for IP geolocation.
    #[arg(long, env = "SLUICE_GEOIP_DB", global = true)]
    pub geoip_db: Option<std::path::PathBuf>,

    /// Most fingerprints kept in memory for deduplication; past it the oldest are forgotten
    /// early (the database's unique index still catches their duplicates). The default
    /// covers the whole window up to about 4 000 events/s in about 25 MB.
    #[arg(
        long,
        env = "SLUICE_DEDUP_MAX_ENTRIES",
        default_value_t = 250_000,
        global = true
    )]
    pub dedup_max_entries: usize,

    /// Enrich events (user agent, geo, session, attribution).
    #[arg(long, env = "SLUICE_ENRICHMENT", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub enrichment: bool,

    /// Secret for HS256 JWTs (at least 32 bytes). Unset: only anonymous callers and the admin
    /// token are accepted.
    #[arg(long, env = "SLUICE_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// Static bearer token that grants ADMIN (getStats, forceFlush). Unset: no admin access.
    #[arg(
        long,
        env = "SLUICE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,

    /// Largest serialized props object, in bytes.
    #[arg(long, env = "SLUICE_MAX_PROPS_BYTES", default_value_t = 32 * 1024, global = true)]
    pub max_props_bytes: usize,

    /// How far in the future props.occurred_at may be, in seconds.
    #[arg(
        long,
        env = "SLUICE_MAX_FUTURE_SKEW_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub max_future_skew_seconds: u64,

    /// How old props.occurred_at may be, in days.
    #[arg(
        long,
        env = "SLUICE_MAX_EVENT_AGE_DAYS",
        default_value_t = 30,
        global = true
    )]
    pub max_event_age_days: u64,

    /// Largest request body, in bytes.
    #[arg(long, env = "SLUICE_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: u32,

    /// Most concurrent connections (HTTP and WebSocket).
    #[arg(
        long,
        env = "SLUICE_MAX_CONNECTIONS",
        default_value_t = 4096,
        global = true
    )]
    pub max_connections: u32,

    /// Log format: text for people, json for log pipelines.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Most WebSocket connections open at once.
    #[arg(
        long,
        env = "SLUICE_MAX_WS_CONNECTIONS",
        default_value_t = 1024,
        global = true
    )]
    pub max_ws_connections: usize,

    /// Sustained events per second one client may send (by user, else session, else IP);
    /// 0 turns rate limiting off.
    #[arg(
        long,
        env = "SLUICE_RATE_LIMIT_PER_SECOND",
        default_value_t = 100,
        global = true
    )]
    pub rate_limit_per_second: u32,

    /// Events one client may send in a burst (at least 50, one full trackBatch).
    #[arg(
        long,
        env = "SLUICE_RATE_LIMIT_BURST",
        default_value_t = 1000,
        global = true
    )]
    pub rate_limit_burst: u32,

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

    /// How long shutdown keeps retrying to write buffered events, in seconds.
    #[arg(
        long,
        env = "SLUICE_SHUTDOWN_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub shutdown_timeout_seconds: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A setting that contradicts another or makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Default for Config {
    fn default() -> Self {
        // The defaults of the flags, so tests override only what they need.
        match Cli::try_parse_from(["sluice"]) {
            Ok(cli) => cli.config,
            Err(error) => panic!("the built-in defaults must parse: {error}"),
        }
    }
}

impl Config {
    /// The database URL in force: flag/SLUICE_DATABASE_URL, then DATABASE_URL, then the default.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| {
                std::env::var("DATABASE_URL")
                    .ok()
                    .filter(|url| !url.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
    }

    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError(message));
        if self.batch_size == 0 {
            return fail("batch size must be at least 1".into());
        }
        if self.batch_timeout_ms == 0 {
            return fail("batch timeout must be at least 1 ms".into());
        }
        if self.buffer_capacity < self.batch_size {
            return fail(format!(
                "buffer capacity ({}) must be at least the batch size ({})",
                self.buffer_capacity, self.batch_size
            ));
        }
        if self.db_pool_size == 0 {
            return fail("database pool size must be at least 1".into());
        }
        if self
            .admin_token
            .as_deref()
            .is_some_and(|token| token.len() < 16)
        {
            return fail("the admin token must be at least 16 characters".into());
        }
        Ok(())
    }

    pub fn admin_token(&self) -> Option<Secret> {
        self.admin_token.as_deref().map(Secret::new)
    }

    pub fn jwt_secret(&self) -> Option<Secret> {
        self.jwt_secret.as_deref().map(Secret::new)
    }

    /// The pipeline settings; opens the GeoIP database when one is configured.
    pub fn pipeline(&self) -> Result<PipelineConfig, ConfigError> {
        let defaults = PipelineConfig::default();
        let geoip = match &self.geoip_db {
            Some(path) => Some(Arc::new(GeoIp::open(path).map_err(ConfigError)?)),
            None => None,
        };
        Ok(PipelineConfig {
            flush: FlushSettings {
                batch_size: self.batch_size,
                batch_timeout: Duration::from_millis(self.batch_timeout_ms),
                shutdown_timeout: Duration::from_secs(self.shutdown_timeout_seconds),
                ..defaults.flush
            },
            ack: self.ack,
            durable_timeout: defaults.durable_timeout,
            buffer_capacity: self.buffer_capacity,
            admission_wait: defaults.admission_wait,
            enable_deduplication: self.dedup,
            enable_enrichment: self.enrichment,
            drop_bots: self.drop_bots,
            ip_storage: self.ip_storage,
            geoip,
            dedup_ttl: Duration::from_secs(self.dedup_ttl_seconds),
            dedup_cache_capacity: self.dedup_max_entries,
            idempotency_cache_ttl: defaults.idempotency_cache_ttl,
            rules: BusinessRules {
                max_future_skew: Duration::from_secs(self.max_future_skew_seconds),
                max_event_age: Duration::from_secs(self.max_event_age_days * 24 * 60 * 60),
                max_props_bytes: self.max_props_bytes,
                ..defaults.rules
            },
        })
    }

    pub fn pool(&self) -> PoolOptions {
        PoolOptions {
            max_size: self.db_pool_size,
            ..PoolOptions::default()
        }
    }

    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            max_request_body_bytes: self.max_body_bytes,
            max_connections: self.max_connections,
            max_ws_connections: self.max_ws_connections,
            // Checked by `validate`; an invalid list trusts nobody.
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

    pub fn rate_limits(&self) -> RateLimitSettings {
        RateLimitSettings {
            per_second: self.rate_limit_per_second,
            burst: self.rate_limit_burst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::default();
        assert_eq!(config.bind, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(config.batch_size, 100);
        assert_eq!(config.batch_timeout_ms, 10_000);
        assert_eq!(config.dedup_ttl_seconds, 60);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn contradictions_refuse_to_boot() {
        let config = Config {
            batch_size: 500,
            buffer_capacity: 100,
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let config = Config {
            admin_token: Some("short".into()),
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}
