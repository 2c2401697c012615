//! The bounded in-memory buffer between acceptance and the flusher.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::event::EventRecord;

/// The buffer is full: the event was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event buffer is full ({capacity} events)")]
pub struct BufferFull {
    pub capacity: usize,
}

/// Accepted events waiting to be written, oldest first.
///
/// A plain mutex is enough: every critical section is a push or a pop of a few pointers, and
/// nothing awaits while holding it.
pub struct Buffer {
    queue: Mutex<VecDeque<EventRecord>>,
    capacity: usize,
    batch_size: usize,
    batch_ready: Notify,
}

impl Buffer {
    pub fn new(capacity: usize, batch_size: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::with_capacity(batch_size.min(capacity))),
            capacity,
            batch_size,
            batch_ready: Notify::new(),
        }
    }

    /// Adds an event, or refuses it when the buffer is at capacity.
    pub fn push(&self, event: EventRecord) -> Result<(), BufferFull> {
        let len = {
            let mut queue = self.lock();
            if queue.len() >= self.capacity {
                return Err(BufferFull {
                    capacity: self.capacity,
                });
            }
            queue.push_back(event);
            queue.len()
        };
        if len >= self.batch_size {
            self.batch_ready.notify_one();
        }
        Ok(())
    }

    /// Removes up to `max` of the oldest events.
    pub fn take(&self, max: usize) -> Vec<EventRecord> {
        let mut queue = self.lock();
        let count = max.min(queue.len());
        queue.drain(..count).collect()
    }

    /// Puts events whose write failed back in front, in their original order. They were
    /// already acknowledged, so capacity does not apply to them.
    pub fn requeue_front(&self, events: Vec<EventRecord>) {
        let mut queue = self.lock();
        for event in events.into_iter().rev() {
            queue.push_front(event);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn has_full_batch(&self) -> bool {
        self.len() >= self.batch_size
    }

    /// Resolves when a push has filled a batch (immediately if one did since the last wait).
    pub async fn batch_ready(&self) {
        self.batch_ready.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<EventRecord>> {
        // A panic while holding the lock cannot leave the deque half-updated.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::test_support::event;

    #[test]
    fn refuses_past_capacity_and_keeps_order_on_requeue() {
        let buffer = Buffer::new(3, 2);
        let events: Vec<_> = (0..3).map(|_| event("e")).collect();
        for e in &events {
            buffer.push(e.clone()).expect("room");
        }
        assert_eq!(buffer.push(event("e")), Err(BufferFull { capacity: 3 }));
        let taken = buffer.take(2);
        assert_eq!(buffer.len(), 1);
        buffer.requeue_front(taken);
        let ids: Vec<_> = buffer.take(10).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
    }
}
