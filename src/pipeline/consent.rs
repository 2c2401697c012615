//! The opt-outs this node knows, so that an opted-out subject's event is answered
//! `suppressed` at once.
//!
//! This is a fast path, not the rule: the write transaction reads the consents table again
//! (`storage::write`), so an event of a subject this cache does not hold is still never
//! stored. That is what lets the cache be bounded: it keeps the [`MAX_OPT_OUTS`] most recent
//! opt-outs, and a refresh reads only the decisions made since the last one (with an overlap
//! for clocks and late commits), so neither its memory nor its refresh grows with every
//! opt-out ever recorded.

use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Duration, Utc};
use lru::LruCache;

use crate::domain::ConsentSubject;
use crate::storage::{EventStore, StorageError};

/// How often the decisions made on other nodes are picked up.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Most opt-outs held in memory (about 10 MB).
pub const MAX_OPT_OUTS: usize = 100_000;
/// How far before the last refresh the next one reads again: decisions stamped by another
/// node's or the database's clock, or committed late, are still picked up.
pub const REFRESH_OVERLAP: Duration = Duration::seconds(60);

/// The most recent opt-outs, least recent first out.
pub struct OptOuts {
    subjects: RwLock<LruCache<ConsentSubject, ()>>,
    /// When the last refresh started; `None` before the first.
    refreshed_at: Mutex<Option<DateTime<Utc>>>,
    max: usize,
}

impl OptOuts {
    pub fn new(max: usize) -> Self {
        Self {
            subjects: RwLock::new(LruCache::unbounded()),
            refreshed_at: Mutex::new(None),
            max,
        }
    }

    /// Whether any of `subjects` is known to have opted out.
    pub fn any_of(&self, subjects: impl IntoIterator<Item = ConsentSubject>) -> bool {
        let known = self.subjects.read().unwrap_or_else(|p| p.into_inner());
        !known.is_empty() && subjects.into_iter().any(|subject| known.contains(&subject))
    }

    /// Applies a decision made here or read from the database.
    pub fn record(&self, subject: &ConsentSubject, granted: bool) {
        let mut known = self.subjects.write().unwrap_or_else(|p| p.into_inner());
        self.apply(&mut known, subject, granted);
    }

    /// Reads the decisions made since the last refresh (the current opt-outs on the first),
    /// on any node, and applies them.
    pub async fn refresh(
        &self,
        store: &dyn EventStore,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let since = *self.refreshed_at.lock().unwrap_or_else(|p| p.into_inner());
        let decisions = store
            .consent_decisions(since.map(|at| at - REFRESH_OVERLAP), self.max)
            .await?;
        let mut known = self.subjects.write().unwrap_or_else(|p| p.into_inner());
        // Newest first from the store: applied oldest first, so the latest decision wins
        // and the most recent opt-outs are the last to be evicted.
        for decision in decisions.iter().rev() {
            self.apply(&mut known, &decision.subject, decision.granted);
        }
        drop(known);
        *self.refreshed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        Ok(())
    }

    /// Opt-outs held now.
    pub fn len(&self) -> usize {
        self.subjects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(
        &self,
        known: &mut LruCache<ConsentSubject, ()>,
        subject: &ConsentSubject,
        granted: bool,
    ) {
        if granted {
            known.pop(subject);
            return;
        }
        known.put(subject.clone(), ());
        while known.len() > self.max {
            known.pop_lru();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::MemoryStore;
    use crate::storage::roles::*;

    fn session(n: usize) -> ConsentSubject {
        ConsentSubject::Session(format!("s{n}"))
    }

    #[tokio::test]
    async fn a_refresh_reads_only_what_changed_since_the_last() {
        let store = Arc::new(MemoryStore::default());
        let opt_outs = OptOuts::new(1_000);
        let an_hour_ago = Utc::now() - Duration::hours(1);
        for n in 0..50 {
            store.set_consent_at(&session(n), false, an_hour_ago);
        }
        store.set_consent_at(&session(50), true, an_hour_ago);
        opt_outs
            .refresh(store.as_ref(), Utc::now())
            .await
            .expect("read");
        assert!(opt_outs.any_of([session(1)]));
        assert!(!opt_outs.any_of([session(50)]));
        assert_eq!(
            store.consent_rows_read(),
            50,
            "the first refresh reads the opt-outs"
        );

        // Decided on another node: the next refresh reads those two decisions alone.
        store.set_consent(&session(1), true).await.expect("saved");
        store.set_consent(&session(51), false).await.expect("saved");
        opt_outs
            .refresh(store.as_ref(), Utc::now())
            .await
            .expect("read");
        assert!(!opt_outs.any_of([session(1)]), "the opt-in wins");
        assert!(opt_outs.any_of([session(2)]) && opt_outs.any_of([session(51)]));
        assert_eq!(store.consent_rows_read(), 52);
    }

    /// However many opt-outs are recorded, the cache holds the newest up to its bound, and
    /// a refresh reads at most that many.
    #[tokio::test]
    async fn memory_and_refreshes_stay_bounded() {
        let store = Arc::new(MemoryStore::default());
        let opt_outs = OptOuts::new(100);
        for n in 0..1_000 {
            store.set_consent(&session(n), false).await.expect("saved");
        }
        opt_outs
            .refresh(store.as_ref(), Utc::now())
            .await
            .expect("read");
        assert_eq!(opt_outs.len(), 100);
        assert!(opt_outs.any_of([session(999)]), "the newest are kept");
        assert!(!opt_outs.any_of([session(0)]));
        assert_eq!(store.consent_rows_read(), 100);
        for n in 1_000..1_050 {
            opt_outs.record(&session(n), false);
        }
        assert_eq!(opt_outs.len(), 100);
        assert!(opt_outs.any_of([session(1_049)]));
    }
}
