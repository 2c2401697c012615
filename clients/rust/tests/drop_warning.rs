//! Dropping a tracker that still holds events says so, and names `shutdown`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_tracker::{Event, Tracker};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn dropping_a_tracker_with_events_queued_warns_about_shutdown() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Nothing listens on port 9: the events stay queued.
    let tracker = Tracker::builder("http://127.0.0.1:9")
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("tracker");
    tracker.track(Event::new("story_generated"));
    drop(tracker);
    let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
    assert!(
        log.contains("WARN") && log.contains("Tracker::shutdown"),
        "{log}"
    );

    // After shutdown, dropping is quiet.
    captured.0.lock().expect("log").clear();
    let tracker = Tracker::builder("http://127.0.0.1:9")
        .max_retries(0)
        .build()
        .expect("tracker");
    tracker.track(Event::new("story_generated"));
    tracker.shutdown(Duration::from_secs(5)).await;
    drop(tracker);
    let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
    assert!(!log.contains("Tracker::shutdown"), "{log}");
}
