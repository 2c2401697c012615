//! The ingestion pipeline: batching, buffering, deduplication, acknowledgements, enrichment
//! and the business rules.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::ConfigError;
use crate::pipeline::enrichment::IpStorage;
use crate::pipeline::enrichment::geo::GeoIp;
use crate::pipeline::flusher::{
    DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, FlushSettings,
};
use crate::pipeline::retention::RetentionSettings;
use crate::pipeline::validation::{
    BusinessRules, DEFAULT_MAX_EVENT_AGE_DAYS, DEFAULT_MAX_FUTURE_SKEW_SECONDS,
    DEFAULT_MAX_PROPS_BYTES,
};
use crate::pipeline::{
    AckMode, DEFAULT_BUFFER_CAPACITY, DEFAULT_DEDUP_MAX_ENTRIES, DEFAULT_DEDUP_TTL_SECONDS,
    PipelineConfig,
};

/// Batching, buffer, dedup, acks, enrichment and business rules.
#[derive(Debug, Clone, Args)]
pub struct PipelineOptions {
    /// Events waiting that trigger a database write (with a backlog, one write takes up to
    /// 2 000); at least 1.
    #[arg(long, env = "SLUICE_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE, global = true)]
    pub batch_size: usize,

    /// Longest an accepted event waits in the buffer before a flush, in milliseconds.
    #[arg(long, env = "SLUICE_BATCH_TIMEOUT_MS", default_value_t = DEFAULT_BATCH_TIMEOUT_MS, global = true)]
    pub batch_timeout_ms: u64,

    /// Most events held in memory; past it, track answers SERVICE_UNAVAILABLE.
    #[arg(long, env = "SLUICE_BUFFER_CAPACITY", default_value_t = DEFAULT_BUFFER_CAPACITY, global = true)]
    pub buffer_capacity: usize,

    /// Deduplicate events by fingerprint.
    #[arg(long, env = "SLUICE_DEDUP", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub dedup: bool,

    /// Deduplication window, in seconds.
    #[arg(long, env = "SLUICE_DEDUP_TTL_SECONDS", default_value_t = DEFAULT_DEDUP_TTL_SECONDS, global = true)]
    pub dedup_ttl_seconds: u64,

    /// Most fingerprints kept in memory for deduplication; past it the oldest are forgotten
    /// early (the database's unique index still catches their duplicates). The default
    /// covers the whole window up to about 4 000 events/s in about 25 MB.
    #[arg(long, env = "SLUICE_DEDUP_MAX_ENTRIES", default_value_t = DEFAULT_DEDUP_MAX_ENTRIES, global = true)]
    pub dedup_max_entries: usize,

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

    /// Enrich events (user agent, geo, session, attribution).
    #[arg(long, env = "SLUICE_ENRICHMENT", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub enrichment: bool,

    /// Largest serialized props object, in bytes.
    #[arg(long, env = "SLUICE_MAX_PROPS_BYTES", default_value_t = DEFAULT_MAX_PROPS_BYTES, global = true)]
    pub max_props_bytes: usize,

    /// How far in the future props.occurred_at may be, in seconds.
    #[arg(long, env = "SLUICE_MAX_FUTURE_SKEW_SECONDS", default_value_t = DEFAULT_MAX_FUTURE_SKEW_SECONDS, global = true)]
    pub max_future_skew_seconds: u64,

    /// How old props.occurred_at may be, in days.
    #[arg(long, env = "SLUICE_MAX_EVENT_AGE_DAYS", default_value_t = DEFAULT_MAX_EVENT_AGE_DAYS, global = true)]
    pub max_event_age_days: u64,

    /// How long shutdown keeps retrying to write buffered events, in seconds.
    #[arg(long, env = "SLUICE_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, global = true)]
    pub shutdown_timeout_seconds: u64,

    /// Days stored events are kept (by the time they occurred); older events and sessions
    /// are deleted. Unset: kept forever.
    #[arg(long, env = "SLUICE_RETENTION_DAYS", global = true)]
    pub retention_days: Option<u32>,

