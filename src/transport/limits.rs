//! The request-body limit: a request whose `Content-Length` exceeds it is refused before a
//! byte of its body is read, and a body that turns out longer (chunked, or lying about its
//! length) is refused when the reader reaches the limit. Both answer PAYLOAD_TOO_LARGE in the
//! shape of the route: a JSON-RPC envelope on `/`, `{"error": …}` elsewhere.

use std::task::{Context, Poll};

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use http::header;
use http_body_util::BodyExt;
use tower::{Layer, Service};

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

/// The layer that refuses a request whose declared length exceeds the limit, answering in
/// the route's shape (a plain tower layer: no boxing or cloning on the request path).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    pub max_bytes: usize,
    pub shape: ErrorShape,
}

impl BodyLimitLayer {
    /// The PAYLOAD_TOO_LARGE reply of this route.
    fn too_large(&self, path: &str) -> Response {
        let error = payload_too_large(self.max_bytes);
        match self.shape {
            ErrorShape::JsonRpc => json_rpc_error_response(&error),
            ErrorShape::Plain => error_response(&error, path),
        }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = RefuseDeclaredOversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefuseDeclaredOversize {
            inner,
            limit: *self,
        }
    }
}

/// The service of [`BodyLimitLayer`].
#[derive(Clone)]
pub struct RefuseDeclaredOversize<S> {
    inner: S,
    limit: BodyLimitLayer,
}

impl<S> Service<Request> for RefuseDeclaredOversize<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > self.limit.max_bytes) {
            let (parts, body) = request.into_parts();
            discard_in_background(body);
            return Either::Left(ready(Ok(self.limit.too_large(parts.uri.path()))));
        }
        Either::Right(self.inner.call(request))
    }
}

/// Reads a whole body, at most `max_bytes` of it.
pub async fn read_body(mut body: Body, max_bytes: usize) -> Result<Bytes, ApiError> {
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            ApiError::bad_request(format!("Could not read the request body: {error}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if collected.len() + data.len() > max_bytes {
            discard_in_background(body);
            return Err(payload_too_large(max_bytes));
        }
        collected.extend_from_slice(&data);
    }
    Ok(Bytes::from(collected))
}

/// Most of a refused body read and thrown away, and for how long.
const DISCARD_MAX_BYTES: usize = 16 * 1024 * 1024;
const DISCARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the rest of a refused body and throws it away, so that the client, still sending,
/// gets to read the error: closing a connection with unread data resets it, and the client
/// would see a broken connection instead of PAYLOAD_TOO_LARGE. Bounded in bytes and time; a
/// client past either bound is cut off.
fn discard_in_background(mut body: Body) {
    tokio::spawn(async move {
        let drained = async {
            let mut seen = 0;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > DISCARD_MAX_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_TIMEOUT, drained).await;
    });
}

fn payload_too_large(max_bytes: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("Request body exceeds {max_bytes} bytes"),
    )
}
