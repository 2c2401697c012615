//! Deduplication: the event fingerprint and the in-memory caches that make "seen before?" an
//! atomic check-and-insert.
//!
//! Memory is only the fast path. The database holds unique indexes on the fingerprint and the
//! idempotency key, so a restart or a second node cannot double-insert (see `storage`).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// What identifies "the same event" for deduplication.
#[derive(Debug, Clone, Copy)]
pub struct FingerprintParts<'a> {
    pub event_type: &'a str,
    /// The authenticated user, `None` for anonymous callers.
    pub user_id: Option<&'a str>,
    pub entity_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub props: Option<&'a Map<String, Value>>,
    pub occurred_at: DateTime<Utc>,
    /// Only used for anonymous events without a session, so that different visitors
    /// sending the same event in the same second never collapse into one.
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The SHA-256 of an event's identifying parts, with the second of its event time (one of
/// those parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    second: i64,
    digest: [u8; 32],
}

impl Fingerprint {
    /// The in-memory key: the first 128 bits of the digest, ample to tell events apart at a
    /// fraction of the size of the text (bytes rather than a `u128`, whose 16-byte alignment
    /// would pad every cache entry).
    pub fn cache_key(&self) -> [u8; 16] {
        let mut half = [0; 16];
        half.copy_from_slice(&self.digest[..16]);
        half
    }

    /// The digest in lowercase hex.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in self.digest {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        hex
    }

    /// The form the database stores under its unique index: `<unix second>-<hex digest>`.
    /// Leading with the time makes new entries land at the end of the index, as the
    /// time-ordered ids do, instead of on a random page each: a batch then dirties a few
    /// index pages, not one per event. Equal parts still give equal text, since the second
    /// is one of the parts.
    pub fn to_stored(&self) -> String {
        format!("{:010}-{}", self.second, self.to_hex())
    }
}

/// The SHA-256 of the parts, with props in canonical form (keys sorted at every level,
/// `occurred_at` left out) and the event time rounded down to the second.
pub fn fingerprint(parts: &FingerprintParts<'_>) -> Fingerprint {
    let mut hasher = Sha256::new();
    let mut field = |value: &[u8]| {
        // Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    field(parts.event_type.as_bytes());
    field(parts.user_id.unwrap_or("anonymous").as_bytes());
    field(parts.entity_id.unwrap_or("").as_bytes());
    field(parts.session_id.unwrap_or("").as_bytes());
    let mut props = Vec::new();
    if let Some(map) = parts.props {
        // The event time enters rounded, below; its exact text must not split duplicates.
        write_canonical_object(&mut props, map, Some("occurred_at"));
    }
    field(&props);
    field(parts.occurred_at.timestamp().to_string().as_bytes());
    if parts.user_id.is_none() && parts.session_id.is_none() {
        field(parts.client_ip.unwrap_or("").as_bytes());
        field(parts.user_agent.unwrap_or("").as_bytes());
    }
    Fingerprint {
        second: parts.occurred_at.timestamp(),
        digest: hasher.finalize().into(),
    }
}

/// Writes `fields` as JSON with keys sorted at every level, leaving out the top-level key
/// `skip`. Keys and scalars are written by serde_json, so their text is its compact text.
fn write_canonical_object(out: &mut Vec<u8>, fields: &Map<String, Value>, skip: Option<&str>) {
    let mut keys: Vec<&String> = fields
        .keys()
        .filter(|key| Some(key.as_str()) != skip)
        .collect();
    keys.sort_unstable();
    write_list(out, b'{', b'}', keys, |out, key| {
        write_scalar(out, key);
        out.push(b':');
        write_canonical(out, &fields[key]);
    });
}

fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(fields) => write_canonical_object(out, fields, None),
        Value::Array(items) => write_list(out, b'[', b']', items, write_canonical),
        scalar => write_scalar(out, scalar),
    }
}

/// Writes `items` with `write_item`, separated by commas, between `open` and `close`.
fn write_list<T>(
    out: &mut Vec<u8>,
    open: u8,
    close: u8,
    items: impl IntoIterator<Item = T>,
    mut write_item: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(open);
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_item(out, item);
    }
    out.push(close);
}

