//! [`NodeChannel`] over PostgreSQL `LISTEN/NOTIFY`.

use std::time::Duration;

use async_trait::async_trait;
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt;

use super::super::channel::{LIVE_CHANNEL, Messages, NodeChannel};
use super::super::pool::{ConnectionPool, Pool};
use super::super::{StorageError, redact_url};

/// How long a listener waits for a message before it checks that its connection still works
/// (a connection can die without a word: a dropped route, a failover).
const LISTENER_PROBE: Duration = Duration::from_secs(30);
/// How long that check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends on pooled connections; listens on a connection of its own, since a pooled one
/// would carry its `LISTEN` to whoever checks it out next.
pub struct PgChannel {
    pub(super) url: String,
    pub(super) pool: Pool<AsyncPgConnection>,
}

#[async_trait]
impl NodeChannel for PgChannel {
    async fn send(&self, messages: &[String]) -> Result<(), StorageError> {
        let mut connection = self.pool.checkout().await?;
        // One round trip for the lot; pg_notify keeps their order.
        diesel::sql_query("SELECT pg_notify($1, message) FROM unnest($2::text[]) AS message")
            .bind::<Text, _>(LIVE_CHANNEL)
            .bind::<Array<Text>, _>(messages)
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    async fn listen(&self) -> Result<Messages, StorageError> {
        let mut connection = AsyncPgConnection::establish(&self.url)
            .await
            .map_err(|error| {
                StorageError::Unavailable(format!(
                    "listener connection to {}: {error}",
                    redact_url(&self.url)
                ))
            })?;
        connection
            .batch_execute(&format!("LISTEN {LIVE_CHANNEL}"))
            .await?;
        Ok(futures_util::stream::unfold(Some(connection), next_message).boxed())
    }
}

/// The next message on `connection`, or the error that ended it (then the stream ends).
async fn next_message(
    connection: Option<AsyncPgConnection>,
) -> Option<(Result<String, StorageError>, Option<AsyncPgConnection>)> {
    let mut connection = connection?;
    loop {
        // The notification stream reads the connection's queue; making it anew loses nothing.
        let waited = {
            let mut notifications = std::pin::pin!(connection.notifications_stream());
            tokio::time::timeout(LISTENER_PROBE, notifications.next()).await
        };
        match waited {
            Ok(Some(Ok(notification))) => {
                return Some((Ok(notification.payload), Some(connection)));
            }
            Ok(Some(Err(error))) => return Some((Err(error.into()), None)),
            Ok(None) => {
                let lost = StorageError::Unavailable("listener connection closed".into());
                return Some((Err(lost), None));
            }
            Err(_quiet) => {
                let probe = diesel::sql_query("SELECT 1").execute(&mut connection);
                match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(error)) => return Some((Err(error.into()), None)),
                    Err(_) => {
                        let lost = StorageError::Unavailable("listener connection hangs".into());
                        return Some((Err(lost), None));
                    }
                }
            }
        }
    }
}
