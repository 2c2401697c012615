//! The bounded in-memory buffer between acceptance and the flusher.
//!
//! Events wait here packed (postcard): a record's thirty-odd fields take about 750 bytes
//! inline plus their strings, its packed bytes about a third of that, and a full buffer
//! (100 000 events by default) is most of the memory Sluice uses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::domain::EventRecord;

/// The share of its capacity at which the buffer is critical: health says so, and an
/// overload counts as over only once the buffer is below it again.
pub const CRITICAL_FILL: f64 = 0.9;

/// The buffer is full: the event was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event buffer is full ({capacity} events)")]
pub struct BufferFull {
    pub capacity: usize,
}

/// Accepted events waiting to be written, oldest first, and those being written.
///
/// A plain mutex is enough: every critical section is a push or a pop of a few pointers, and
/// nothing awaits while holding it.
pub struct Buffer {
    queue: Mutex<VecDeque<Slot>>,
    /// Events taken by the flusher and not yet written or put back: still held in memory,
    /// so they count against the capacity and in what the buffer reports.
    in_flight: AtomicUsize,
    capacity: usize,
    batch_size: usize,
    batch_ready: Notify,
    /// Signalled when a write gives up events: room for callers waiting at the door, woken
    /// one per event given up, oldest first, so a write costs what it freed, not the number
    /// of callers waiting (at most one per open connection).
    room: Notify,
    /// Callers waiting for room now.
    waiting: AtomicUsize,
    /// Times a waiting caller was woken, for the tests that pin the cost of a write.
    wakeups: AtomicU64,
    /// Whether the buffer has refused an event since it was last below 90 % full: an
    /// overload is logged once when it starts and once when it is over, not for every
    /// refused request.
    refusing: AtomicBool,
}

