//! Live events between nodes: each node sends the events it accepted on the store's
//! [`NodeChannel`] (PostgreSQL `LISTEN/NOTIFY`, channel `sluice_live`) and publishes the other
//! nodes' events to its own hub, so a viewer on any node sees every node's events, each once.
//!
//! Nothing here can slow ingestion: events wait for the sender in a bounded queue and are
//! dropped (counted) when it is full. Messages are compact — an event is a JSON array, not
//! an object — and as many events as fit go in one message (NOTIFY carries under 8 000
//! bytes). While the database is away, the listener reconnects with backoff; events sent
//! meanwhile are not seen by the other nodes (their stored copies are not affected).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{LiveEvent, LiveHub};
use crate::pipeline::clock::Clock;
use crate::storage::NodeChannel;
use crate::storage::channel::MAX_MESSAGE_BYTES;

/// Events waiting to be sent to the other nodes.
const QUEUE: usize = 10_000;
/// Most events taken from the queue for one round trip.
const EVENTS_PER_SEND: usize = 1_000;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// A [`LiveEvent`] on the wire between nodes: named fields under one-letter keys, so that
/// a notification (at most 8 000 bytes) carries as many events as it can.
#[derive(Serialize, Deserialize)]
struct CompactEvent {
    #[serde(rename = "i")]
    event_id: Uuid,
    #[serde(rename = "t")]
    event_type: String,
    #[serde(rename = "s")]
    source: String,
    #[serde(rename = "p")]
    path: Option<String>,
    #[serde(rename = "r")]
    referrer_host: Option<String>,
    #[serde(rename = "u")]
    utm_source: Option<String>,
    #[serde(rename = "d")]
    device_type: Option<String>,
    #[serde(rename = "b")]
    browser_name: Option<String>,
    #[serde(rename = "c")]
    country: Option<String>,
    #[serde(rename = "v")]
    visitor_id: Option<String>,
    #[serde(rename = "o")]
    occurred_at: DateTime<Utc>,
}

impl From<LiveEvent> for CompactEvent {
    fn from(event: LiveEvent) -> Self {
        Self {
            event_id: event.event_id,
            event_type: event.event_type,
            source: event.source,
            path: event.path,
            referrer_host: event.referrer_host,
            utm_source: event.utm_source,
            device_type: event.device_type,
            browser_name: event.browser_name,
            country: event.country,
            visitor_id: event.visitor_id,
            occurred_at: event.occurred_at,
        }
    }
}

impl From<CompactEvent> for LiveEvent {
    fn from(compact: CompactEvent) -> Self {
        Self {
            event_id: compact.event_id,
            event_type: compact.event_type,
            source: compact.source,
            path: compact.path,
            referrer_host: compact.referrer_host,
            utm_source: compact.utm_source,
            device_type: compact.device_type,
            browser_name: compact.browser_name,
            country: compact.country,
            visitor_id: compact.visitor_id,
            occurred_at: compact.occurred_at,
        }
    }
}

/// One message: the sending node and its events.
#[derive(Deserialize)]
struct Message {
    #[serde(rename = "n")]
    node: Uuid,
    #[serde(rename = "e")]
    events: Vec<CompactEvent>,
}

/// Packs events into as few messages of at most `max_bytes` as fit them; an event too large
/// for a message by itself is left out and counted in the second value.
fn pack(node: Uuid, events: Vec<LiveEvent>, max_bytes: usize) -> (Vec<String>, usize) {
    let head = format!(r#"{{"n":"{node}","e":["#);
    let tail = "]}";
    let mut messages = Vec::new();
    let mut current = head.clone();
    let mut oversized = 0;
    for event in events {
        let Ok(encoded) = serde_json::to_string(&CompactEvent::from(event)) else {
            oversized += 1;
            continue;
        };
        if head.len() + encoded.len() + tail.len() > max_bytes {
            oversized += 1;
            continue;
        }
        let empty = current.len() == head.len();
        if current.len() + usize::from(!empty) + encoded.len() + tail.len() > max_bytes {
            current.push_str(tail);
            messages.push(std::mem::replace(&mut current, head.clone()));
        } else if !empty {
            current.push(',');
        }
        current.push_str(&encoded);
    }
    if current.len() > head.len() {
        current.push_str(tail);
        messages.push(current);
    }
    (messages, oversized)
}

/// What the relay has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Events other nodes did not see: the queue was full, the send failed, or the event
    /// was too large for a message.
    pub dropped: AtomicU64,
    pub reconnects: AtomicU64,
}

/// This node's end of the relay; dropping it leaves the tasks running until
/// [`Relay::stop`].
pub struct Relay {
    node: Uuid,
    queue: mpsc::Sender<LiveEvent>,
    counters: Arc<RelayCounters>,
    tasks: [JoinHandle<()>; 2],
}

impl Relay {
    /// Starts sending this node's events on `channel` and publishing other nodes' to `hub`.
    pub fn start(hub: Arc<LiveHub>, channel: Arc<dyn NodeChannel>, clock: Arc<dyn Clock>) -> Self {
        let node = Uuid::now_v7();
        let counters = Arc::new(RelayCounters::default());
        let (queue, receiver) = mpsc::channel(QUEUE);
        let sender = tokio::spawn(send_loop(node, receiver, channel.clone(), counters.clone()));
        let listener = tokio::spawn(listen_loop(node, hub, channel, clock, counters.clone()));
        Self {
            node,
            queue,
            counters,
            tasks: [sender, listener],
        }
    }

    /// This node's id on the channel.
    pub fn node(&self) -> Uuid {
        self.node
    }

    /// Queues `event` for the other nodes; never waits.
    pub fn forward(&self, event: &LiveEvent) {
        if self.queue.try_send(event.clone()).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }

