//! The HTML pages: each one self-contained (its styles and script inline, nothing from a
//! CDN), compiled into the binary.

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, header};

/// The live page (docs/live-and-metrics.md "Live analytics"): status, current visitors, active pages and
/// the activity feed, over SSE `/api/live`.
const LIVE_PAGE: &str = include_str!("pages/live.html");

/// The dashboard (docs/live-and-metrics.md "Metrics and the dashboard"): totals, the series chart and the top lists of a
/// range, from `eventIngestion.getMetrics`, with click-to-filter.
const DASHBOARD_PAGE: &str = include_str!("pages/dashboard.html");

/// `GET /dashboard`.
pub async fn dashboard() -> Response {
    page(DASHBOARD_PAGE)
}

/// `GET /live`.
pub async fn live() -> Response {
    page(LIVE_PAGE)
}

fn page(html: &'static str) -> Response {
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    // The page holds no data; the token never leaves the tab's sessionStorage.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
