//! The ingestion pipeline: validate → enrich → dedup/idempotency → bounded buffer → flusher →
//! storage. Transports call [`Pipeline`] through [`crate::api`]; nothing here knows about
//! JSON-RPC or HTTP.

mod accept;
pub mod background;
pub mod buffer;
pub mod clock;
pub mod compaction;
pub mod consent;
pub mod dedup;
pub mod durability;
pub mod enrichment;
mod error;
pub mod flusher;
pub mod live;
pub mod retention;
mod settings;
pub mod stats;
pub mod validation;
mod writer_thread;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{Caller, ConsentSubject};
use crate::metrics::MetricsRegistry;
use crate::storage::{EventStore, StorageError};
use buffer::Buffer;
use clock::Clock;
use dedup::TtlCache;
pub use durability::AckMode;
use durability::Waiters;
pub use error::PipelineError;
use flusher::{Command, FlushReport, Flusher};
use live::relay::Relay;
use live::{LiveEncoder, LiveHub};
pub use settings::{
    ADMISSION_WAIT, DEFAULT_BUFFER_CAPACITY, DEFAULT_DEDUP_MAX_ENTRIES, DEFAULT_DEDUP_TTL_SECONDS,
    PipelineConfig,
};
use stats::{PoolReport, Stats, StatsConfig, StatsReport};
use validation::ValidEvent;

/// The running pipeline, shared by every request.
pub struct Pipeline {
    config: PipelineConfig,
    buffer: Arc<Buffer>,
    waiters: Arc<Waiters>,
    stats: Arc<Stats>,
    metrics: MetricsRegistry,
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    commands: mpsc::Sender<Command>,
    /// Fingerprint → event id of recently accepted events.
    recent_fingerprints: TtlCache<[u8; 16], Uuid>,
    /// Idempotency key → event id of recently claimed keys.
    recent_keys: TtlCache<Uuid, Uuid>,
    enricher: enrichment::Enricher,
    /// Subjects that opted out: answered `suppressed` at once. The write transaction checks
    /// the consents table again, so an opt-out made on another node, or one this bounded
    /// cache no longer holds, is honoured too.
    opted_out: consent::OptOuts,
    live_hub: Arc<LiveHub>,
    live_encoder: LiveEncoder,
    /// Carries this node's live events to the others, on a backend shared by several nodes.
    live_relay: Option<Relay>,
}

/// Owns the flusher task; [`FlusherHandle::shutdown`] drains the buffer and stops it.
pub struct FlusherHandle {
    commands: mpsc::Sender<Command>,
    task: writer_thread::WriterTask,
}

