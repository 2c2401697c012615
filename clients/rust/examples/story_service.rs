//! A service that tracks an event per request, never waiting on Sluice, and reports
//! delivery and health at the end.
//!
//! ```sh
//! sluice &                                   # a local Sluice on 127.0.0.1:8080
//! export SLUICE_TOKEN=$(SLUICE_JWT_SECRET=… sluice token --sub story-service --role SERVICE)
//! cargo run -p sluice-tracker --example story_service
//! ```

use std::time::Duration;

use sluice_tracker::{Event, Tracker};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("SLUICE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let mut builder = Tracker::builder(url)
        .batch_size(10)
        .flush_interval(Duration::from_secs(5));
    if let Ok(token) = std::env::var("SLUICE_TOKEN") {
        builder = builder.bearer_token(token);
    }
    let tracker = builder.build().expect("a tracker");
    for story in 0..25 {
        // Handling the request: generating a story takes its time; tracking takes none.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut event = Event::new("story_generated")
            .prop("story", story)
            .prop("model", "x");
        if std::env::var("SLUICE_TOKEN").is_ok() {
            event = event.user(format!("user-{}", story % 5));
        }
        tracker.track(event);
    }
    let report = tracker.shutdown(Duration::from_secs(10)).await;
    let metrics = tracker.metrics();
    println!(
        "delivered {} ({} by the shutdown drain), failed {}, left {}; delivery {:.1} %, health {:?}, last error {:?}",
        metrics.delivered,
        report.delivered,
        metrics.failed,
        report.remaining,
        metrics.delivery_rate * 100.0,
        metrics.health,
        metrics.last_error
    );
}