fn write_scalar<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing JSON text of a string or a scalar into memory cannot fail.
    let _ = serde_json::to_writer(out, value);
}

const SHARDS: usize = 16;

/// A bounded map whose entries expire after a fixed time to live.
///
/// `insert_if_absent` is atomic per key, so concurrent identical events see exactly one
/// winner. Memory is bounded: expired entries are dropped as new ones arrive, and when a shard
/// is at capacity its oldest entry is evicted early. Early eviction only weakens the memory
/// fast path; the database's unique indexes still refuse the duplicate at write time.
pub struct TtlCache<K, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    hasher: RandomState,
    /// Time zero of the cache's ticks.
    epoch: Instant,
    ttl_seconds: Tick,
    capacity_per_shard: usize,
}

/// Whole seconds since the cache was made: expiry times are kept to the second, in four
/// bytes rather than an `Instant`'s sixteen, once in the map and once in the queue.
type Tick = u32;

struct Shard<K, V> {
    entries: HashMap<K, (V, Tick)>,
    /// Keys in the order their expiry was set, which is also expiry order (one TTL for all).
    /// Every live entry has its latest expiry here; older ones of a key are skipped.
    order: VecDeque<(K, Tick)>,
    /// Queued keys popped so far, for the tests that pin the cost per operation.
    work: u64,
}

