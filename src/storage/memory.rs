//! An in-memory store for pipeline tests, with a switch to make writes fail like a database
//! outage. It keeps the whole [`EventStore`] contract — uniqueness by id, fingerprint and
//! idempotency key, opt-outs applied inside the write, the session fold, key claims, dead
//! letters, row counts — and `tests/integration/storage_contract.rs` holds it to the same
//! suite as the databases.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::reports::{NewSegment, segment::hour_of, segments_of_written};
use super::{
    Backend, ConsentDecision, Expiring, PoolStatus, SegmentInfo, SegmentListing, SessionRecord,
    StorageError,
};
use crate::domain::{ConsentSubject, EventRecord};

/// Events in a `Vec`, for tests that exercise the pipeline without a database.
#[derive(Default)]
pub struct MemoryStore {
    events: Mutex<Vec<EventRecord>>,
    idempotency_keys: Mutex<HashMap<Uuid, Uuid>>,
    /// Each subject's latest decision and when it was made.
    consents: Mutex<HashMap<ConsentSubject, (bool, DateTime<Utc>)>>,
    /// Consent rows read by `consent_decisions` so far.
    consent_rows_read: AtomicUsize,
    sessions: Mutex<HashMap<Uuid, SessionRecord>>,
    dead_letters: Mutex<Vec<Uuid>>,
    /// Metric segments with their ids, in the order written.
    segments: Mutex<Vec<(i64, NewSegment)>>,
    next_segment_id: std::sync::atomic::AtomicI64,
    unavailable: AtomicBool,
    writes_failing: AtomicBool,
}

impl MemoryStore {
    /// Makes every later call fail with [`StorageError::Unavailable`] (or succeed again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Makes only event writes fail (claims still work), like a poisoned table.
    pub fn set_writes_failing(&self, failing: bool) {
        self.writes_failing.store(failing, Ordering::SeqCst);
    }

