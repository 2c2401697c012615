//! The sender task: takes batches off the queue, sends them with `trackBatch`, reads each
//! item's result and retries what can pass later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::metrics::Counters;
use crate::{Builder, Event, Request, Shared};

/// Error codes worth sending again: the event was not taken, for a reason that passes.
const RETRYABLE: [&str; 3] = ["TOO_MANY_REQUESTS", "SERVICE_UNAVAILABLE", "TIMEOUT"];
/// The first retry's backoff; it doubles with each attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the sender reaches Sluice.
pub(crate) struct Sender {
    client: reqwest::Client,
    url: String,
    authorization: Option<String>,
    max_retries: u32,
}

/// What one `trackBatch` call came to.
enum Outcome {
    /// Every item was answered: these were delivered or failed; `retry` go again.
    Settled {
        delivered: u64,
        failed: u64,
        retry: Vec<Event>,
        retry_after: Option<u64>,
    },
    /// Nothing was taken (network, timeout, 429, 5xx, SERVICE_UNAVAILABLE): all go again.
    Retry { retry_after: Option<u64> },
}

impl Sender {
    pub fn new(client: reqwest::Client, builder: &Builder) -> Self {
        Self {
            client,
            url: builder.url.clone(),
            authorization: builder
                .bearer_token
                .as_ref()
                .map(|token| format!("Bearer {token}")),
            max_retries: builder.max_retries,
        }
    }

    /// Sends `batch` until every event is delivered or failed for good.
    async fn deliver(&self, shared: &Shared, mut batch: Vec<Event>) {
        let counters = &shared.counters;
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let outcome = self.send(&batch, counters).await;
            counters.sent(started.elapsed());
            let retry_after = match outcome {
                Outcome::Settled {
                    delivered,
                    failed,
                    retry,
                    retry_after,
                } => {
                    Counters::add(&counters.delivered, delivered);
                    Counters::add(&counters.failed, failed);
                    if retry.is_empty() {
                        return;
                    }
                    batch = retry;
                    retry_after
                }
                Outcome::Retry { retry_after } => retry_after,
            };
            attempt += 1;
            if attempt > self.max_retries {
                tracing::warn!(
                    events = batch.len(),
                    attempts = attempt,
                    "sluice-tracker gave up on events after its retries"
                );
                Counters::add(&counters.failed, batch.len() as u64);
                return;
            }
            tokio::time::sleep(backoff(attempt, retry_after)).await;
        }
    }

    async fn send(&self, batch: &[Event], counters: &Counters) -> Outcome {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.trackBatch",
                          "params": {"events": batch}});
        let mut request = self.client.post(&self.url).json(&body);
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                counters.note_error(format!("sending failed: {error}"));
                return Outcome::Retry { retry_after: None };
            }
        };
        let status = response.status();
        let header_retry = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let reply: Value = match response.json().await {
            Ok(reply) => reply,
            Err(error) => {
                counters.note_error(format!("HTTP {status}, unreadable reply: {error}"));
                return Outcome::Retry {
                    retry_after: header_retry,
                };
            }
        };
        if let Some(error) = reply.get("error") {
            counters.note_error(describe(error));
            return if retryable(error) || status.is_server_error() || status.as_u16() == 429 {
                Outcome::Retry {
                    retry_after: retry_after_of(error).or(header_retry),
                }
            } else {
                Outcome::Settled {
                    delivered: 0,
                    failed: batch.len() as u64,
                    retry: Vec::new(),
                    retry_after: None,
                }
            };
        }
        let results = reply["result"]["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if results.len() != batch.len() {
            counters.note_error(format!(
                "a reply with {} results for {} events",
                results.len(),
                batch.len()
            ));
            return Outcome::Retry { retry_after: None };
        }
        let (mut delivered, mut failed, mut retry, mut retry_after) = (0, 0, Vec::new(), None);
        for (event, result) in batch.iter().zip(&results) {
            if result["status"] == "fulfilled" {
                delivered += 1;
            } else if retryable(&result["error"]) {
                retry_after = retry_after.max(retry_after_of(&result["error"]));
                counters.note_error(describe(&result["error"]));
                retry.push(event.clone());
            } else {
                failed += 1;
                counters.note_error(describe(&result["error"]));
            }
        }
        Outcome::Settled {
            delivered,
            failed,
            retry,
            retry_after,
        }
    }
}

fn retryable(error: &Value) -> bool {
    error["data"]["code"]
        .as_str()
        .is_some_and(|code| RETRYABLE.contains(&code))
}

fn retry_after_of(error: &Value) -> Option<u64> {
    error["data"]["retryAfterSeconds"].as_u64()
}

fn describe(error: &Value) -> String {
    format!(
        "{}: {}",
        error["data"]["code"].as_str().unwrap_or("ERROR"),
        error["message"].as_str().unwrap_or("no message")
    )
}

/// The wait before attempt `attempt + 1`: doubling from [`FIRST_BACKOFF`] to
/// [`MAX_BACKOFF`], jittered by ±50 %, and never shorter than what the server asked for.
pub(crate) fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let jittered = doubled.min(MAX_BACKOFF).mul_f64(0.5 + fastrand::f64());
    jittered.max(Duration::from_secs(retry_after.unwrap_or(0)))
}

/// The sender task: a batch goes when `batch_size` are waiting (the tracker wakes it),
/// everything waiting goes every `interval` and on a flush request. Ends when the tracker
/// is dropped.
pub(crate) async fn run(
    shared: Arc<Shared>,
    sender: Sender,
    mut inbox: mpsc::UnboundedReceiver<Request>,
    interval: Duration,
) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    loop {
        let (reply, everything) = tokio::select! {
            () = shared.wake.notified() => (None, false),
            _ = timer.tick() => (None, true),
            request = inbox.recv() => match request {
                Some(Request::Flush(reply)) => (Some(reply), true),
                None => return,
            },
        };
        loop {
            let batch: Vec<Event> = {
                let mut queue = shared.lock();
                if queue.is_empty() || (!everything && queue.len() < shared.batch_size) {
                    break;
                }
                let take = queue.len().min(shared.batch_size);
                queue.drain(..take).collect()
            };
            sender.deliver(&shared, batch).await;
        }
        if let Some(reply) = reply {
            let _ = reply.send(shared.lock().len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_the_server() {
        for _ in 0..100 {
            let first = backoff(1, None);
            assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(375));
            let fourth = backoff(4, None);
            assert!(fourth >= Duration::from_millis(1000) && fourth <= Duration::from_millis(3000));
            assert!(backoff(30, None) <= Duration::from_secs(45));
            assert!(backoff(1, Some(7)) >= Duration::from_secs(7));
        }
    }
}
