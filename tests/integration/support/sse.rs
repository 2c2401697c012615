//! A Server-Sent Events reader over a real HTTP connection, for the live stream's tests.

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// One SSE message (or comment) as it came over the wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub comment: Option<String>,
    pub retry: Option<u64>,
}

impl Frame {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().unwrap_or("null")).expect("JSON data")
    }
}

/// An open SSE response.
pub struct SseStream {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    body: Incoming,
    buffer: String,
    /// Inflates a `Content-Encoding: gzip` stream as it comes, frame by frame.
    gzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
}

/// GETs `url` with `headers` and returns the open stream (or the error response).
pub async fn open(url: &str, headers: &[(&str, &str)]) -> SseStream {
    let mut request = Request::get(url).header("accept", "text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .request(request.body(Empty::new()).expect("request"))
        .await
        .expect("HTTP round trip");
    let (parts, body) = response.into_parts();
    let gzip = (parts
        .headers
        .get("content-encoding")
        .map(|value| value.as_bytes())
        == Some(b"gzip"))
    .then(|| flate2::write::GzDecoder::new(Vec::new()));
    SseStream {
        status: parts.status,
        headers: parts.headers,
        body,
        buffer: String::new(),
        gzip,
    }
}

impl SseStream {
    /// The next frame, or `None` when the stream ends; panics after `limit`.
    pub async fn next_frame(&mut self, limit: Duration) -> Option<Frame> {
        tokio::time::timeout(limit, self.read_frame())
            .await
            .expect("an SSE frame in time")
    }

    async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&raw));
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                match &mut self.gzip {
                    Some(decoder) => {
                        use std::io::Write as _;
                        decoder.write_all(&data).expect("a valid gzip stream");
                        decoder.flush().expect("inflated");
                        let inflated = std::mem::take(decoder.get_mut());
                        self.buffer.push_str(&String::from_utf8_lossy(&inflated));
                    }
                    None => self.buffer.push_str(&String::from_utf8_lossy(&data)),
                }
            }
        }
    }

    /// The next frame carrying data (skipping comments and retry hints).
    pub async fn next_data(&mut self, limit: Duration) -> Frame {
        loop {
            let frame = self.next_frame(limit).await.expect("the stream goes on");
            if frame.data.is_some() {
                return frame;
            }
        }
    }

    /// The next `{"type": kind, …}` message, skipping others.
    pub async fn next_of(&mut self, kind: &str, limit: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next_data(left).await;
            if frame.json()["type"] == kind {
                return frame;
            }
        }
    }

    /// The rest of the body, for error replies.
    pub async fn text(self) -> String {
        let bytes = self.body.collect().await.expect("body").to_bytes();
        format!("{}{}", self.buffer, String::from_utf8_lossy(&bytes))
    }
}

fn parse(raw: &str) -> Frame {
    let mut frame = Frame::default();
    for line in raw.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            frame.comment = Some(comment.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "id" => frame.id = Some(value),
            "event" => frame.event = Some(value),
            "data" => frame.data = Some(value),
            "retry" => frame.retry = value.parse().ok(),
            _ => {}
        }
    }
    frame
}
