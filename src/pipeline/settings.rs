//! What the pipeline is tuned by, with the shipped defaults.

use std::sync::Arc;
use std::time::Duration;

use super::durability::AckMode;
use super::enrichment;
use super::flusher::{self, FlushSettings};
use super::validation::BusinessRules;

/// How long a request that finds the buffer full waits for the flusher to make room: a few
/// of its writes, well under a client's timeout.
pub const ADMISSION_WAIT: Duration = Duration::from_millis(250);

/// Everything the pipeline is tuned by.
#[derive(Clone)]
pub struct PipelineConfig {
    pub flush: FlushSettings,
    /// The default acknowledgement; a request may override it with `x-sluice-ack`.
    pub ack: AckMode,
    /// How long a durable request waits for its commit before it answers TIMEOUT.
    pub durable_timeout: Duration,
    pub buffer_capacity: usize,
    /// How long a request that finds the buffer full waits for room before it is refused.
    pub admission_wait: Duration,
    pub enable_deduplication: bool,
    pub enable_enrichment: bool,
    /// Refuse (and do not store) events from bots and automated tools.
    pub drop_bots: bool,
    pub ip_storage: enrichment::IpStorage,
    /// A MaxMind-format database for IP geolocation.
    pub geoip: Option<Arc<enrichment::geo::GeoIp>>,
    pub dedup_ttl: Duration,
    /// Most fingerprints (and, separately, idempotency keys) remembered in memory.
    pub dedup_cache_capacity: usize,
    /// How long an idempotency key is remembered in memory; the database remembers it forever.
    pub idempotency_cache_ttl: Duration,
    pub rules: BusinessRules,
    /// The key of the live visitor hash: nodes that share it name a visitor alike.
    pub live_visitor_key: Vec<u8>,
}

/// Most events held in memory by default.
pub const DEFAULT_BUFFER_CAPACITY: usize = 100_000;
/// The default deduplication window, in seconds.
pub const DEFAULT_DEDUP_TTL_SECONDS: u64 = 60;
/// Fingerprints kept in memory by default: the whole 60 s window up to about 4 000 events/s
/// in about 25 MB.
pub const DEFAULT_DEDUP_MAX_ENTRIES: usize = 250_000;

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            flush: FlushSettings {
                batch_size: flusher::DEFAULT_BATCH_SIZE,
                batch_timeout: Duration::from_millis(flusher::DEFAULT_BATCH_TIMEOUT_MS),
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(10),
                shutdown_timeout: Duration::from_secs(flusher::DEFAULT_SHUTDOWN_TIMEOUT_SECONDS),
            },
            ack: AckMode::Buffered,
            durable_timeout: Duration::from_secs(30),
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            admission_wait: ADMISSION_WAIT,
            enable_deduplication: true,
            enable_enrichment: true,
            drop_bots: false,
            ip_storage: enrichment::IpStorage::Truncated,
            geoip: None,
            dedup_ttl: Duration::from_secs(DEFAULT_DEDUP_TTL_SECONDS),
            dedup_cache_capacity: DEFAULT_DEDUP_MAX_ENTRIES,
            idempotency_cache_ttl: Duration::from_secs(600),
            rules: BusinessRules::default(),
            live_visitor_key: b"sluice-live-visitors".to_vec(),
        }
    }
}
