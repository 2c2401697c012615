//! Error replies outside a procedure call, in the shared error shape (README "Errors"):
//! `{"error": …}` for plain HTTP routes and tRPC, a JSON-RPC envelope with `id: null` for `/`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::api::error::ApiError;

/// `{"error": shape}` with the error's HTTP status (and `Retry-After` when it has one).
pub fn error_response(error: &ApiError, path: &str) -> Response {
    json_error(error, json!({ "error": error.wire(path) }))
}

/// A JSON-RPC error reply (id null) carrying the shared error shape, with its HTTP status.
pub fn json_rpc_error_response(error: &ApiError) -> Response {
    json_error(
        error,
        json!({ "jsonrpc": "2.0", "id": Value::Null, "error": error.wire("") }),
    )
}

/// The HTTP status an error is answered with.
pub fn status_of(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_error(error: &ApiError, body: Value) -> Response {
    json_response(status_of(error), body.to_string(), error.retry_after_secs)
}

/// A JSON body with `status`, and `Retry-After` when `retry_after_secs` is set.
pub fn json_response(status: StatusCode, body: String, retry_after_secs: Option<u64>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