    /// Whether `key` is currently claimed.
    pub fn key_claimed(&self, key: Uuid) -> bool {
        self.idempotency_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&key)
    }

    /// Records a decision as made at `at` (for tests of what a refresh reads).
    pub fn set_consent_at(&self, subject: &ConsentSubject, granted: bool, at: DateTime<Utc>) {
        relock(&self.consents).insert(subject.clone(), (granted, at));
    }

    /// Consent rows read so far.
    pub fn consent_rows_read(&self) -> usize {
        self.consent_rows_read.load(Ordering::Relaxed)
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<EventRecord>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn store_segments(&self, new: impl IntoIterator<Item = NewSegment>) {
        let mut segments = relock(&self.segments);
        for segment in new {
            let id = self.next_segment_id.fetch_add(1, Ordering::SeqCst);
            segments.push((id, segment));
        }
    }

    fn check_available(&self) -> Result<(), StorageError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(StorageError::Unavailable(
                "memory store switched off".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// A lock whatever a panicking holder left behind: every value here stays consistent
/// between statements.
fn relock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl super::EventWrites for MemoryStore {
    async fn insert_events(&self, batch: &[EventRecord]) -> Result<usize, StorageError> {
        self.check_available()?;
        if self.writes_failing.load(Ordering::SeqCst) {
            return Err(StorageError::Unavailable(
                "memory store writes switched off".into(),
            ));
        }
        let opted_out: Vec<ConsentSubject> = {
            let consents = self.consents.lock().unwrap_or_else(|p| p.into_inner());
            consents
                .iter()
                .filter(|(_, (granted, _))| !*granted)
                .map(|(subject, _)| subject.clone())
                .collect()
        };
        let kept = super::without_opted_out(batch, &opted_out);
        let mut events = self.lock();
        let mut written = Vec::new();
        for event in kept {
            // The same uniqueness rules as the databases' indexes.
            let clash = events.iter().any(|stored| {
                stored.id == event.id
                    || (event.dedup_fingerprint.is_some()
                        && stored.dedup_fingerprint == event.dedup_fingerprint)
                    || (event.idempotency_key.is_some()
                        && stored.idempotency_key == event.idempotency_key)
            });
            if !clash {
                events.push(event.clone());
                written.push(event);
            }
        }
        self.store_segments(segments_of_written(&written));
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for row in super::sessions::fold(written.iter().copied()) {
            match sessions.get_mut(&row.id) {
                Some(stored) => stored.merge(row),
                None => {
                    sessions.insert(row.id, row);
                }
            }
        }
        Ok(written.len())
    }

    async fn dead_letter(&self, event: &EventRecord, _error: &str) -> Result<(), StorageError> {
        self.check_available()?;
        let mut dead = self.dead_letters.lock().unwrap_or_else(|p| p.into_inner());
        if !dead.contains(&event.id) {
            dead.push(event.id);
        }
        Ok(())
    }
}

#[async_trait]
impl super::KeyClaims for MemoryStore {
    async fn claim_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<Uuid, StorageError> {
        self.check_available()?;
        let mut keys = self
            .idempotency_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok(*keys.entry(key).or_insert(event_id))
    }

    async fn release_idempotency_key(&self, key: Uuid, event_id: Uuid) -> Result<(), StorageError> {
        self.check_available()?;
        let mut keys = self
            .idempotency_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if keys.get(&key) == Some(&event_id) {
            keys.remove(&key);
        }
        Ok(())
    }
}

#[async_trait]
impl super::Consents for MemoryStore {
    async fn set_consent(
        &self,
        subject: &ConsentSubject,
        granted: bool,
    ) -> Result<(), StorageError> {
        self.check_available()?;
        self.set_consent_at(subject, granted, Utc::now());
        Ok(())
    }

    async fn consent_decisions(
        &self,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<ConsentDecision>, StorageError> {
        self.check_available()?;
        let consents = relock(&self.consents);
        let mut chosen: Vec<(&ConsentSubject, &(bool, DateTime<Utc>))> = consents
            .iter()
            .filter(|(_, (granted, at))| since.map_or(!granted, |since| *at >= since))
            .collect();
        chosen.sort_by_key(|(_, (_, at))| std::cmp::Reverse(*at));
        chosen.truncate(limit);
        self.consent_rows_read
            .fetch_add(chosen.len(), Ordering::Relaxed);
        Ok(chosen
            .into_iter()
            .map(|(subject, (granted, _))| ConsentDecision {
                subject: subject.clone(),
                granted: *granted,
            })
            .collect())
    }
}

#[async_trait]
impl super::Segments for MemoryStore {
    async fn metric_segments(&self, start: i64, end: i64) -> Result<Vec<Vec<u8>>, StorageError> {
        self.check_available()?;
        let segments = relock(&self.segments);
        let mut found: Vec<&(i64, NewSegment)> = segments
            .iter()
            .filter(|(_, segment)| (start..end).contains(&segment.hour_start))
            .collect();
        found.sort_by_key(|(id, segment)| (segment.hour_start, *id));
        Ok(found
            .into_iter()
            .map(|(_, segment)| segment.data.clone())
            .collect())
    }

    async fn metric_segment_list(
        &self,
        listing: SegmentListing,
    ) -> Result<Vec<SegmentInfo>, StorageError> {
        self.check_available()?;
        let segments = relock(&self.segments);
        let mut per_hour: HashMap<i64, usize> = HashMap::new();
        for (_, segment) in segments.iter() {
            *per_hour.entry(segment.hour_start).or_default() += 1;
        }
        let listed = |hour: i64| match listing {
            SegmentListing::Crowded => per_hour.get(&hour).is_some_and(|count| *count > 1),
            SegmentListing::Hour(wanted) => hour == wanted,
        };
        let mut infos: Vec<SegmentInfo> = segments
            .iter()
            .filter(|(_, segment)| listed(segment.hour_start))
            .map(|(id, segment)| SegmentInfo {
                id: *id,
                hour_start: segment.hour_start,
                events: segment.events,
            })
            .collect();
        infos.sort_by_key(|info| (info.hour_start, info.id));
        Ok(infos)
    }

    async fn read_metric_segments(&self, ids: &[i64]) -> Result<Vec<Vec<u8>>, StorageError> {
        self.check_available()?;
        Ok(relock(&self.segments)
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(_, segment)| segment.data.clone())
            .collect())
    }

    async fn replace_metric_segments(
        &self,
        ids: &[i64],
        with: Option<&NewSegment>,
    ) -> Result<bool, StorageError> {
        self.check_available()?;
        {
            let mut segments = relock(&self.segments);
            let present = segments.iter().filter(|(id, _)| ids.contains(id)).count();
            if present != ids.len() {
                return Ok(false);
            }
            segments.retain(|(id, _)| !ids.contains(id));
        }
        self.store_segments(with.cloned());
        Ok(true)
    }
}

#[async_trait]
impl super::Maintenance for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    async fn delete_expired(
        &self,
        what: Expiring,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, StorageError> {
        self.check_available()?;
        // The ids of at most `limit` of `rows` before `cutoff`, oldest first.
        let oldest = |rows: &mut dyn Iterator<Item = (DateTime<Utc>, Uuid)>| {
            let mut old: Vec<_> = rows.filter(|(at, _)| *at < cutoff).collect();
            old.sort_unstable();
            old.truncate(limit);
            old.into_iter()
                .map(|(_, id)| id)
                .collect::<std::collections::HashSet<Uuid>>()
        };
        let doomed = match what {
            Expiring::Events => {
                let mut events = self.lock();
                let doomed = oldest(&mut events.iter().map(|event| (event.occurred_at, event.id)));
                events.retain(|event| !doomed.contains(&event.id));
                doomed
            }
            Expiring::Sessions => {
                let mut sessions = relock(&self.sessions);
                let doomed = oldest(
                    &mut sessions
                        .values()
                        .map(|session| (session.last_seen_at, session.id)),
                );
                sessions.retain(|id, _| !doomed.contains(id));
                doomed
            }
            Expiring::MetricSegments => {
                let mut segments = relock(&self.segments);
                let mut old: Vec<(i64, i64)> = segments
                    .iter()
                    .filter(|(_, segment)| segment.hour_start < hour_of(cutoff))
                    .map(|(id, segment)| (segment.hour_start, *id))
                    .collect();
                old.sort_unstable();
                old.truncate(limit);
                let doomed: std::collections::HashSet<i64> =
                    old.into_iter().map(|(_, id)| id).collect();
                segments.retain(|(id, _)| !doomed.contains(id));
                return Ok(doomed.len());
            }
        };
        Ok(doomed.len())
    }

    async fn run_migrations(&self) -> Result<usize, StorageError> {
        Ok(0)
    }

    async fn pending_migrations(&self) -> Result<usize, StorageError> {
        Ok(0)
    }

    async fn count_rows(&self, table: &'static str) -> Result<i64, StorageError> {
        self.check_available()?;
        let count = |len: usize| Ok(len as i64);
        match table {
            "events" => count(self.lock().len()),
            "sessions" => count(relock(&self.sessions).len()),
            "idempotency_keys" => count(relock(&self.idempotency_keys).len()),
            "consents" => count(relock(&self.consents).len()),
            "dead_letters" => count(relock(&self.dead_letters).len()),
            "metric_segments" => count(relock(&self.segments).len()),
            other => Err(StorageError::Query(
                diesel::result::Error::QueryBuilderError(format!("no table {other}").into()),
            )),
        }
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.check_available()
    }

    fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            max_size: 1,
            size: 1,
            available: 1,
            waiting: 0,
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
#[async_trait]
impl super::StoredReads for MemoryStore {
    async fn find_event(&self, id: Uuid) -> Result<Option<EventRecord>, StorageError> {
        self.check_available()?;
        Ok(self.lock().iter().find(|event| event.id == id).cloned())
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StorageError> {
        self.check_available()?;
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(sessions.get(&id).cloned())
    }

    async fn count_events(&self) -> Result<i64, StorageError> {
        self.check_available()?;
        Ok(self.lock().len() as i64)
    }

    async fn count_dead_letters(&self) -> Result<i64, StorageError> {
        Ok(self
            .dead_letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len() as i64)
    }
}