impl Pipeline {
    /// Starts the flusher task and returns the pipeline with the handle that stops it.
    pub fn start(
        config: PipelineConfig,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> (Arc<Self>, FlusherHandle) {
        let buffer = Arc::new(Buffer::new(config.buffer_capacity, config.flush.batch_size));
        let metrics = MetricsRegistry::new();
        let stats = Arc::new(Stats::new(&metrics));
        let waiters = Arc::new(Waiters::default());
        let (commands, receiver) = mpsc::channel(16);
        let flusher = Flusher {
            buffer: buffer.clone(),
            waiters: waiters.clone(),
            store: store.clone(),
            stats: stats.clone(),
            settings: config.flush.clone(),
        };
        let task = writer_thread::WriterTask::spawn(flusher.run(receiver));
        let live_hub = Arc::new(LiveHub::new());
        let live_relay = store
            .node_channel()
            .map(|channel| Relay::start(live_hub.clone(), channel, clock.clone()));
        let pipeline = Arc::new(Self {
            live_encoder: LiveEncoder::new(&config.live_visitor_key),
            live_hub,
            live_relay,
            recent_fingerprints: TtlCache::new(config.dedup_ttl, config.dedup_cache_capacity),
            recent_keys: TtlCache::new(config.idempotency_cache_ttl, config.dedup_cache_capacity),
            enricher: enrichment::Enricher::new(config.geoip.clone(), config.ip_storage),
            opted_out: consent::OptOuts::new(consent::MAX_OPT_OUTS),
            config,
            buffer,
            waiters,
            stats,
            metrics,
            store,
            clock,
            commands: commands.clone(),
        });
        (pipeline, FlusherHandle { commands, task })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The current time by the pipeline's clock: the receive time of a request.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Validates one raw input received at `received_at`. All events of one request share
    /// their receive time, so identical events in one batch have one fingerprint.
    pub fn validate(
        &self,
        raw: Option<serde_json::Value>,
        received_at: chrono::DateTime<chrono::Utc>,
        caller: &Caller,
    ) -> Result<ValidEvent, crate::domain::InvalidInput> {
        let result = validation::validate_track_input(
            raw,
            &self.config.rules,
            received_at,
            caller.may_act_for_users(),
        );
        if result.is_err() {
            Stats::add(&self.stats.rejected, 1);
        }
        result
    }

    /// Admits new events: while the buffer is full, waits up to `admission_wait` for the
    /// flusher to make room, then refuses, before any work is done on them. A push that finds
    /// the buffer full after the work is still refused the same way.
    pub async fn wait_for_room(&self) -> Result<(), PipelineError> {
        Ok(self
            .buffer
            .wait_for_room(self.config.admission_wait)
            .await?)
    }

    /// Shows an accepted event to the live viewers here and, through the relay, elsewhere.
    fn publish_live(&self, event: live::LiveEvent) {
        if let Some(relay) = &self.live_relay {
            relay.forward(&event);
        }
        self.live_hub.publish(event, self.clock.now());
    }

    /// The live hub of this node.
    pub fn live_hub(&self) -> &Arc<LiveHub> {
        &self.live_hub
    }

    /// The relay between nodes, when the backend has a channel.
    pub fn live_relay(&self) -> Option<&Relay> {
        self.live_relay.as_ref()
    }

    /// Ends every live stream and stops the relay: the server is stopping.
    pub fn stop_live(&self) {
        self.live_hub.close();
        if let Some(relay) = &self.live_relay {
            relay.stop();
        }
    }

    /// Records a consent decision durably, then applies it here at once.
    pub async fn set_consent(
        &self,
        subjects: &[ConsentSubject],
        granted: bool,
    ) -> Result<(), PipelineError> {
        for subject in subjects {
            self.store
                .set_consent(subject, granted)
                .await
                .map_err(PipelineError::ConsentNotSaved)?;
        }
        for subject in subjects {
            self.opted_out.record(subject, granted);
        }
        Ok(())
    }

    /// Picks up the consent decisions made since the last refresh, on any node.
    pub async fn refresh_consents(&self) -> Result<(), StorageError> {
        self.opted_out
            .refresh(self.store.as_ref(), self.clock.now())
            .await
    }

    /// Writes everything buffered now and reports what was written.
    pub async fn force_flush(&self) -> Result<FlushReport, PipelineError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Flush(reply))
            .await
            .map_err(|_| PipelineError::ShuttingDown)?;
        Ok(answer.await.map_err(|_| PipelineError::ShuttingDown)??)
    }

    /// This node's Prometheus metrics; the layers above add theirs.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }

    pub fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    pub fn stats(&self) -> StatsReport {
        let config = StatsConfig {
            batch_size: self.config.flush.batch_size,
            batch_timeout_ms: self.config.flush.batch_timeout.as_millis() as u64,
            enable_deduplication: self.config.enable_deduplication,
            enable_enrichment: self.config.enable_enrichment,
            deduplication_ttl_seconds: self.config.dedup_ttl.as_secs(),
            buffer_capacity: self.buffer.capacity(),
        };
        let pool = PoolReport {
            backend: self.store.backend(),
            status: self.store.pool_status(),
        };
        self.stats.report(self.buffer.len(), config, pool)
    }
}

impl FlusherHandle {
    /// Drains the buffer (retrying up to the shutdown timeout) and stops the flusher.
    pub async fn shutdown(self) -> FlushReport {
        let (reply, answer) = oneshot::channel();
        let report = if self.commands.send(Command::Shutdown(reply)).await.is_ok() {
            answer.await.unwrap_or_default()
        } else {
            FlushReport::default()
        };
        self.task.ended().await;
        report
    }
}
