//! Plain HTTP requests, for asserting what goes over the wire byte for byte (JSON-RPC batches,
//! notifications, status codes) where a JSON-RPC client would hide it.

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// An HTTP response with its body parsed as JSON (`Value::Null` when empty).
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// POSTs `body` as-is with `headers`.
pub async fn post(url: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> RawResponse {
    let mut request = Request::post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::new(body.into())).expect("request")).await
}

pub async fn get(url: &str) -> RawResponse {
    send(
        Request::get(url)
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
}

/// Any method, any headers, any body.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> RawResponse {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::new(body.into())).expect("request")).await
}

async fn send(request: Request<Full<Bytes>>) -> RawResponse {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("HTTP round trip");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
    };
    RawResponse {
        status,
        headers,
        body,
        text,
    }
}
