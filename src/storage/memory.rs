//! An in-memory store for pipeline tests, with a switch to make writes fail like a database
//! outage.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Backend, EventStore, PoolStatus, StorageError};
use crate::event::EventRecord;

/// Events in a `Vec`, for tests that exercise the pipeline without a database.
#[derive(Default)]
pub struct MemoryStore {
    events: Mutex<Vec<EventRecord>>,
    unavailable: AtomicBool,
}

impl MemoryStore {
    /// Makes every later call fail with [`StorageError::Unavailable`] (or succeed again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<EventRecord>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[async_trait]
impl EventStore for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    async fn insert_events(&self, batch: &[EventRecord]) -> Result<usize, StorageError> {
        self.check_available()?;
        let mut events = self.lock();
        let before = events.len();
        for event in batch {
            if !events.iter().any(|stored| stored.id == event.id) {
                events.push(event.clone());
            }
        }
        Ok(events.len() - before)
    }

    async fn find_event(&self, id: Uuid) -> Result<Option<EventRecord>, StorageError> {
        self.check_available()?;
        Ok(self.lock().iter().find(|event| event.id == id).cloned())
    }

    async fn count_events(&self) -> Result<i64, StorageError> {
        self.check_available()?;
        Ok(self.lock().len() as i64)
    }

    async fn run_migrations(&self) -> Result<usize, StorageError> {
        Ok(0)
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
