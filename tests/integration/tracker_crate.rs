//! The `sluice-tracker` crate (`clients/rust`) against a real Sluice on both backends, and
//! the rule it relies on: only a SERVICE token (or the admin token) may set `userId`.

use std::time::Duration;

use serde_json::json;
use sluice::domain::Role;
use sluice_tracker::{Event, Health, Tracker};

use crate::backend_tests;
use crate::support::{
    ADMIN_TOKEN, Backend, TestServer, assert_error, call, error_data, jwt, page_view,
};

backend_tests!(
    only_service_tokens_may_set_user_ids,
    the_tracker_delivers_by_size_and_by_time,
    refused_events_fail_and_are_not_retried,
    rate_limited_events_are_retried_and_stored_once,
    a_batch_retried_after_a_timeout_is_stored_once,
    shutdown_drains_the_queue,
    metrics_and_health_follow_the_seed
);

const SOON: Duration = Duration::from_secs(10);

fn tracker(server: &TestServer) -> sluice_tracker::Builder {
    Tracker::builder(server.http_url()).bearer_token(jwt("story-service", Role::Service))
}

/// Waits until `count` events are stored.
async fn stored(server: &TestServer, count: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        server.force_flush().await;
        let seen = server.count().await;
        if seen >= count || tokio::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tracker's metrics once it counted `delivered` (it counts after reading Sluice's
/// answer, which may come after the events are stored).
async fn settled(tracker: &Tracker, delivered: u64) -> sluice_tracker::Metrics {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let metrics = tracker.metrics();
        if metrics.delivered >= delivered || tokio::time::Instant::now() > deadline {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn only_service_tokens_may_set_user_ids(backend: Backend) {
    let server = TestServer::start(backend).await;
    let event =
        json!({"eventType": "story_generated", "userId": "user-123", "props": {"model": "x"}});
    let service = server
        .client_with_authorization(&format!("Bearer {}", jwt("story-service", Role::Service)));
    let output = call(&service, "eventIngestion.track", event.clone())
        .await
        .expect("a SERVICE token may");
    let id = output["eventId"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let admin = call(
        &server.admin_client(),
        "eventIngestion.track",
        event.clone(),
    )
    .await
    .expect("the admin token may");
    let admin_id = admin["eventId"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    server.force_flush().await;
    for id in [id, admin_id] {
        let stored = server.stored(id).await.expect("stored");
        assert_eq!(stored.user_id.as_deref(), Some("user-123"));
        assert_eq!(stored.actor_id.as_deref(), Some("user-123"));
        assert_eq!(stored.actor_type.as_deref(), Some("service"));
    }
    // A SERVICE token without userId tracks as itself.
    let own = call(
        &service,
        "eventIngestion.track",
        json!({"eventType": "cron_ran"}),
    )
    .await
    .expect("track");
    server.force_flush().await;
    let own = server
        .stored(own["eventId"].as_str().expect("id").parse().expect("uuid"))
        .await
        .expect("stored");
    assert_eq!(own.user_id.as_deref(), Some("story-service"));
    assert_eq!(own.actor_type.as_deref(), Some("SERVICE"));

    let creator =
        server.client_with_authorization(&format!("Bearer {}", jwt("user-9", Role::Creator)));
    for client in [server.client(), creator] {
        let refused = call(&client, "eventIngestion.track", event.clone())
            .await
            .expect_err("refused");
        assert_error(&refused, "BAD_REQUEST", -32600);
        assert_eq!(
            error_data(&refused)["zodError"]["formErrors"][0],
            "Unrecognized key(s) in object: 'userId'"
        );
        let batch = call(
            &client,
            "eventIngestion.trackBatch",
            json!({"events": [event.clone(), page_view()]}),
        )
        .await
        .expect("a batch settles per item");
        assert_eq!(batch["results"][0]["status"], "rejected");
        assert_eq!(batch["results"][1]["status"], "fulfilled");
    }
    let bad = call(
        &service,
        "eventIngestion.track",
        json!({"eventType": "x", "userId": ""}),
    )
    .await
    .expect_err("an empty user id");
    assert_error(&bad, "BAD_REQUEST", -32600);
}

async fn the_tracker_delivers_by_size_and_by_time(backend: Backend) {
    let server = TestServer::start(backend).await;
    // By size: the timer is an hour away, so only full batches of 10 go.
    let by_size = tracker(&server)
        .batch_size(10)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("tracker");
    for n in 0..25 {
        by_size.track(
            Event::new("story_generated")
                .user(format!("user-{n}"))
                .prop("n", n),
        );
    }
    assert_eq!(stored(&server, 20).await, 20);
    let metrics = settled(&by_size, 20).await;
    assert_eq!(
        (metrics.queued, metrics.delivered, metrics.queue_size),
        (25, 20, 5)
    );
    // A flush sends the rest.
    let report = by_size.flush().await;
    assert_eq!(
        (report.delivered, report.failed, report.remaining),
        (5, 0, 0)
    );
    assert_eq!(stored(&server, 25).await, 25);

    // By time: fewer than a batch go when the interval passes.
    let by_time = tracker(&server)
        .batch_size(50)
        .flush_interval(Duration::from_millis(200))
        .build()
        .expect("tracker");
    for n in 0..3 {
        by_time.track(Event::new("story_published").prop("n", n));
    }
    assert_eq!(stored(&server, 28).await, 28);
    assert_eq!(settled(&by_time, 3).await.delivered, 3);
    let stored_user = server.store().count_events().await.expect("count");
    assert_eq!(stored_user, 28);
    by_size.shutdown(SOON).await;
    by_time.shutdown(SOON).await;
}

async fn refused_events_fail_and_are_not_retried(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tracker = tracker(&server)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("tracker");
    tracker.track(Event::new("story_generated"));
    tracker.track(Event::new("asset_viewed"));
    tracker.track(Event::new(""));
    let started = std::time::Instant::now();
    let report = tracker.flush().await;
    assert_eq!((report.delivered, report.failed), (1, 2));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no backoff for refused events"
    );
    let metrics = tracker.metrics();
    assert_eq!((metrics.delivered, metrics.failed), (1, 2));
    assert!(
        metrics
            .last_error
            .as_deref()
            .is_some_and(|error| error.starts_with("BAD_REQUEST")),
        "{metrics:?}"
    );
    assert_eq!(stored(&server, 1).await, 1);
    // A token Sluice refuses fails the whole batch, without retrying either.
    let stranger = Tracker::builder(server.http_url())
        .bearer_token("not-a-token")
        .build()
        .expect("tracker");
    stranger.track(Event::new("story_generated"));
    let report = stranger.flush().await;
    assert_eq!((report.delivered, report.failed), (0, 1));
    assert!(
        stranger
            .metrics()
            .last_error
            .is_some_and(|error| error.starts_with("UNAUTHORIZED"))
    );
    tracker.shutdown(SOON).await;
    stranger.shutdown(SOON).await;
}

async fn rate_limited_events_are_retried_and_stored_once(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_limit_per_second = 20;
        config.limits.rate_limit_burst = 50;
    })
    .await;
    let tracker = tracker(&server)
        .batch_size(50)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("tracker");
    for n in 0..120 {
        tracker.track(Event::new("story_generated").user("user-1").prop("n", n));
    }
    let report = tracker.flush().await;
    assert_eq!(
        (report.delivered, report.failed, report.remaining),
        (120, 0, 0)
    );
    assert_eq!(stored(&server, 120).await, 120);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.count().await, 120, "each stored once");
    assert!(
        tracker
            .metrics()
            .last_error
            .is_some_and(|error| error.starts_with("TOO_MANY_REQUESTS"))
    );
    tracker.shutdown(SOON).await;
}

/// A TCP proxy whose first connection passes requests at once but holds the answers back
/// for `hold`; later connections pass both ways at once. Returns its address.
async fn slow_first_answer_proxy(
    upstream: std::net::SocketAddr,
    hold: Duration,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let slow = std::mem::replace(&mut first, false);
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(read) = server_read.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    if slow {
                        tokio::time::sleep(hold).await;
                    }
                    if client_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    address
}

async fn a_batch_retried_after_a_timeout_is_stored_once(backend: Backend) {
    // The first answer is held past the tracker's timeout, after Sluice took the events:
    // the retry, on a new connection, is answered `duplicate` by their fingerprints.
    let server = TestServer::start(backend).await;
    let upstream = server
        .http_url()
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let proxy = slow_first_answer_proxy(upstream, Duration::from_secs(2)).await;
    let tracker = Tracker::builder(format!("http://{proxy}"))
        .bearer_token(jwt("story-service", Role::Service))
        .batch_size(10)
        .request_timeout(Duration::from_millis(500))
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("tracker");
    for n in 0..10 {
        tracker.track(Event::new("story_generated").user("user-1").prop("n", n));
    }
    let report = tracker.flush().await;
    assert_eq!(
        (report.delivered, report.failed),
        (10, 0),
        "{:?}",
        tracker.metrics()
    );
    assert!(
        tracker
            .metrics()
            .last_error
            .is_some_and(|error| error.contains("sending failed")),
        "the first send timed out"
    );
    assert_eq!(stored(&server, 10).await, 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.count().await, 10, "stored once");
    tracker.shutdown(SOON).await;
}

async fn shutdown_drains_the_queue(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tracker = tracker(&server)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("tracker");
    for n in 0..7 {
        tracker.track(Event::new("story_generated").prop("n", n));
    }
    let report = tracker.shutdown(SOON).await;
    assert_eq!((report.delivered, report.remaining), (7, 0));
    assert_eq!(stored(&server, 7).await, 7);
    tracker.track(Event::new("too_late"));
    let metrics = tracker.metrics();
    assert_eq!(
        (metrics.delivered, metrics.dropped, metrics.queue_size),
        (7, 1, 0)
    );
}

async fn metrics_and_health_follow_the_seed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tracker = tracker(&server)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("tracker");
    for n in 0..99 {
        tracker.track(Event::new("story_generated").prop("n", n));
    }
    tracker.flush().await;
    let healthy = tracker.metrics();
    assert_eq!(healthy.health, Health::Healthy, "{healthy:?}");
    assert_eq!(healthy.delivery_rate, 1.0);
    assert!(healthy.average_send_time > Duration::ZERO);
    // Three refused of 102: 97 % delivered → degraded.
    for _ in 0..3 {
        tracker.track(Event::new(""));
    }
    tracker.flush().await;
    let degraded = tracker.metrics();
    assert_eq!((degraded.delivered, degraded.failed), (99, 3));
    assert_eq!(degraded.health, Health::Degraded, "{degraded:?}");
    // Ten more refused: under 95 % → critical.
    for _ in 0..10 {
        tracker.track(Event::new(""));
    }
    tracker.flush().await;
    assert_eq!(tracker.metrics().health, Health::Critical);
    tracker.shutdown(SOON).await;

    // A queue of 150 waiting for an unreachable Sluice is degraded; past 500, critical; and
    // past the bound the oldest are dropped.
    let unreachable = Tracker::builder("http://127.0.0.1:9")
        .batch_size(50)
        .queue_bound(600)
        .flush_interval(Duration::from_secs(3600))
        .max_retries(0)
        .build()
        .expect("tracker");
    for n in 0..150 {
        unreachable.track(Event::new("queued").prop("n", n));
    }
    // Full batches leave at once and fail; wait until they did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = unreachable.metrics();
    for n in 0..700 {
        unreachable.track(Event::new("queued").prop("n", n));
    }
    let flooded = unreachable.metrics();
    assert_eq!(flooded.queue_size.min(600), flooded.queue_size, "bounded");
    assert!(flooded.dropped > 0 || flooded.failed > 0, "{flooded:?}");
    assert_eq!(flooded.health, Health::Critical);
    drop(unreachable);
    let _ = ADMIN_TOKEN;
}

