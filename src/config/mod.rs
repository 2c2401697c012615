//! Configuration: one typed part per concern (HTTP, database, pipeline, auth, limits), from
//! flags and `SLUICE_*` environment variables (same names), parsed once at start-up and
//! checked, part by part, before anything binds.

mod auth;
mod database;
mod http;
mod limits;
mod live;
mod pipeline;

use clap::{Args, Parser, Subcommand};

pub use auth::{AuthConfig, MIN_ADMIN_TOKEN_CHARS, MIN_JWT_SECRET_BYTES};
pub use database::{DEFAULT_DATABASE_URL, DatabaseConfig};
pub use http::{DEFAULT_BIND, HttpConfig, MIN_BODY_BYTES};
pub use limits::LimitsConfig;
pub use live::LiveConfig;
pub use pipeline::PipelineOptions;

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

/// Every setting, each a flag and an environment variable, by concern.
#[derive(Debug, Clone, Default, Args)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub pipeline: PipelineOptions,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
    #[command(flatten)]
    pub live: LiveConfig,
    /// Log format: text for people, json for log pipelines.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A setting that contradicts another or makes no sense; its message names the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl Config {
    /// Checks every part; the first setting that is refused is named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.database.validate()?;
        self.pipeline.validate()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.live.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::default();
        assert_eq!(config.http.bind, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(config.pipeline.batch_size, 100);
        assert_eq!(config.pipeline.batch_timeout_ms, 10_000);
        assert_eq!(config.pipeline.buffer_capacity, 100_000);
        assert_eq!(config.pipeline.dedup_ttl_seconds, 60);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_flags_defaults_are_the_settings_defaults() {
        // Written once: the flags take their defaults from the same constants.
        let parsed = Cli::try_parse_from(["sluice"])
            .expect("defaults parse")
            .config;
        let parsed = Config {
            database: DatabaseConfig {
                database_url: None,
                ..parsed.database
            },
            auth: AuthConfig::default(),
            ..parsed
        };
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }

    fn refused(adjust: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        adjust(&mut config);
        match config.validate() {
            Ok(()) => panic!("accepted: {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn every_documented_bound_is_enforced() {
        let short_secret = refused(|c| c.auth.jwt_secret = Some("abc".into()));
        assert!(short_secret.contains("SLUICE_JWT_SECRET must be at least 32 bytes (got 3)"));
        let short_token = refused(|c| c.auth.admin_token = Some("short".into()));
        assert!(short_token.contains("SLUICE_ADMIN_TOKEN"), "{short_token}");
        let proxy = refused(|c| c.http.trusted_proxies = "10.0.0.1, notanip".into());
        assert!(proxy.contains("SLUICE_TRUSTED_PROXIES") && proxy.contains("notanip"));
        let burst = refused(|c| c.limits.rate_limit_burst = 1);
        assert!(burst.contains("SLUICE_RATE_LIMIT_BURST must be at least 50"));
        let body = refused(|c| c.http.max_body_bytes = 100);
        assert!(body.contains("SLUICE_MAX_BODY_BYTES"), "{body}");
        assert!(refused(|c| c.http.max_connections = 0).contains("SLUICE_MAX_CONNECTIONS"));
        assert!(refused(|c| c.http.max_ws_connections = 0).contains("SLUICE_MAX_WS_CONNECTIONS"));
        assert!(refused(|c| c.database.db_pool_size = 0).contains("SLUICE_DB_POOL_SIZE"));
        assert!(refused(|c| c.pipeline.batch_size = 0).contains("SLUICE_BATCH_SIZE"));
        assert!(refused(|c| c.pipeline.batch_timeout_ms = 0).contains("SLUICE_BATCH_TIMEOUT_MS"));
        let capacity = refused(|c| {
            c.pipeline.batch_size = 500;
            c.pipeline.buffer_capacity = 100;
        });
        assert!(capacity.contains("SLUICE_BUFFER_CAPACITY"), "{capacity}");
        assert!(refused(|c| c.pipeline.dedup_ttl_seconds = 0).contains("SLUICE_DEDUP_TTL"));
        assert!(refused(|c| c.pipeline.max_props_bytes = 0).contains("SLUICE_MAX_PROPS_BYTES"));
        assert!(refused(|c| c.pipeline.max_event_age_days = 0).contains("SLUICE_MAX_EVENT_AGE"));
    }

    #[test]
    fn what_the_bounds_allow_is_accepted() {
        let mut config = Config::default();
        config.auth.jwt_secret = Some("x".repeat(MIN_JWT_SECRET_BYTES));
        config.auth.admin_token = Some("y".repeat(MIN_ADMIN_TOKEN_CHARS));
        config.http.trusted_proxies = "10.0.0.0/8, 192.168.1.1, ::1".into();
        config.http.max_body_bytes = MIN_BODY_BYTES;
        config.limits.rate_limit_burst = 50;
        assert!(config.validate().is_ok());
        // With rate limiting off the burst is not used, so it is not checked.
        config.limits.rate_limit_per_second = 0;
        config.limits.rate_limit_burst = 0;
        assert!(config.validate().is_ok());
    }
}
