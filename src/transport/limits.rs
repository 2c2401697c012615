//! The request-body limit: a request whose `Content-Length` exceeds it is refused before a
//! byte of its body is read, and a body that turns out longer (chunked, or lying about its
//! length) is refused when the reader reaches the limit. Both answer PAYLOAD_TOO_LARGE in the
//! shape of the route: a JSON-RPC envelope on `/`, `{"error": …}` elsewhere.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header;

use super::responses::{error_response, json_rpc_error_response};
use crate::api::error::{ApiError, ErrorCode};

/// How a route words its errors.
#[derive(Debug, Clone, Copy)]
pub enum ErrorShape {
    /// `{"jsonrpc": "2.0", "id": null, "error": …}`.
    JsonRpc,
    /// `{"error": …}`, as tRPC and the plain HTTP routes answer.
    Plain,
}

/// The limit one route enforces, the state of [`refuse_declared_oversize`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub max_bytes: usize,
    pub shape: ErrorShape,
}

impl BodyLimit {
    /// The PAYLOAD_TOO_LARGE reply of this route.
    pub fn too_large(&self, path: &str) -> Response {
        let error = payload_too_large(self.max_bytes);
        match self.shape {
            ErrorShape::JsonRpc => json_rpc_error_response(&error),
            ErrorShape::Plain => error_response(&error, path),
        }
    }
}

/// Middleware: refuses a request whose declared length exceeds the limit.
pub async fn refuse_declared_oversize(
    State(limit): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit.max_bytes) {
        return limit.too_large(request.uri().path());
    }
    next.run(request).await
}

/// Reads a whole body, at most `max_bytes` of it.
pub async fn read_body(body: Body, max_bytes: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max_bytes)
        .await
        .map_err(|error| {
            let too_long = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_long {
                payload_too_large(max_bytes)
            } else {
                ApiError::bad_request(format!("Could not read the request body: {error}"))
            }
        })
}

fn payload_too_large(max_bytes: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("Request body exceeds {max_bytes} bytes"),
    )
}