/// PostgreSQL cut away behind a proxy while a tracker sends (SQLite is embedded: there is no
/// connection to cut): Sluice's buffer fills, it answers SERVICE_UNAVAILABLE, the tracker
/// keeps its events and retries them, and once the database is back each one is stored once.
async fn a_database_outage_is_retried_through_and_stored_once(backend: Backend) {
    use crate::support::database::TestDatabase;
    use crate::support::proxy::ChaosProxy;
    let database = TestDatabase::create(&backend).await;
    let proxy = ChaosProxy::start(database.server_addr()).await;
    let mut config = crate::support::test_config(&database);
    config.database.database_url = Some(database.url_through(proxy.addr));
    config.pipeline.batch_size = 10;
    config.pipeline.batch_timeout_ms = 100;
    config.pipeline.buffer_capacity = 20;
    let server = TestServer::start_on(config).await;
    let tracker = tracker(&server)
        .batch_size(10)
        .flush_interval(Duration::from_millis(200))
        .max_retries(30)
        .build()
        .expect("tracker");
    proxy.cut();
    for n in 0..60 {
        tracker.track(Event::new("story_generated").user("user-1").prop("n", n));
    }
    // The buffer holds 20; the rest is refused and waits in the tracker.
    let deadline = tokio::time::Instant::now() + SOON;
    while !tracker
        .metrics()
        .last_error
        .is_some_and(|error| error.starts_with("SERVICE_UNAVAILABLE"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            tracker.metrics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waiting = tracker.metrics();
    assert!(waiting.delivered <= 20, "{waiting:?}");
    assert_eq!(waiting.failed, 0);
    proxy.restore();
    let report = tracker.flush().await;
    assert_eq!(report.failed, 0, "{:?}", tracker.metrics());
    assert_eq!(settled(&tracker, 60).await.delivered, 60);
    assert_eq!(stored(&server, 60).await, 60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.count().await, 60, "each stored once");
    tracker.shutdown(SOON).await;
}

/// `sluice token --role SERVICE` mints the token a tracker needs to set users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_token_mints_service_tokens() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["token", "--sub", "story-service", "--role", "SERVICE"])
        .env("SLUICE_JWT_SECRET", crate::support::JWT_SECRET)
        .output()
        .expect("run sluice");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let server = TestServer::start(Backend::Sqlite).await;
    let tracker = Tracker::builder(server.http_url())
        .bearer_token(token)
        .build()
        .expect("tracker");
    tracker.track(Event::new("story_generated").user("user-123"));
    let report = tracker.flush().await;
    assert_eq!(
        (report.delivered, report.failed),
        (1, 0),
        "{:?}",
        tracker.metrics()
    );
    tracker.shutdown(SOON).await;
}

mod a_database_outage_is_retried_through_and_stored_once {
    crate::shared_database_tests!(test);

    async fn test(backend: crate::support::Backend) {
        super::a_database_outage_is_retried_through_and_stored_once(backend).await;
    }
}
