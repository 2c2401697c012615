//! WAL checkpoints off the write path.
//!
//! SQLite copies the write-ahead log back into the database file (a checkpoint) in the
//! connection that commits, once the log passes `wal_autocheckpoint` pages. Every few hundred
//! flushes, one commit therefore carried a checkpoint of megabytes with its fsyncs, and the
//! durable callers waiting on that commit waited about 20 ms instead of 2. A task of the store
//! now copies the log back every [`INTERVAL`] on a connection of its own; a passive checkpoint
//! never blocks the writer.
//!
//! The writer still checkpoints by itself past 16 000 pages (see `CONNECTION_SETUP`). That
//! bounds the log: under continuous writes it can only start again from its beginning after
//! a checkpoint between two write transactions. By then this task has copied nearly all of
//! it, so the writer's own checkpoint is short and rare.

use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

use crate::storage::pool;

/// How often the log is copied back.
const INTERVAL: Duration = Duration::from_millis(250);

/// The background checkpointer of one SQLite file; stops when dropped.
pub(super) struct Checkpointer {
    task: AbortHandle,
}

impl Checkpointer {
    /// Checkpoints `path` on a connection of its own, opened with `setup` like the pool's.
    pub(super) fn start(path: &str, setup: &'static str) -> Self {
        let task = tokio::spawn(run(path.to_owned(), setup)).abort_handle();
        Self { task }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(path: String, setup: &'static str) {
    // The first tick after one interval: by then the store has opened (and migrated) the file.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + INTERVAL, INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut connection: Option<SyncConnectionWrapper<SqliteConnection>> = None;
    loop {
        ticks.tick().await;
        let mut current = match connection.take() {
            Some(current) => current,
            None => match pool::establish(&path, setup).await {
                Ok(opened) => opened,
                Err(error) => {
                    tracing::warn!(%error, "checkpointer cannot open the database");
                    continue;
                }
            },
        };
        let checkpoint = current
            .spawn_blocking(|connection| {
                let passive = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)");
                diesel::RunQueryDsl::execute(passive, connection)
            })
            .await;
        match checkpoint {
            Ok(_) => connection = Some(current),
            // Reopened on the next tick; meanwhile the writer's own threshold bounds the log.
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
        }
    }
}
