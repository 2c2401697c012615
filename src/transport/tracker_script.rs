//! `GET /sluice.js`: the browser tracker (docs/trackers.md "The browser tracker"), built from
//! `clients/browser/sluice.js` into `sluice.min.js` and compiled into the binary. Cached by
//! browsers for an hour and revalidated with its ETag.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The script as served.
pub const TRACKER_SCRIPT: &str = include_str!("../../clients/browser/sluice.min.js");

/// A strong ETag: the script's SHA-256, so a new build is a new tag.
static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(TRACKER_SCRIPT.as_bytes());
    let hex: String = digest[..12]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    HeaderValue::from_str(&format!("\"{hex}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"sluice\""))
});

/// `GET /sluice.js`: the script, or 304 when the browser's copy is current.
pub async fn tracker_script(request: Request) -> Response {
    let etag = ETAG.clone();
    let current = super::request_context::header_items(request.headers(), header::IF_NONE_MATCH)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes());
    let mut response = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(TRACKER_SCRIPT))
    };
    let headers = response.headers_mut();
    if !current {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
    }
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Embedded from any origin's pages.
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_is_at_most_2000_bytes_gzipped() {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(TRACKER_SCRIPT.as_bytes()).expect("gzip");
        let size = encoder.finish().expect("gzip").len();
        assert!(size <= 2_000, "{size} bytes gzipped");
    }
}