    /// Stops both tasks.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn send_loop(
    node: Uuid,
    mut receiver: mpsc::Receiver<LiveEvent>,
    channel: Arc<dyn NodeChannel>,
    counters: Arc<RelayCounters>,
) {
    let mut batch = Vec::with_capacity(EVENTS_PER_SEND);
    // Whatever queued up during the last round trip goes in the next: batching that costs
    // no delay when traffic is light.
    while receiver.recv_many(&mut batch, EVENTS_PER_SEND).await > 0 {
        let count = batch.len() as u64;
        let (messages, oversized) = pack(node, std::mem::take(&mut batch), MAX_MESSAGE_BYTES);
        counters
            .dropped
            .fetch_add(oversized as u64, Ordering::Relaxed);
        match channel.send(&messages).await {
            Ok(()) => {
                counters
                    .sent
                    .fetch_add(count - oversized as u64, Ordering::Relaxed);
            }
            Err(error) => {
                counters.dropped.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(%error, events = count, "live events not sent to the other nodes");
            }
        }
    }
}

async fn listen_loop(
    node: Uuid,
    hub: Arc<LiveHub>,
    channel: Arc<dyn NodeChannel>,
    clock: Arc<dyn Clock>,
    counters: Arc<RelayCounters>,
) {
    let mut retry = FIRST_RETRY;
    let mut connected_before = false;
    loop {
        let mut messages = match channel.listen().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = retry.as_millis() as u64, "live listener cannot connect");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LAST_RETRY);
                continue;
            }
        };
        if connected_before {
            counters.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("live listener reconnected");
        }
        connected_before = true;
        retry = FIRST_RETRY;
        while let Some(message) = messages.next().await {
            match message {
                Ok(payload) => receive(node, &payload, &hub, &*clock, &counters),
                Err(error) => {
                    tracing::warn!(%error, "live listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}

fn receive(node: Uuid, payload: &str, hub: &LiveHub, clock: &dyn Clock, counters: &RelayCounters) {
    let message = match serde_json::from_str::<Message>(payload) {
        Ok(message) => message,
        Err(error) => {
            tracing::warn!(%error, "ignoring a message on the live channel that is not Sluice's");
            return;
        }
    };
    // This node published its own events when it accepted them.
    if message.node == node {
        return;
    }
    let now = clock.now();
    counters
        .received
        .fetch_add(message.events.len() as u64, Ordering::Relaxed);
    for event in message.events {
        hub.publish(event.into(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::event;
    use crate::pipeline::live::LiveEncoder;

    fn live_events(count: usize) -> Vec<LiveEvent> {
        let encoder = LiveEncoder::new(b"key");
        (0..count)
            .map(|_| {
                let mut record = event("page_viewed");
                record.session_id = Some(Uuid::now_v7());
                record.attribution.landing_page = Some("https://shop.example/boots".into());
                encoder.encode(&record)
            })
            .collect()
    }

    #[test]
    fn events_pack_into_messages_under_the_limit_and_come_back_whole() {
        let node = Uuid::now_v7();
        let events = live_events(200);
        let (messages, oversized) = pack(node, events.clone(), MAX_MESSAGE_BYTES);
        assert_eq!(oversized, 0);
        assert!(
            messages.len() > 1 && messages.len() < 10,
            "{}",
            messages.len()
        );
        let mut back = Vec::new();
        for message in &messages {
            assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
            let parsed: Message = serde_json::from_str(message).expect("a message");
            assert_eq!(parsed.node, node);
            back.extend(parsed.events.into_iter().map(LiveEvent::from));
        }
        assert_eq!(back, events);
    }

    /// A channel whose sends never finish: the other nodes are unreachable.
    struct Stuck;

    #[async_trait::async_trait]
    impl NodeChannel for Stuck {
        async fn send(&self, _: &[String]) -> Result<(), crate::storage::StorageError> {
            std::future::pending().await
        }
        async fn listen(
            &self,
        ) -> Result<crate::storage::channel::Messages, crate::storage::StorageError> {
            std::future::pending().await
        }
    }

    /// With the other nodes unreachable, the queue holds [`QUEUE`] events and every event
    /// past them is dropped and counted at once: forwarding never waits nor grows memory.
    #[tokio::test]
    async fn a_stuck_channel_fills_the_queue_and_the_rest_is_dropped() {
        let clock = Arc::new(crate::pipeline::clock::SystemClock);
        let relay = Relay::start(Arc::new(LiveHub::new()), Arc::new(Stuck), clock);
        let events = live_events(100);
        for round in 0..3 * QUEUE / 100 {
            for event in &events {
                relay.forward(event);
            }
            if round == 0 {
                // The sender takes its first round trip's events, then waits on the send.
                tokio::task::yield_now().await;
            }
        }
        let held = relay.queue.max_capacity() - relay.queue.capacity();
        assert_eq!(held, QUEUE, "the queue is full, not larger");
        let dropped = relay.counters().dropped.load(Ordering::Relaxed) as usize;
        assert!(dropped >= 2 * QUEUE - EVENTS_PER_SEND, "{dropped} dropped");
        relay.stop();
    }

    #[test]
    fn an_event_too_large_for_a_message_is_left_out() {
        let mut events = live_events(3);
        events[1].path = Some("/".repeat(MAX_MESSAGE_BYTES));
        let (messages, oversized) = pack(Uuid::now_v7(), events, MAX_MESSAGE_BYTES);
        assert_eq!(oversized, 1);
        let parsed: Message = serde_json::from_str(&messages[0]).expect("a message");
        assert_eq!(parsed.events.len(), 2);
    }
}
