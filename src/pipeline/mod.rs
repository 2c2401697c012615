//! The ingestion pipeline: validate → enrich → dedup/idempotency → bounded buffer → flusher →
//! storage. Transports call [`Pipeline`] through [`crate::api`]; nothing here knows about
//! JSON-RPC or HTTP.

pub mod background;
pub mod buffer;
pub mod clock;
pub mod compaction;
pub mod consent;
pub mod dedup;
pub mod durability;
pub mod enrichment;
pub mod flusher;
pub mod live;
pub mod retention;
pub mod stats;
pub mod validation;
mod writer_thread;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{
    Caller, ConsentSubject, EventRecord, RequestContext, TrackEventOutput, TrackStatus,
};
use crate::storage::{EventStore, StorageError};
use buffer::{Buffer, BufferFull};
use clock::Clock;
use dedup::{FingerprintParts, TtlCache, fingerprint};
pub use durability::AckMode;
use durability::{Waiters, Written};
use flusher::{Command, FlushError, FlushReport, FlushSettings, Flusher};
use live::relay::Relay;
use live::{LiveEncoder, LiveHub};
use stats::{PoolReport, Stats, StatsConfig, StatsReport};
use validation::{BusinessRules, ValidEvent};

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

/// Why the pipeline could not take an event or a command.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    BufferFull(#[from] BufferFull),
    #[error("flush failed: {0}")]
    FlushFailed(#[from] FlushError),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A durable request's event was not committed in time; it stays buffered.
    #[error("not committed within {0:?}")]
    NotYetDurable(Duration),
    /// The database refused the event itself; it was dead-lettered.
    #[error("the database refused the event: {0}")]
    Refused(String),
    #[error("unknown acknowledgement mode {0:?} (use buffered or durable)")]
    UnknownAckMode(String),
    /// A consent decision could not be written to the database.
    #[error("consent not saved: {0}")]
    ConsentNotSaved(#[source] StorageError),
    /// The idempotency key could not be checked against the database.
    #[error("idempotency key check failed: {0}")]
    KeyCheckFailed(#[source] StorageError),
}

/// The running pipeline, shared by every request.
pub struct Pipeline {
    config: PipelineConfig,
    buffer: Arc<Buffer>,
    waiters: Arc<Waiters>,
    stats: Arc<Stats>,
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
        let stats = Arc::new(Stats::default());
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

    /// Stamps the caller's identity on a valid event, gives it an id, and buffers it, unless
    /// it repeats an idempotency key (`replayed`) or a recent event (`duplicate`).
    ///
    /// Only events with an idempotency key wait for the database: their key is claimed there,
    /// atomically, so that a repeat finds the original on any node and after restarts.
    pub async fn accept(
        &self,
        valid: ValidEvent,
        caller: &Caller,
        context: &RequestContext,
    ) -> Result<TrackEventOutput, PipelineError> {
        let ack = match context.ack.as_deref() {
            None => self.config.ack,
            Some(value) => AckMode::parse(value)
                .ok_or_else(|| PipelineError::UnknownAckMode(value.to_owned()))?,
        };
        if self.is_suppressed(&valid, caller, context) {
            Stats::add(&self.stats.suppressed, 1);
            return Ok(TrackEventOutput {
                event_id: None,
                tracked: false,
                status: TrackStatus::Suppressed,
            });
        }
        let (record, fingerprint) = self.record(valid, caller, context);
        let id = record.id;
        let key = record.idempotency_key;
        if let Some(key) = key {
            if let Some(original) = self.recent_keys.get(&key) {
                return Ok(self.replayed(original));
            }
            // The claim decides who owns the key, so the fingerprint cache below only ever
            // holds events that own their key.
            let owner = self
                .store
                .claim_idempotency_key(key, id)
                .await
                .map_err(PipelineError::KeyCheckFailed)?;
            self.recent_keys.set(key, owner);
            if owner != id {
                return Ok(self.replayed(owner));
            }
        }
        let earlier = fingerprint
            .and_then(|fingerprint| self.recent_fingerprints.insert_if_absent(fingerprint, id));
        if let Some(original) = earlier {
            self.release_key(key, id).await;
            return Ok(self.duplicate(original));
        }
        let commit = (ack == AckMode::Durable).then(|| self.waiters.register(id));
        let live = self.live_encoder.encode(&record);
        if let Err(full) = self.buffer.push(record) {
            self.waiters.cancel(id);
            if let Some(fingerprint) = &fingerprint {
                self.recent_fingerprints.remove_if(fingerprint, &id);
            }
            self.release_key(key, id).await;
            return Err(full.into());
        }
        Stats::add(&self.stats.accepted, 1);
        self.publish_live(live);
        if let Some(commit) = commit {
            self.waiters.announce();
            match tokio::time::timeout(self.config.durable_timeout, commit).await {
                Ok(Ok(Written::Committed)) => {}
                Ok(Ok(Written::DeadLettered(error))) => return Err(PipelineError::Refused(error)),
                Ok(Err(_)) => return Err(PipelineError::ShuttingDown),
                Err(_) => {
                    self.waiters.cancel(id);
                    return Err(PipelineError::NotYetDurable(self.config.durable_timeout));
                }
            }
        }
        Ok(TrackEventOutput {
            event_id: Some(id),
            tracked: true,
            status: TrackStatus::Accepted,
        })
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

    /// Opted-out sessions and users, and bots when they are dropped, are not stored.
    fn is_suppressed(&self, valid: &ValidEvent, caller: &Caller, context: &RequestContext) -> bool {
        if self.config.drop_bots && self.enricher.is_bot(context.user_agent.as_deref()) {
            return true;
        }
        if self.opted_out.is_empty() {
            return false;
        }
        let user = caller
            .user_id()
            .map(|user| ConsentSubject::User(user.to_owned()));
        let session = valid
            .input
            .session_id
            .as_deref()
            .map(|session| ConsentSubject::Session(session.to_ascii_lowercase()));
        self.opted_out.any_of([user, session].into_iter().flatten())
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

    /// Gives back the key `id` claimed, when `id` is not going to be stored after all.
    async fn release_key(&self, key: Option<Uuid>, id: Uuid) {
        let Some(key) = key else { return };
        self.recent_keys.remove_if(&key, &id);
        if let Err(error) = self.store.release_idempotency_key(key, id).await {
            tracing::warn!(%error, "could not release the idempotency key of an event not stored");
        }
    }

    fn replayed(&self, original: Uuid) -> TrackEventOutput {
        Stats::add(&self.stats.replayed, 1);
        TrackEventOutput {
            event_id: Some(original),
            tracked: true,
            status: TrackStatus::Replayed,
        }
    }

    fn duplicate(&self, original: Uuid) -> TrackEventOutput {
        Stats::add(&self.stats.duplicates, 1);
        TrackEventOutput {
            event_id: Some(original),
            tracked: false,
            status: TrackStatus::Duplicate,
        }
    }

    /// The event as it is stored, with the in-memory key of its fingerprint.
    fn record(
        &self,
        valid: ValidEvent,
        caller: &Caller,
        context: &RequestContext,
    ) -> (EventRecord, Option<[u8; 16]>) {
        let ValidEvent {
            input,
            props,
            occurred_at,
            received_at,
        } = valid;
        let identity = caller.identity_for(input.user_id.as_deref());
        let mut attribution = input.attribution.unwrap_or_default();
        let enrichment = if self.config.enable_enrichment {
            self.enricher.enrich(context, &mut attribution)
        } else {
            Default::default()
        };
        let fingerprint = self.config.enable_deduplication.then(|| {
            let client_ip = context.client_ip.map(|ip| ip.to_string());
            fingerprint(&FingerprintParts {
                event_type: &input.event_type,
                user_id: identity.user_id.as_deref(),
                entity_id: input.entity_id.as_deref(),
                session_id: input.session_id.as_deref(),
                props: input.props.as_ref(),
                occurred_at,
                client_ip: client_ip.as_deref(),
                user_agent: context.user_agent.as_deref(),
            })
        });
        let record = EventRecord {
            id: crate::domain::new_event_id(),
            event_type: input.event_type,
            source: input.source.as_str().to_owned(),
            actor_id: identity.actor_id,
            actor_type: Some(identity.actor_type),
            user_id: identity.user_id,
            creator_id: identity.creator_id,
            brand_id: identity.brand_id,
            entity_id: input.entity_id,
            entity_type: input.entity_type.map(|t| t.as_str().to_owned()),
            session_id: input
                .session_id
                .as_deref()
                .and_then(|s| Uuid::try_parse(s).ok()),
            props,
            attribution,
            idempotency_key: input
                .idempotency_key
                .as_deref()
                .and_then(|k| Uuid::try_parse(k).ok()),
            dedup_fingerprint: fingerprint.map(|fingerprint| fingerprint.to_stored()),
            occurred_at,
            received_at,
            enrichment,
        };
        (
            record,
            fingerprint.map(|fingerprint| fingerprint.cache_key()),
        )
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::pipeline::clock::SystemClock;
    use crate::storage::MemoryStore;

    fn start(capacity: usize) -> (Arc<Pipeline>, FlusherHandle, Arc<MemoryStore>) {
        let mut config = PipelineConfig::default();
        config.flush.batch_size = capacity;
        config.buffer_capacity = capacity;
        let store = Arc::new(MemoryStore::default());
        let (pipeline, flusher) = Pipeline::start(config, store.clone(), Arc::new(SystemClock));
        (pipeline, flusher, store)
    }

    async fn track(
        pipeline: &Pipeline,
        input: serde_json::Value,
    ) -> Result<TrackEventOutput, PipelineError> {
        track_in(pipeline, input, &RequestContext::default()).await
    }

    async fn track_in(
        pipeline: &Pipeline,
        input: serde_json::Value,
        context: &RequestContext,
    ) -> Result<TrackEventOutput, PipelineError> {
        let valid = pipeline
            .validate(Some(input), pipeline.now(), &Caller::Anonymous)
            .expect("valid");
        pipeline.accept(valid, &Caller::Anonymous, context).await
    }

    /// The flusher is woken only once a durable event is in the buffer: woken earlier, it
    /// could find the buffer empty and leave the event to the (here hour-long) batch timer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_durable_event_is_committed_without_the_batch_timer() {
        let mut config = PipelineConfig::default();
        config.flush.batch_timeout = Duration::from_secs(3600);
        config.durable_timeout = Duration::from_secs(5);
        let store = Arc::new(MemoryStore::default());
        let (pipeline, _flusher) = Pipeline::start(config, store.clone(), Arc::new(SystemClock));
        let durable = RequestContext {
            ack: Some("durable".into()),
            ..RequestContext::default()
        };
        for n in 0..300 {
            let answer = track_in(
                &pipeline,
                json!({"eventType": "x", "props": {"n": n}}),
                &durable,
            )
            .await;
            assert_eq!(answer.expect("committed").status, TrackStatus::Accepted);
        }
        assert_eq!(store.count_events().await.expect("count"), 300);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_that_cannot_be_checked_is_refused_not_faked() {
        let (pipeline, _flusher, store) = start(100);
        store.set_unavailable(true);
        let key = Uuid::now_v7();
        let refused = track(&pipeline, json!({"eventType": "x", "idempotencyKey": key})).await;
        assert!(
            matches!(refused, Err(PipelineError::KeyCheckFailed(_))),
            "{refused:?}"
        );
        assert_eq!(pipeline.buffer_len(), 0);
        store.set_unavailable(false);
        let retried = track(&pipeline, json!({"eventType": "x", "idempotencyKey": key})).await;
        assert_eq!(retried.expect("accepted").status, TrackStatus::Accepted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_event_gives_its_key_back() {
        let (pipeline, _flusher, store) = start(2);
        store.set_writes_failing(true);
        for n in 0..2 {
            track(&pipeline, json!({"eventType": "fill", "props": {"n": n}}))
                .await
                .expect("room");
        }
        tokio::task::yield_now().await;
        let key = Uuid::now_v7();
        let keyed = json!({"eventType": "x", "idempotencyKey": key});
        let refused = track(&pipeline, keyed.clone()).await;
        assert!(
            matches!(refused, Err(PipelineError::BufferFull(_))),
            "{refused:?}"
        );
        assert!(!store.key_claimed(key), "the key is free for the retry");

        store.set_writes_failing(false);
        pipeline.force_flush().await.expect("flush");
        let retried = track(&pipeline, keyed).await.expect("accepted");
        assert_eq!(
            retried.status,
            TrackStatus::Accepted,
            "not a replay of an event never stored"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_duplicate_with_a_new_key_gives_the_key_back() {
        let (pipeline, _flusher, store) = start(100);
        let at = chrono::Utc::now().to_rfc3339();
        let first = track(
            &pipeline,
            json!({"eventType": "x", "props": {"occurred_at": at}}),
        )
        .await
        .expect("accepted");
        let key = Uuid::now_v7();
        let repeat = track(
            &pipeline,
            json!({"eventType": "x", "idempotencyKey": key, "props": {"occurred_at": at}}),
        )
        .await
        .expect("answered");
        assert_eq!(repeat.status, TrackStatus::Duplicate);
        assert_eq!(repeat.event_id, first.event_id);
        assert!(!store.key_claimed(key));
    }
}
