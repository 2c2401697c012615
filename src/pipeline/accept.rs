//! The accept path of one valid event, as named steps: claim its idempotency key, check
//! the dedup cache, buffer it (and show it live), and for a durable request await its
//! commit. Also what an event is stored as (`record`): the caller's identity, enrichment
//! and the fingerprint.

use tokio::sync::oneshot;
use uuid::Uuid;

use super::dedup::{FingerprintParts, fingerprint};
use super::durability::{AckMode, Written};
use super::enrichment::Sender;
use super::stats::Stats;
use super::validation::ValidEvent;
use super::{Pipeline, PipelineError};
use crate::domain::{
    Caller, ConsentSubject, EventRecord, RequestContext, TrackEventOutput, TrackStatus,
};

impl Pipeline {
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
        let ack = self.ack_mode(context)?;
        if self.is_suppressed(&valid, caller, context) {
            return Ok(self.suppressed());
        }
        let (record, fingerprint) = self.record(valid, caller, context);
        let (id, key) = (record.id, record.idempotency_key);
        if let Some(owner) = self.claim_key(key, id).await? {
            return Ok(self.replayed(owner));
        }
        if let Some(original) = self.check_duplicate(fingerprint, id) {
            self.release_key(key, id).await;
            return Ok(self.duplicate(original));
        }
        let commit = self.buffer_event(record, fingerprint, ack).await?;
        if let Some(commit) = commit {
            self.await_commit(id, commit).await?;
        }
        Ok(TrackEventOutput {
            event_id: Some(id),
            tracked: true,
            status: TrackStatus::Accepted,
        })
    }

    /// The acknowledgement the request asked for (`x-sluice-ack`), else the default.
    fn ack_mode(&self, context: &RequestContext) -> Result<AckMode, PipelineError> {
        match context.ack.as_deref() {
            None => Ok(self.config.ack),
            Some(value) => {
                AckMode::parse(value).ok_or_else(|| PipelineError::UnknownAckMode(value.to_owned()))
            }
        }
    }

    /// Claims the event's idempotency key, if it has one: the original event's id when the
    /// key belongs to another event (here or on any node), `None` when `id` owns it now.
    /// The claim decides who owns the key, so the fingerprint cache after it only ever
    /// holds events that own their key.
    async fn claim_key(&self, key: Option<Uuid>, id: Uuid) -> Result<Option<Uuid>, PipelineError> {
        let Some(key) = key else { return Ok(None) };
        if let Some(original) = self.recent_keys.get(&key) {
            return Ok(Some(original));
        }
        let owner = self
            .store
            .claim_idempotency_key(key, id)
            .await
            .map_err(PipelineError::KeyCheckFailed)?;
        self.recent_keys.set(key, owner);
        Ok((owner != id).then_some(owner))
    }

    /// The id of a recent event with the same fingerprint; else remembers this one.
    fn check_duplicate(&self, fingerprint: Option<[u8; 16]>, id: Uuid) -> Option<Uuid> {
        fingerprint
            .and_then(|fingerprint| self.recent_fingerprints.insert_if_absent(fingerprint, id))
    }

    /// Puts the event in the buffer and shows it live; a refused event gives back its place
    /// in the dedup cache and its key. A durable event's commit is returned to wait for.
    async fn buffer_event(
        &self,
        record: EventRecord,
        fingerprint: Option<[u8; 16]>,
        ack: AckMode,
    ) -> Result<Option<oneshot::Receiver<Written>>, PipelineError> {
        let (id, key) = (record.id, record.idempotency_key);
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
        if commit.is_some() {
            self.waiters.announce();
        }
        Ok(commit)
    }

    /// Waits for a durable event's commit, up to the durable timeout (it stays buffered).
    async fn await_commit(
        &self,
        id: Uuid,
        commit: oneshot::Receiver<Written>,
    ) -> Result<(), PipelineError> {
        match tokio::time::timeout(self.config.durable_timeout, commit).await {
            Ok(Ok(Written::Committed)) => Ok(()),
            Ok(Ok(Written::DeadLettered(error))) => Err(PipelineError::Refused(error)),
            Ok(Err(_)) => Err(PipelineError::ShuttingDown),
            Err(_) => {
                self.waiters.cancel(id);
                Err(PipelineError::NotYetDurable(self.config.durable_timeout))
            }
        }
    }

    fn suppressed(&self) -> TrackEventOutput {
        Stats::add(&self.stats.suppressed, 1);
        TrackEventOutput {
            event_id: None,
            tracked: false,
            status: TrackStatus::Suppressed,
        }
    }

    /// Opted-out sessions and users, and bots when they are dropped, are not stored.
    fn is_suppressed(&self, valid: &ValidEvent, caller: &Caller, context: &RequestContext) -> bool {
        let sender = Sender::of(valid.input.source, caller);
        if self.config.drop_bots && self.enricher.is_bot(context.user_agent.as_deref(), sender) {
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
            let sender = Sender::of(input.source, caller);
            self.enricher.enrich(context, sender, &mut attribution)
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use std::time::Duration;

    use crate::pipeline::clock::SystemClock;
    use crate::pipeline::{FlusherHandle, PipelineConfig};
    use crate::storage::MemoryStore;
    use crate::storage::roles::*;

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
