//! The flusher's own thread.
//!
//! On the server's runtime the flusher was one task among thousands of request tasks: every
//! time its write finished, it waited in the run queue behind the requests that write had
//! just made room for, and the next write started only after them. Writes and request work
//! took turns instead of overlapping (1.3 of 2 cores busy under a flood). On a thread of its
//! own, with a current-thread runtime, the next write starts as soon as the last one ends,
//! and the operating system shares the cores between the writer and the request workers.
//!
//! A current-thread runtime (a unit test with paused time, say) keeps the flusher on itself:
//! one thread has nothing to share, and the test's clock must drive the flusher's timer.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::runtime::{Builder, Handle, RuntimeFlavor};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the flusher runs, to wait for its end.
pub(super) enum WriterTask {
    /// On its own thread; the sender is dropped when the thread's work ends.
    Thread(oneshot::Receiver<()>),
    /// On the caller's runtime.
    Task(JoinHandle<()>),
}

impl WriterTask {
    /// Runs `work` on a thread of its own when the caller's runtime has several workers,
    /// else as a task of the caller's runtime.
    pub fn spawn<F>(work: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let multi_thread = Handle::try_current()
            .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
        if !multi_thread {
            return Self::Task(tokio::spawn(work));
        }
        // Kept where both the thread and this function can reach it, so that a thread that
        // cannot be started hands the work back instead of dropping it.
        let work = Arc::new(Mutex::new(Some(work)));
        let runtime = Builder::new_current_thread().enable_all().build();
        let (done, ended) = oneshot::channel::<()>();
        let started = runtime
            .map_err(|error| error.to_string())
            .and_then(|runtime| {
                let work = work.clone();
                std::thread::Builder::new()
                    .name("sluice-writer".into())
                    .spawn(move || {
                        let _done = done;
                        let taken = work.lock().unwrap_or_else(|p| p.into_inner()).take();
                        if let Some(work) = taken {
                            runtime.block_on(work);
                        }
                    })
                    .map_err(|error| error.to_string())
            });
        match started {
            Ok(_thread) => Self::Thread(ended),
            Err(error) => {
                tracing::warn!(%error, "no thread for the writer; it shares the server's runtime");
                let taken = work.lock().unwrap_or_else(|p| p.into_inner()).take();
                Self::Task(tokio::spawn(async move {
                    if let Some(work) = taken {
                        work.await;
                    }
                }))
            }
        }
    }

    /// Resolves when the work has ended.
    pub async fn ended(self) {
        match self {
            Self::Thread(ended) => {
                // An error only means the thread ended without sending: it ended all the same.
                let _ = ended.await;
            }
            Self::Task(task) => {
                if let Err(error) = task.await {
                    tracing::error!(%error, "flusher task ended abnormally");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_thread_runtime_gives_the_writer_its_own_thread() {
        let (name, named) = oneshot::channel();
        let task = WriterTask::spawn(async move {
            let _ = name.send(std::thread::current().name().map(str::to_owned));
        });
        assert!(matches!(task, WriterTask::Thread(_)));
        task.ended().await;
        assert_eq!(named.await.expect("ran").as_deref(), Some("sluice-writer"));
    }

    #[tokio::test]
    async fn a_current_thread_runtime_keeps_the_writer() {
        let task = WriterTask::spawn(async {});
        assert!(matches!(task, WriterTask::Task(_)));
        task.ended().await;
    }
}
