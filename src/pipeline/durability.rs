//! Durable acknowledgement: callers that asked for it wait until their event's batch has
//! committed. Each waiting event has a waiter here; the flusher completes the waiters of every
//! batch it writes, and wakes up as soon as a durable event arrives instead of waiting for the
//! batch timeout; events that arrive during a commit share the next one (group commit).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

/// When a caller's response is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AckMode {
    /// Once the event is in the buffer (graceful shutdown drains it).
    #[default]
    Buffered,
    /// Once the event's batch has committed to the database.
    Durable,
}

impl AckMode {
    /// The `x-sluice-ack` header value, if it names a mode.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "buffered" => Some(Self::Buffered),
            "durable" => Some(Self::Durable),
            _ => None,
        }
    }
}

/// How a durable write ended for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Committed (or found already stored).
    Committed,
    /// The database refused the event itself; it is in the dead-letter table.
    DeadLettered(String),
}

/// The events whose callers are waiting for their commit.
#[derive(Default)]
pub struct Waiters {
    pending: Mutex<HashMap<Uuid, oneshot::Sender<Written>>>,
    arrived: Notify,
}

impl Waiters {
    /// Registers `id`; call before the event enters the buffer so its commit cannot be missed,
    /// and [`Waiters::announce`] once it is in.
    pub fn register(&self, id: Uuid) -> oneshot::Receiver<Written> {
        let (sender, receiver) = oneshot::channel();
        self.lock().insert(id, sender);
        receiver
    }

    /// Wakes the flusher for a registered event that is now in the buffer. Waking it any
    /// earlier could let it look at the buffer before the event is there, and leave the
    /// event for the batch timer.
    pub fn announce(&self) {
        self.arrived.notify_one();
    }

    /// Forgets `id` (its event was not buffered after all).
    pub fn cancel(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    /// Completes the waiters of a written batch.
    pub fn complete(&self, ids: impl Iterator<Item = Uuid>, dead_lettered: &[(Uuid, String)]) {
        let mut pending = self.lock();
        if pending.is_empty() {
            return;
        }
        for id in ids {
            if let Some(waiter) = pending.remove(&id) {
                let outcome = dead_lettered
                    .iter()
                    .find(|(dead, _)| *dead == id)
                    .map_or(Written::Committed, |(_, error)| {
                        Written::DeadLettered(error.clone())
                    });
                let _ = waiter.send(outcome);
            }
        }
    }

    /// Resolves when a durable event has arrived since the last call.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, oneshot::Sender<Written>>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