impl Buffer {
    pub fn new(capacity: usize, batch_size: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::with_capacity(batch_size.min(capacity))),
            in_flight: AtomicUsize::new(0),
            capacity,
            batch_size,
            batch_ready: Notify::new(),
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            wakeups: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
        }
    }

    /// Adds an event, or refuses it when the buffer is at capacity.
    ///
    /// Packing and unpacking happen outside the lock: held across the flusher's unpacking of a
    /// 500-event batch, it kept request handlers waiting, their cores idle, for a millisecond.
    pub fn push(&self, event: EventRecord) -> Result<(), BufferFull> {
        let slot = Slot::pack(event);
        let (len, queued) = {
            let mut queue = self.lock();
            let held = queue.len() + self.in_flight.load(Ordering::Relaxed);
            if held >= self.capacity {
                return Err(self.refuse());
            }
            queue.push_back(slot);
            (held + 1, queue.len())
        };
        // Under a steady overload the buffer is full again a few milliseconds after each
        // write; an episode ends only once it is no longer critical, not at every write.
        if self.refusing.load(Ordering::Relaxed)
            && (len as f64) < self.capacity as f64 * CRITICAL_FILL
            && self.refusing.swap(false, Ordering::Relaxed)
        {
            tracing::info!(len, "event buffer has room again; accepting events");
        }
        if queued >= self.batch_size {
            self.batch_ready.notify_one();
        }
        Ok(())
    }

    /// Takes up to `max` of the oldest events for writing. They stay counted as held until
    /// [`Buffer::written`] or [`Buffer::requeue_front`] gives them up.
    pub fn take(&self, max: usize) -> Vec<EventRecord> {
        let slots: Vec<Slot> = {
            let mut queue = self.lock();
            let count = max.min(queue.len());
            self.in_flight.fetch_add(count, Ordering::Relaxed);
            queue.drain(..count).collect()
        };
        let taken = slots.len();
        let events: Vec<EventRecord> = slots.into_iter().filter_map(Slot::unpack).collect();
        // An event that could not be unpacked is gone (and logged); it is no longer held.
        self.written(taken - events.len());
        events
    }

    /// The `count` events last taken are written (or dead-lettered): no longer held.
    pub fn written(&self, count: usize) {
        {
            let _queue = self.lock();
            self.in_flight.fetch_sub(count, Ordering::Relaxed);
        }
        // Read after the room was made (and a waiter counts itself before it looks for
        // room): a caller either sees the room or is counted here.
        let waiting = self.waiting.load(Ordering::SeqCst);
        for _ in 0..count.min(waiting) {
            self.room.notify_one();
        }
    }

    /// Puts events whose write failed back in front, in their original order. They were
    /// already acknowledged, so capacity does not apply to them.
    pub fn requeue_front(&self, events: Vec<EventRecord>) {
        let count = events.len();
        let slots: Vec<Slot> = events.into_iter().map(Slot::pack).collect();
        let mut queue = self.lock();
        for slot in slots.into_iter().rev() {
            queue.push_front(slot);
        }
        self.in_flight.fetch_sub(count, Ordering::Relaxed);
    }

    /// Every event held in memory: waiting, or being written.
    pub fn len(&self) -> usize {
        let queue = self.lock();
        queue.len() + self.in_flight.load(Ordering::Relaxed)
    }

    /// Events waiting to be taken.
    fn queued(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses at once when the buffer is at capacity, so that a caller under overload is
    /// turned away before its events are validated and enriched for nothing.
    pub fn check_room(&self) -> Result<(), BufferFull> {
        if self.len() >= self.capacity {
            return Err(self.refuse());
        }
        Ok(())
    }

    /// Waits up to `patience` for room when the buffer is at capacity, then refuses.
    ///
    /// Under a flood, the flusher makes room with every write (tens of milliseconds); a
    /// caller that waits for it is accepted instead of refused, and while it waits it costs
    /// no CPU. Refusing at once made closed-loop clients come straight back: the cores went
    /// to parsing and refusing requests, and the writer, starved of them, fell further behind.
    pub async fn wait_for_room(&self, patience: std::time::Duration) -> Result<(), BufferFull> {
        if self.len() < self.capacity {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + patience;
        let _waiting = Waiting::count(&self.waiting);
        loop {
            // Registered before the check, so that a write between the two is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.len() < self.capacity {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return self.check_room();
            }
            self.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn refuse(&self) -> BufferFull {
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity = self.capacity,
                "event buffer is full: new events are refused until the flusher makes room"
            );
        }
        BufferFull {
            capacity: self.capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn has_full_batch(&self) -> bool {
        self.queued() >= self.batch_size
    }

    /// Resolves when a push has filled a batch (immediately if one did since the last wait).
    pub async fn batch_ready(&self) {
        self.batch_ready.notified().await;
    }

    /// Times a waiting caller was woken so far.
    #[cfg(test)]
    fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Slot>> {
        // A panic while holding the lock cannot leave the deque half-updated.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counts a caller as waiting for as long as it waits, however its wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Self(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
/// One buffered event, packed; kept whole in the (unexpected) case that it cannot be packed.
enum Slot {
    Packed(Box<[u8]>),
    Whole(Box<EventRecord>),
}

impl Slot {
    fn pack(event: EventRecord) -> Self {
        match postcard::to_allocvec(&event) {
            // Copied into an allocation of their exact size: the vector that postcard grew
            // has room for up to twice as many bytes, and shrinking it in place keeps that.
            Ok(bytes) => Self::Packed(Box::from(bytes.as_slice())),
            Err(_) => Self::Whole(Box::new(event)),
        }
    }

    fn unpack(self) -> Option<EventRecord> {
        match self {
            Self::Whole(event) => Some(*event),
            // Bytes that `pack` wrote from a record always read back (the round-trip tests
            // below pin it); a failure would be a bug, and is reported rather than hidden.
            Self::Packed(bytes) => match postcard::from_bytes(&bytes) {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::error!(%error, bytes = bytes.len(), "a buffered event could not be unpacked; it is lost");
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::event;

    #[test]
    fn refuses_past_capacity_and_keeps_order_on_requeue() {
        let buffer = Buffer::new(3, 2);
        let events: Vec<_> = (0..3).map(|_| event("e")).collect();
        for e in &events {
            buffer.push(e.clone()).expect("room");
        }
        assert_eq!(buffer.push(event("e")), Err(BufferFull { capacity: 3 }));
        let taken = buffer.take(2);
        assert_eq!(buffer.len(), 3, "events being written are still held");
        assert_eq!(buffer.push(event("e")), Err(BufferFull { capacity: 3 }));
        buffer.requeue_front(taken);
        assert_eq!(buffer.len(), 3);
        let ids: Vec<_> = buffer.take(10).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
    }

    /// Writes what a subscriber logs into a shared buffer, for the test to read.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_buffer_is_logged_once_per_episode_not_per_refusal() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let buffer = Buffer::new(10, 10);
            let fill = |buffer: &Buffer| {
                while buffer.push(event("fill")).is_ok() {}
            };
            fill(&buffer);
            for _ in 0..5 {
                assert!(buffer.check_room().is_err());
                assert!(buffer.push(event("refused")).is_err());
            }
            // A write makes a little room, and the overload fills it at once: same episode.
            buffer.take(1);
            buffer.written(1);
            fill(&buffer);
            // The load subsides and the buffer drains: the episode ends; a new one can start.
            buffer.take(10);
            buffer.written(10);
            buffer.push(event("calm")).expect("room");
            fill(&buffer);
        });
        let text = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
        assert_eq!(text.matches("event buffer is full").count(), 2, "{text}");
        assert_eq!(text.matches("has room again").count(), 1, "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_at_a_full_buffer_waits_for_the_next_write() {
        let buffer = std::sync::Arc::new(Buffer::new(2, 2));
        buffer.push(event("a")).expect("room");
        buffer.push(event("b")).expect("room");
        let patience = std::time::Duration::from_millis(250);
        assert_eq!(
            buffer.wait_for_room(patience).await,
            Err(BufferFull { capacity: 2 }),
            "no write within its patience: refused"
        );
        let taken = buffer.take(2);
        let writer = {
            let buffer = buffer.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                buffer.written(taken.len());
            })
        };
        assert_eq!(buffer.len(), 2, "taken, not yet written");
        let started = tokio::time::Instant::now();
        assert_eq!(buffer.wait_for_room(patience).await, Ok(()));
        assert_eq!(started.elapsed(), std::time::Duration::from_millis(100));
        writer.await.expect("writer");
    }

    /// A write that frees one place wakes one of the callers waiting for it, not all of
    /// them: with 500 callers at the door, each write costs what it freed.
    #[tokio::test(start_paused = true)]
    async fn a_write_wakes_as_many_waiting_callers_as_it_made_room_for() {
        let buffer = std::sync::Arc::new(Buffer::new(10, 10));
        for _ in 0..10 {
            buffer.push(event("fill")).expect("room");
        }
        let patience = std::time::Duration::from_secs(60);
        let waiters: Vec<_> = (0..500)
            .map(|_| {
                let buffer = buffer.clone();
                tokio::spawn(async move {
                    buffer.wait_for_room(patience).await?;
                    buffer.push(event("in"))
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        for round in 1..=5u64 {
            let taken = buffer.take(2);
            buffer.written(taken.len());
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            assert!(
                buffer.wakeups() <= 2 * round,
                "{} wake-ups for {} places freed",
                buffer.wakeups(),
                2 * round
            );
            assert_eq!(
                buffer.len(),
                10,
                "each freed place was taken by a waiting caller"
            );
        }
        let admitted = waiters.iter().filter(|waiter| waiter.is_finished()).count();
        assert_eq!(admitted, 10);
        for waiter in waiters {
            waiter.abort();
        }
    }

    #[test]
    fn every_field_survives_packing() {
        let mut full = event("page_viewed");
        full.actor_id = Some("actor".into());
        full.user_id = Some("user-1".into());
        full.creator_id = Some("creator".into());
        full.brand_id = Some("brand".into());
        full.entity_id = Some("cjld2cjxh0000qzrmn831i7rn".into());
        full.entity_type = Some("asset".into());
        full.session_id = Some(uuid::Uuid::now_v7());
        full.props = serde_json::json!({"a": [1, 2.5, null, "x\u{0}"], "b": {"c": true}})
            .as_object()
            .cloned()
            .map(Into::into);
        full.attribution.utm_source = Some("newsletter".into());
        full.attribution.landing_page = Some("https://example.com/?utm_source=x".into());
        full.idempotency_key = Some(uuid::Uuid::now_v7());
        full.dedup_fingerprint = Some("1767261600-abc".into());
        full.enrichment = crate::domain::Enrichment {
            browser_name: Some("Firefox".into()),
            browser_version: Some("128.0".into()),
            os_name: Some("Linux".into()),
            os_version: None,
            device_type: Some("desktop".into()),
            is_bot: true,
            country: Some("DE".into()),
            region: Some("Berlin".into()),
            city: Some("Berlin".into()),
            ip_address: Some("203.0.113.0/24".into()),
            referrer_host: Some("news.example".into()),
        };
        let plain = event("signed_up");
        let buffer = Buffer::new(10, 10);
        buffer.push(full.clone()).expect("room");
        buffer.push(plain.clone()).expect("room");
        assert_eq!(buffer.take(10), vec![full, plain]);
    }
}
