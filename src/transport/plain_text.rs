//! `Content-Type: text/plain` JSON bodies (docs/trackers.md "The browser tracker"): `navigator.sendBeacon` can
//! send nothing else without a CORS preflight, and a preflight-free `fetch` is what lets a
//! tracker's first event leave at once. They are taken on the calls a page makes without
//! credentials — `track`, `trackBatch`, and `setConsent` for the tracker's opt-out — and
//! refused elsewhere as before, so that a simple cross-origin post reaches nothing else.

use http::{HeaderMap, header};
use serde_json::Value;

/// The procedures that take a `text/plain` body.
pub const PLAIN_TEXT_PROCEDURES: [&str; 3] = [
    "eventIngestion.track",
    "eventIngestion.trackBatch",
    "eventIngestion.setConsent",
];

/// The media type of `headers`' `Content-Type`, lowercased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Whether `headers` declare a `text/plain` body.
pub fn is_plain_text(headers: &HeaderMap) -> bool {
    media_type(headers).as_deref() == Some("text/plain")
}

/// Whether every one of `procedures` takes a `text/plain` body (and there is at least one).
pub fn all_take_plain_text<'a>(mut procedures: impl Iterator<Item = &'a str>) -> bool {
    let mut any = false;
    let all = procedures.all(|procedure| {
        any = true;
        PLAIN_TEXT_PROCEDURES.contains(&procedure)
    });
    any && all
}

/// Whether a JSON-RPC body (one request or a batch) calls only procedures that take a
/// `text/plain` body. A body that is not JSON-RPC at all is `false`: it is refused as
/// before.
pub fn json_rpc_takes_plain_text(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let requests = match &value {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    all_take_plain_text(
        requests
            .into_iter()
            .map(|request| request.get("method").and_then(Value::as_str).unwrap_or("")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tracking_calls_take_plain_text() {
        assert!(json_rpc_takes_plain_text(
            br#"{"jsonrpc":"2.0","id":1,"method":"eventIngestion.track","params":{}}"#
        ));
        assert!(json_rpc_takes_plain_text(
            br#"[{"method":"eventIngestion.track"},{"method":"eventIngestion.trackBatch"}]"#
        ));
        assert!(!json_rpc_takes_plain_text(
            br#"[{"method":"eventIngestion.track"},{"method":"eventIngestion.forceFlush"}]"#
        ));
        assert!(!json_rpc_takes_plain_text(b"[]"));
        assert!(!json_rpc_takes_plain_text(b"eventType=x"));
        assert!(!all_take_plain_text(std::iter::empty()));
    }
}
