//! Operational endpoints beside the procedures: `/healthz` (the process is alive), `/readyz`
//! (the database answers, its schema is current, the buffer takes events and writes are not
//! all failing: route traffic here), and `/metrics`
//! (Prometheus text format: the counters getStats reports, and histograms of flush
//! duration, batch size and procedure duration).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::routes::AppState;
use crate::api::live::LiveViewers;
use crate::metrics::Kind::{self, Counter, Gauge};
use crate::metrics::Sample;
use crate::pipeline::live::relay::RelayCounters;
use crate::pipeline::stats::{Health, StatsReport};

/// How long readiness waits for the database before it says no.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Response {
    respond(
        StatusCode::OK,
        "application/json",
        json!({"status": "ok"}).to_string(),
    )
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.service.pipeline().store();
    let check = async {
        store.ping().await?;
        store.pending_migrations().await
    };
    let (status, body) = match tokio::time::timeout(READINESS_TIMEOUT, check).await {
        Ok(Ok(0)) => match state.service.pipeline().stats().unavailable_reason {
            None => (StatusCode::OK, json!({"status": "ready"})),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable", "reason": reason}),
            ),
        },
        Ok(Ok(pending)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "reason": format!("{pending} migrations pending")}),
        ),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "reason": error.tag()}),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "reason": "database timeout"}),
        ),
    };
    respond(status, "application/json", body.to_string())
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let pipeline = state.service.pipeline();
    pipeline.metrics().publish(&samples(&state));
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        pipeline.metrics().render(),
    )
}

/// What one scrape reads the [`READINGS`] from.
struct Scrape<'a> {
    stats: StatsReport,
    viewers: &'a LiveViewers,
    relay: Option<&'a RelayCounters>,
}

type Reading = (&'static str, Kind, &'static str, fn(&Scrape) -> Option<f64>);

/// The values `/metrics` reads from their owners at each scrape (a reading of `None` is left
/// out); the histograms are recorded where the work happens (`pipeline::stats`,
/// `api::EventIngestion::call`).
#[rustfmt::skip]
const READINGS: &[Reading] = &[
    ("sluice_events_accepted_total", Counter, "Events accepted into the buffer.", |s| Some(s.stats.counters.accepted as f64)),
    ("sluice_events_persisted_total", Counter, "Events newly written to the database.", |s| Some(s.stats.counters.persisted as f64)),
    ("sluice_events_deduplicated_on_write_total", Counter, "Accepted events the database already held.", |s| Some(s.stats.counters.deduplicated_on_write as f64)),
    ("sluice_events_duplicate_total", Counter, "Events answered duplicate.", |s| Some(s.stats.counters.duplicates as f64)),
    ("sluice_events_replayed_total", Counter, "Events answered replayed (repeated idempotency key).", |s| Some(s.stats.counters.replayed as f64)),
    ("sluice_events_suppressed_total", Counter, "Events answered suppressed (consent, dropped bots).", |s| Some(s.stats.counters.suppressed as f64)),
    ("sluice_events_rejected_total", Counter, "Events refused by validation.", |s| Some(s.stats.counters.rejected as f64)),
    ("sluice_events_dead_lettered_total", Counter, "Events the database refused, kept in dead_letters.", |s| Some(s.stats.counters.dead_lettered as f64)),
    ("sluice_flushes_total", Counter, "Successful batch writes.", |s| Some(s.stats.counters.flushes as f64)),
    ("sluice_flush_failures_total", Counter, "Failed batch writes (retried).", |s| Some(s.stats.counters.failed_flushes as f64)),
    ("sluice_flush_retries_total", Counter, "Retries after failed writes.", |s| Some(s.stats.counters.retries as f64)),
    ("sluice_buffer_events", Gauge, "Events waiting in the buffer.", |s| Some(s.stats.buffer_size as f64)),
    ("sluice_buffer_capacity_events", Gauge, "Most events the buffer holds.", |s| Some(s.stats.config.buffer_capacity as f64)),
    ("sluice_delivery_ratio", Gauge, "Share of accepted events in the database.", |s| Some(s.stats.delivery_rate)),
    ("sluice_db_pool_connections", Gauge, "Open database connections.", |s| Some(s.stats.pool.status.size as f64)),
    ("sluice_db_pool_available", Gauge, "Idle database connections.", |s| Some(s.stats.pool.status.available as f64)),
    ("sluice_db_pool_waiting", Gauge, "Callers waiting for a connection.", |s| Some(s.stats.pool.status.waiting as f64)),
    ("sluice_health", Gauge, "0 healthy, 1 degraded, 2 critical.", |s| Some(health_level(s.stats.health))),
    ("sluice_live_viewers", Gauge, "Live viewers connected now.", |s| Some(s.viewers.connected() as f64)),
    ("sluice_live_viewers_dropped_total", Counter, "Live viewers dropped for falling behind or not reading.", |s| Some(load(&s.viewers.counters().dropped))),
    ("sluice_live_viewers_refused_total", Counter, "Live viewers refused because every place was taken.", |s| Some(load(&s.viewers.counters().refused))),
    ("sluice_live_relay_sent_total", Counter, "Live events sent to the other nodes.", |s| s.relay.map(|relay| load(&relay.sent))),
    ("sluice_live_relay_received_total", Counter, "Live events received from the other nodes.", |s| s.relay.map(|relay| load(&relay.received))),
    ("sluice_live_relay_dropped_total", Counter, "Live events the other nodes did not get (queue full, send failed, too large).", |s| s.relay.map(|relay| load(&relay.dropped))),
    ("sluice_live_relay_reconnects_total", Counter, "Times the live listener reconnected to the database.", |s| s.relay.map(|relay| load(&relay.reconnects))),
];

fn samples(state: &AppState) -> Vec<Sample> {
    let pipeline = state.service.pipeline();
    let scrape = Scrape {
        stats: pipeline.stats(),
        viewers: state.service.live_viewers(),
        relay: pipeline.live_relay().map(|relay| relay.counters()),
    };
    READINGS
        .iter()
        .filter_map(|&(name, kind, help, read)| {
            read(&scrape).map(|value| Sample {
                name,
                kind,
                help,
                value,
            })
        })
        .collect()
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

fn health_level(health: Health) -> f64 {
    match health {
        Health::Healthy => 0.0,
        Health::Degraded => 1.0,
        Health::Critical => 2.0,
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
