//! Why the pipeline could not take an event or a command.

use std::time::Duration;

use super::buffer::BufferFull;
use super::flusher::FlushError;
use crate::storage::StorageError;

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
