//! The server tracker benchmark (issue 20): what `Tracker::track` costs the calling task,
//! and events/s from one tracker into a local Sluice (SQLite, shipped defaults).

use std::time::{Duration, Instant};

use sluice_tracker::{Event, Tracker};

use super::{start, verdict};

/// Events timed one by one, and sent for the throughput.
const EVENTS: usize = 200_000;

pub async fn run(database_url: &str) {
    let server = start(database_url, |_| {}).await;
    let url = format!("http://{}", server.local_addr());

    // The cost on the calling task, with the sender busy sending what it queues.
    let tracker = Tracker::builder(&url)
        .batch_size(50)
        .queue_bound(EVENTS)
        .build()
        .expect("tracker");
    let events: Vec<Event> = (0..EVENTS)
        .map(|n| {
            Event::new("story_generated")
                .prop("story", n)
                .prop("model", "x")
        })
        .collect();
    let mut costs = Vec::with_capacity(EVENTS);
    let started = Instant::now();
    for event in events {
        let before = Instant::now();
        tracker.track(event);
        costs.push(before.elapsed());
    }
    let queued_in = started.elapsed();
    let report = tracker.flush().await;
    let delivered_in = started.elapsed();
    costs.sort_unstable();
    let at = |p: f64| costs[((costs.len() as f64 * p) as usize).min(costs.len() - 1)];
    let (p50, p99) = (at(0.5), at(0.99));
    println!(
        "track on the calling task ({EVENTS} events): p50 {:.0} ns, p99 {:.0} ns, max {:.1} µs; all queued in {:.1} ms",
        p50.as_nanos(),
        p99.as_nanos(),
        costs[costs.len() - 1].as_secs_f64() * 1e6,
        queued_in.as_secs_f64() * 1e3
    );
    println!(
        "  p50 < 1 µs: {}, p99 < 10 µs: {}",
        verdict(p50 < Duration::from_micros(1)),
        verdict(p99 < Duration::from_micros(10))
    );
    let metrics = tracker.metrics();
    println!(
        "one tracker into a local Sluice: {} delivered, {} failed in {:.2} s = {:.0} events/s (batches of 50, {:.1} ms a call on average)",
        metrics.delivered,
        metrics.failed,
        delivered_in.as_secs_f64(),
        report.delivered.max(metrics.delivered) as f64 / delivered_in.as_secs_f64(),
        metrics.average_send_time.as_secs_f64() * 1e3
    );
    tracker.shutdown(Duration::from_secs(10)).await;
    server.stop().await;
}