impl<K: Hash + Eq + Clone, V: Clone + PartialEq> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        order: VecDeque::new(),
                        work: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
            ttl_seconds: Tick::try_from(ttl.as_secs()).unwrap_or(Tick::MAX),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Stores `value` under `key` unless a live entry exists; returns the live entry's value
    /// if there was one (and then stores nothing).
    pub fn insert_if_absent(&self, key: K, value: V) -> Option<V> {
        let now = self.now();
        let mut shard = self.shard(&key);
        shard.expire(now);
        if let Some((existing, _)) = shard.entries.get(&key) {
            return Some(existing.clone());
        }
        shard.make_room(self.capacity_per_shard);
        let expires_at = self.expiry(now);
        shard.entries.insert(key.clone(), (value, expires_at));
        shard.order.push_back((key, expires_at));
        None
    }

    /// Overwrites (or adds) the entry for `key`.
    pub fn set(&self, key: K, value: V) {
        let now = self.now();
        let mut shard = self.shard(&key);
        shard.expire(now);
        shard.make_room(self.capacity_per_shard);
        let expires_at = self.expiry(now);
        let replaced = shard.entries.insert(key.clone(), (value, expires_at));
        // A key whose expiry moved is queued again: the queue entry it had no longer matches,
        // and an entry with none would never expire nor count against the capacity.
        if replaced.is_none_or(|(_, queued)| queued != expires_at) {
            shard.order.push_back((key, expires_at));
        }
    }

    /// The live value under `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = self.now();
        let shard = self.shard(key);
        shard
            .entries
            .get(key)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(value, _)| value.clone())
    }

    /// Removes the entry for `key` if it still holds `value` (undoing a reservation).
    pub fn remove_if(&self, key: &K, value: &V) {
        let mut shard = self.shard(key);
        if shard
            .entries
            .get(key)
            .is_some_and(|(held, _)| held == value)
        {
            shard.entries.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).entries.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queued keys popped so far by expiry and eviction, over all shards.
    #[cfg(test)]
    fn work(&self) -> u64 {
        self.shards.iter().map(|shard| lock(shard).work).sum()
    }

    fn now(&self) -> Tick {
        let elapsed = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_secs();
        Tick::try_from(elapsed).unwrap_or(Tick::MAX)
    }

    /// Rounded up, so an entry lives at least the whole TTL.
    fn expiry(&self, now: Tick) -> Tick {
        now.saturating_add(self.ttl_seconds).saturating_add(1)
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<K, V>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        lock(&self.shards[index])
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    fn expire(&mut self, now: Tick) {
        while let Some((_, expires_at)) = self.order.front() {
            if *expires_at > now {
                break;
            }
            self.evict_oldest();
        }
    }

    /// Evicts the oldest keys until one more fits. The queue is what is bounded: it also holds
    /// keys already removed (`remove_if` of refused events), which under a full buffer and
    /// retrying clients would otherwise pile up for a whole TTL.
    fn make_room(&mut self, capacity: usize) {
        while self.order.len() >= capacity {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    /// Drops the oldest queued key; its map entry goes too unless it was refreshed later.
    fn evict_oldest(&mut self) -> bool {
        let Some((key, queued_expiry)) = self.order.pop_front() else {
            return false;
        };
        self.work += 1;
        if self
            .entries
            .get(&key)
            .is_some_and(|(_, expires_at)| *expires_at == queued_expiry)
        {
            self.entries.remove(&key);
        }
        true
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parts<'a>(props: Option<&'a Map<String, Value>>, at: DateTime<Utc>) -> FingerprintParts<'a> {
        FingerprintParts {
            event_type: "page_viewed",
            user_id: None,
            entity_id: None,
            session_id: None,
            props,
            occurred_at: at,
            client_ip: Some("203.0.113.7"),
            user_agent: Some("Mozilla/5.0"),
        }
    }

    #[test]
    fn props_key_order_does_not_matter_but_values_do() {
        let at = Utc::now();
        let a = json!({"x": 1, "y": {"b": 2, "a": 1}});
        let b = json!({"y": {"a": 1, "b": 2}, "x": 1});
        let c = json!({"x": 2, "y": {"a": 1, "b": 2}});
        let fp = |v: &Value| fingerprint(&parts(v.as_object(), at));
        assert_eq!(fp(&a), fp(&b));
        assert_ne!(fp(&a), fp(&c));
    }

    #[test]
    fn the_fingerprint_of_known_parts_never_changes() {
        // Computed independently (length-prefixed SHA-256 of the documented parts); stored
        // fingerprints from earlier versions must keep matching new events.
        let props = json!({"y": {"b": 2, "a": [true, null]}, "x": 1, "s": "a\"b", "n": 1.5,
                           "occurred_at": "2026-01-01T10:00:00.500Z"});
        let at = DateTime::parse_from_rfc3339("2026-01-01T10:00:00.500Z")
            .expect("time")
            .with_timezone(&Utc);
        let fingerprint = fingerprint(&parts(props.as_object(), at));
        assert_eq!(
            fingerprint.to_hex(),
            "3b99138d9d1243216165875701929da60ae18a37ea0ffcbab94e9ecc035ba4b9"
        );
        assert_eq!(
            fingerprint.to_stored(),
            "1767261600-3b99138d9d1243216165875701929da60ae18a37ea0ffcbab94e9ecc035ba4b9"
        );
        assert_eq!(
            fingerprint.cache_key(),
            u128::from_str_radix("3b99138d9d1243216165875701929da6", 16)
                .expect("hex")
                .to_be_bytes()
        );
    }

    #[test]
    fn time_counts_to_the_second() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T10:00:00.100Z")
            .expect("time")
            .with_timezone(&Utc);
        let same_second = at + chrono::Duration::milliseconds(800);
        let next_second = at + chrono::Duration::milliseconds(900);
        assert_eq!(
            fingerprint(&parts(None, at)),
            fingerprint(&parts(None, same_second))
        );
        assert_ne!(
            fingerprint(&parts(None, at)),
            fingerprint(&parts(None, next_second))
        );
    }

    #[test]
    fn anonymous_visitors_without_a_session_never_collapse() {
        let at = Utc::now();
        let first = parts(None, at);
        let other_visitor = FingerprintParts {
            client_ip: Some("198.51.100.1"),
            ..first
        };
        assert_ne!(fingerprint(&first), fingerprint(&other_visitor));
        let other_browser = FingerprintParts {
            user_agent: Some("curl/8"),
            ..first
        };
        assert_ne!(fingerprint(&first), fingerprint(&other_browser));
        let signed_in = FingerprintParts {
            user_id: Some("u1"),
            ..first
        };
        let signed_in_elsewhere = FingerprintParts {
            client_ip: Some("198.51.100.1"),
            ..signed_in
        };
        assert_eq!(fingerprint(&signed_in), fingerprint(&signed_in_elsewhere));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(Duration::from_secs(60), 100);
        assert_eq!(cache.insert_if_absent("k", 1), None);
        assert_eq!(cache.insert_if_absent("k", 2), Some(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(cache.get(&"k"), None);
        assert_eq!(cache.insert_if_absent("k", 3), None);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_evicts_the_oldest_entries() {
        let cache = TtlCache::new(Duration::from_secs(60), SHARDS);
        for key in 0..1000 {
            cache.insert_if_absent(key, key);
        }
        assert!(cache.len() <= SHARDS, "bounded: {}", cache.len());
        assert_eq!(cache.get(&999), Some(999), "the newest entry survives");
    }

    #[tokio::test(start_paused = true)]
    async fn undone_reservations_do_not_pile_up() {
        let cache = TtlCache::new(Duration::from_secs(60), SHARDS);
        for key in 0..1000 {
            cache.insert_if_absent(key, key);
            cache.remove_if(&key, &key);
        }
        let queued: usize = cache
            .shards
            .iter()
            .map(|shard| lock(shard).order.len())
            .sum();
        assert!(queued <= SHARDS, "bounded: {queued}");
    }

    /// A key set again with a later expiry keeps a place in the queue at that expiry, so it
    /// still expires and counts against the capacity (it used to keep only its first place,
    /// which then no longer matched: the key stayed in the map for good).
    #[tokio::test(start_paused = true)]
    async fn a_key_set_again_later_keeps_its_place_in_the_queue() {
        let cache = TtlCache::new(Duration::from_secs(60), 1_000);
        cache.set("k", 1);
        tokio::time::advance(Duration::from_secs(30)).await;
        cache.set("k", 2);
        {
            let shard = cache.shard(&"k");
            let (_, expires_at) = shard.entries[&"k"];
            assert!(
                shard.order.contains(&("k", expires_at)),
                "queued at its latest expiry: {:?}",
                shard.order
            );
        }
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(cache.get(&"k"), Some(2), "alive: set again 45 s ago");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(cache.get(&"k"), None);
        cache.set("k", 3);
        assert_eq!(cache.len(), 1);
    }

    /// Every operation pops at most the queued keys it or an earlier one pushed, so a full
    /// cache costs what an empty one does: counted over a million inserts into a cache of
    /// 10 000, with keys expiring, evicted early and set again.
    #[tokio::test(start_paused = true)]
    async fn a_full_cache_costs_the_same_per_operation_as_an_empty_one() {
        let cache = TtlCache::new(Duration::from_secs(60), 10_000);
        let mut costs = Vec::new();
        for chunk in 0..100u64 {
            let before = cache.work();
            for n in chunk * 10_000..(chunk + 1) * 10_000 {
                cache.insert_if_absent(n, n);
                cache.set(n / 2, n);
                if n % 3 == 0 {
                    cache.remove_if(&n, &n);
                }
            }
            costs.push((cache.work() - before) as f64 / 10_000.0);
            tokio::time::advance(Duration::from_secs(7)).await;
        }
        assert!(cache.len() <= 10_000 + SHARDS, "bounded: {}", cache.len());
        let most = costs.iter().copied().fold(0.0, f64::max);
        assert!(
            most <= 3.0,
            "queued keys popped per operation pair: {costs:?}"
        );
    }

    #[test]
    fn a_reservation_can_be_undone_only_by_its_owner() {
        let cache = TtlCache::new(Duration::from_secs(60), 100);
        cache.insert_if_absent("k", 1);
        cache.remove_if(&"k", &2);
        assert_eq!(cache.get(&"k"), Some(1));
        cache.remove_if(&"k", &1);
        assert_eq!(cache.get(&"k"), None);
    }
}