    /// Seconds between two retention sweeps (the first runs at start).
    #[arg(long, env = "SLUICE_RETENTION_INTERVAL_SECONDS", default_value_t = DEFAULT_RETENTION_INTERVAL_SECONDS, global = true)]
    pub retention_interval_seconds: u64,
}

/// Seconds between two retention sweeps by default.
pub const DEFAULT_RETENTION_INTERVAL_SECONDS: u64 = 3_600;

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            batch_timeout_ms: DEFAULT_BATCH_TIMEOUT_MS,
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            dedup: true,
            dedup_ttl_seconds: DEFAULT_DEDUP_TTL_SECONDS,
            dedup_max_entries: DEFAULT_DEDUP_MAX_ENTRIES,
            ack: AckMode::Buffered,
            drop_bots: false,
            ip_storage: IpStorage::Truncated,
            geoip_db: None,
            enrichment: true,
            max_props_bytes: DEFAULT_MAX_PROPS_BYTES,
            max_future_skew_seconds: DEFAULT_MAX_FUTURE_SKEW_SECONDS,
            max_event_age_days: DEFAULT_MAX_EVENT_AGE_DAYS,
            shutdown_timeout_seconds: DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
            retention_days: None,
            retention_interval_seconds: DEFAULT_RETENTION_INTERVAL_SECONDS,
        }
    }
}

impl PipelineOptions {
    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retention_days == Some(0) {
            return Err(ConfigError::new(
                "SLUICE_RETENTION_DAYS must be at least 1 (leave it unset to keep events forever)",
            ));
        }
        if self.retention_interval_seconds == 0 {
            return Err(ConfigError::new(
                "SLUICE_RETENTION_INTERVAL_SECONDS must be at least 1",
            ));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::new("SLUICE_BATCH_SIZE must be at least 1"));
        }
        if self.batch_timeout_ms == 0 {
            return Err(ConfigError::new(
                "SLUICE_BATCH_TIMEOUT_MS must be at least 1",
            ));
        }
        if self.buffer_capacity < self.batch_size {
            return Err(ConfigError::new(format!(
                "buffer capacity (SLUICE_BUFFER_CAPACITY, {}) must be at least the batch size (SLUICE_BATCH_SIZE, {})",
                self.buffer_capacity, self.batch_size
            )));
        }
        if self.dedup && self.dedup_ttl_seconds == 0 {
            return Err(ConfigError::new(
                "SLUICE_DEDUP_TTL_SECONDS must be at least 1 while deduplication is on",
            ));
        }
        if self.max_props_bytes == 0 {
            return Err(ConfigError::new(
                "SLUICE_MAX_PROPS_BYTES must be at least 1",
            ));
        }
        if self.max_event_age_days == 0 {
            return Err(ConfigError::new(
                "SLUICE_MAX_EVENT_AGE_DAYS must be at least 1",
            ));
        }
        Ok(())
    }

    /// The pipeline's settings; opens the GeoIP database when one is configured.
    /// The retention in force, if any.
    pub fn retention(&self) -> Option<RetentionSettings> {
        self.retention_days.map(|days| RetentionSettings {
            days,
            every: Duration::from_secs(self.retention_interval_seconds),
        })
    }

    pub fn settings(&self) -> Result<PipelineConfig, ConfigError> {
        let defaults = PipelineConfig::default();
        let geoip = match &self.geoip_db {
            Some(path) => Some(Arc::new(GeoIp::open(path).map_err(ConfigError::new)?)),
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
            buffer_capacity: self.buffer_capacity,
            enable_deduplication: self.dedup,
            enable_enrichment: self.enrichment,
            drop_bots: self.drop_bots,
            ip_storage: self.ip_storage,
            geoip,
            dedup_ttl: Duration::from_secs(self.dedup_ttl_seconds),
            dedup_cache_capacity: self.dedup_max_entries,
            rules: BusinessRules {
                max_future_skew: Duration::from_secs(self.max_future_skew_seconds),
                max_event_age: Duration::from_secs(self.max_event_age_days * 24 * 60 * 60),
                max_props_bytes: self.max_props_bytes,
                ..defaults.rules
            },
            ..defaults
        })
    }
}
