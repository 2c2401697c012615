//! Operational endpoints beside the procedures: `/healthz` (the process is alive), `/readyz`
//! (the database answers, its schema is current, the buffer takes events and writes are not
//! all failing: route traffic here), and `/metrics`
//! (Prometheus text format, from the same counters getStats reports).

use std::fmt::Write as _;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::routes::AppState;
use crate::pipeline::stats::Health;

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
    let stats = state.service.pipeline().stats();
    let counters = &stats.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP sluice_{name} {help}\n# TYPE sluice_{name} {kind}\nsluice_{name} {value}"
        );
    };
    metric(
        "events_accepted_total",
        "counter",
        "Events accepted into the buffer.",
        counters.accepted as f64,
    );
    metric(
        "events_persisted_total",
        "counter",
        "Events newly written to the database.",
        counters.persisted as f64,
    );
    metric(
        "events_deduplicated_on_write_total",
        "counter",
        "Accepted events the database already held.",
        counters.deduplicated_on_write as f64,
    );
    metric(
        "events_duplicate_total",
        "counter",
        "Events answered duplicate.",
        counters.duplicates as f64,
    );
    metric(
        "events_replayed_total",
        "counter",
        "Events answered replayed (repeated idempotency key).",
        counters.replayed as f64,
    );
    metric(
        "events_suppressed_total",
        "counter",
        "Events answered suppressed (consent, dropped bots).",
        counters.suppressed as f64,
    );
    metric(
        "events_rejected_total",
        "counter",
        "Events refused by validation.",
        counters.rejected as f64,
    );
    metric(
        "events_dead_lettered_total",
        "counter",
        "Events the database refused, kept in dead_letters.",
        counters.dead_lettered as f64,
    );
    metric(
        "flushes_total",
        "counter",
        "Successful batch writes.",
        counters.flushes as f64,
    );
    metric(
        "flush_failures_total",
        "counter",
        "Failed batch writes (retried).",
        counters.failed_flushes as f64,
    );
    metric(
        "flush_retries_total",
        "counter",
        "Retries after failed writes.",
        counters.retries as f64,
    );
    metric(
        "buffer_events",
        "gauge",
        "Events waiting in the buffer.",
        stats.buffer_size as f64,
    );
    metric(
        "buffer_capacity_events",
        "gauge",
        "Most events the buffer holds.",
        stats.config.buffer_capacity as f64,
    );
    metric(
        "flush_duration_average_ms",
        "gauge",
        "Mean duration of successful flushes.",
        stats.average_flush_ms,
    );
    metric(
        "delivery_ratio",
        "gauge",
        "Share of accepted events in the database.",
        stats.delivery_rate,
    );
    metric(
        "db_pool_connections",
        "gauge",
        "Open database connections.",
        stats.pool.status.size as f64,
    );
    metric(
        "db_pool_available",
        "gauge",
        "Idle database connections.",
        stats.pool.status.available as f64,
    );
    metric(
        "db_pool_waiting",
        "gauge",
        "Callers waiting for a connection.",
        stats.pool.status.waiting as f64,
    );
    let health = match stats.health {
        Health::Healthy => 0.0,
        Health::Degraded => 1.0,
        Health::Critical => 2.0,
    };
    metric(
        "health",
        "gauge",
        "0 healthy, 1 degraded, 2 critical.",
        health,
    );
    let viewers = state.service.live_viewers();
    let load = |counter: &std::sync::atomic::AtomicU64| {
        counter.load(std::sync::atomic::Ordering::Relaxed) as f64
    };
    metric(
        "live_viewers",
        "gauge",
        "Live viewers connected now.",
        viewers.connected() as f64,
    );
    metric(
        "live_viewers_dropped_total",
        "counter",
        "Live viewers dropped for falling behind or not reading.",
        load(&viewers.counters().dropped),
    );
    metric(
        "live_viewers_refused_total",
        "counter",
        "Live viewers refused because every place was taken.",
        load(&viewers.counters().refused),
    );
    if let Some(relay) = state.service.pipeline().live_relay() {
        let relayed = relay.counters();
        metric(
            "live_relay_sent_total",
            "counter",
            "Live events sent to the other nodes.",
            load(&relayed.sent),
        );
        metric(
            "live_relay_received_total",
            "counter",
            "Live events received from the other nodes.",
            load(&relayed.received),
        );
        metric(
            "live_relay_dropped_total",
            "counter",
            "Live events the other nodes did not get (queue full, send failed, too large).",
            load(&relayed.dropped),
        );
        metric(
            "live_relay_reconnects_total",
            "counter",
            "Times the live listener reconnected to the database.",
            load(&relayed.reconnects),
        );
    }
    respond(StatusCode::OK, "text/plain; version=0.0.4", out)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
