//! Messages between the nodes that share one database: PostgreSQL's `LISTEN/NOTIFY`. A
//! backend without it (SQLite: one node per file) has no channel.

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use super::StorageError;

/// The channel live events travel on between nodes.
pub const LIVE_CHANNEL: &str = "sluice_live";
/// The longest message the channel carries: PostgreSQL refuses a NOTIFY payload of 8 000
/// bytes or more.
pub const MAX_MESSAGE_BYTES: usize = 7_999;

/// Messages as they arrive; the stream ends when the connection is lost.
pub type Messages = BoxStream<'static, Result<String, StorageError>>;

/// Sends messages to every node sharing the database, this one included, and receives them.
#[async_trait]
pub trait NodeChannel: Send + Sync + 'static {
    /// Sends each message (at most [`MAX_MESSAGE_BYTES`]) to every listening node, in order.
    async fn send(&self, messages: &[String]) -> Result<(), StorageError>;

    /// Opens a connection of its own and listens; the caller reconnects when it ends.
    async fn listen(&self) -> Result<Messages, StorageError>;
}
