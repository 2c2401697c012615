//! Server-Sent Events for live viewers: SSE `GET /api/live` (`live`) and the tRPC
//! subscription `eventIngestion.live` ([`trpc_subscription`]) frame the same
//! [`LiveFeed`], each in its own dialect.
//!
//! | item      | `/api/live`                                   | tRPC `httpSubscriptionLink`         |
//! |-----------|-----------------------------------------------|-------------------------------------|
//! | start     | `retry: 2000`                                 | `event: connected` (client options) |
//! | connected | `data: {"type":"connected","data":snapshot}`  | a `stats` data item                 |
//! | event     | `id: <eventId>` + `data: {"type":"new_event",…}` | the same, a tracked item         |
//! | stats     | `data: {"type":"stats","data":snapshot}`      | an untracked item, then `restore-id` |
//! | heartbeat | `: heartbeat`                                 | `event: ping`                       |

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::StreamExt;
use http::{HeaderValue, header};
use serde_json::Value;

use super::responses::error_response;
use super::routes::AppState;
use crate::api::live::{HEARTBEAT_INTERVAL, LiveFeed, LiveInput, LiveItem};
use crate::domain::RequestContext;
use crate::pipeline::live::{LiveBatch, LiveMessage};
use crate::url_parts::query_param;

/// The path of the SSE endpoint.
pub const LIVE_SSE_PATH: &str = "/api/live";

/// How long a browser waits before it reconnects, in milliseconds.
const RECONNECT_MS: u64 = 2_000;

/// `GET /api/live`: the admin's live stream. The token comes in `Authorization` or, since
/// `EventSource` cannot set headers, as `?token=`; a reconnecting `EventSource` sends
/// `Last-Event-ID`.
pub async fn live(State(state): State<AppState>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let context = with_query_token(&request, query_param(query, "token"));
    let last_event_id = request
        .headers()
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_param(query, "lastEventId"));
    let input = LiveInput { last_event_id };
    match state.service.open_live(&context, input) {
        Ok(feed) => stream_response(feed, Dialect::Live, accepts_gzip(&request)),
        Err(error) => error_response(&error, LIVE_SSE_PATH),
    }
}

/// The tRPC subscription `eventIngestion.live` (GET with `?input=` and, from
/// `httpSubscriptionLink`'s `connectionParams`, `?connectionParams={"token":…}`).
pub fn trpc_subscription(
    state: &AppState,
    request: &Request,
    input: Option<Value>,
    superjson: bool,
    path: &str,
) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let token = query_param(query, "connectionParams")
        .and_then(|params| serde_json::from_str::<Value>(&params).ok())
        .and_then(|params| params.get("token")?.as_str().map(str::to_owned));
    let context = with_query_token(request, token);
    let opened = LiveInput::parse(input).and_then(|mut input| {
        if input.last_event_id.is_none() {
            input.last_event_id = request
                .headers()
                .get("last-event-id")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
        }
        let resumed = input.last_event_id.clone();
        state
            .service
            .open_live(&context, input)
            .map(|feed| (feed, resumed))
    });
    match opened {
        Ok((feed, resumed)) => stream_response(
            feed,
            Dialect::Trpc {
                superjson,
                last_id: resumed,
            },
            accepts_gzip(request),
        ),
        Err(error) => error_response(&error, path),
    }
}

/// The request's context, with a token from the query when no `Authorization` came.
fn with_query_token(request: &Request, token: Option<String>) -> RequestContext {
    let mut context = request
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default();
    if context.authorization.is_none() {
        context.authorization = token
            .filter(|token| !token.is_empty())
            .map(|token| format!("Bearer {token}"));
    }
    context
}

enum Dialect {
    Live,
    Trpc {
        superjson: bool,
        /// The id of the last tracked item sent, restored after each untracked one.
        last_id: Option<String>,
    },
}

/// What one item becomes on the wire: a batch's shared frames, or this viewer's own text.
enum Chunk {
    Shared(Arc<LiveBatch>),
    Own(String),
}

fn stream_response(feed: LiveFeed, mut dialect: Dialect, gzip: bool) -> Response {
    let opening = match &dialect {
        Dialect::Live => format!("retry: {RECONNECT_MS}\n\n"),
        Dialect::Trpc { .. } => {
            // The client reconnects by itself when it hears nothing for this long.
            let inactivity_ms = HEARTBEAT_INTERVAL.as_millis() * 3;
            format!(
                "event: connected\ndata: {{\"reconnectAfterInactivityMs\":{inactivity_ms}}}\n\n"
            )
        }
    };
    let opening = if gzip {
        let mut first = GZIP_HEADER.to_vec();
        first.extend_from_slice(&deflate_segment(opening.as_bytes()));
        Bytes::from(first)
    } else {
        Bytes::from(opening)
    };
    // One chunk, so one write, per item.
    let frames = feed.into_stream().map(move |item| {
        let bytes = match (dialect.frame(item), gzip) {
            (Chunk::Shared(batch), false) => batch.framed.get_or_init(|| framed(&batch)).clone(),
            (Chunk::Shared(batch), true) => batch
                .compressed
                .get_or_init(|| deflate_segment(batch.framed.get_or_init(|| framed(&batch))))
                .clone(),
            (Chunk::Own(text), false) => Bytes::from(text),
            (Chunk::Own(text), true) => deflate_segment(text.as_bytes()),
        };
        Ok::<_, Infallible>(bytes)
    });
    let body = futures_util::stream::once(async move { Ok(opening) }).chain(frames);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    // Proxies such as nginx would otherwise hold events back to fill a buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Whether the client takes a gzip body (browsers' `EventSource` and Node's fetch do).
fn accepts_gzip(request: &Request) -> bool {
    super::request_context::header_items(request.headers(), header::ACCEPT_ENCODING).any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|param| param.replace(' ', "") == "q=0");
        name.eq_ignore_ascii_case("gzip") && !refused
    })
}

/// A gzip member's header: deflate, no name, no time, unknown OS. The trailer never comes:
/// the stream ends only when the connection does.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `data` deflated on its own and ended with a sync flush: the segment ends on a byte
/// boundary, is not final and refers to nothing before it, so segments compressed apart —
/// a batch once for every viewer, a viewer's own items — join into one valid stream.
fn deflate_segment(data: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    let _ = encoder.flush();
    Bytes::from(std::mem::take(encoder.get_mut()))
}

/// Every event of `batch` as `id: <eventId>` and `data: <new_event message>`.
fn framed(batch: &LiveBatch) -> Bytes {
    let size: usize = batch
        .entries
        .iter()
        .map(|entry| entry.message_json.len() + 56)
        .sum();
    let mut text = String::with_capacity(size);
    for entry in &batch.entries {
        data_frame(
            &mut text,
            Some(&entry.event.event_id.to_string()),
            &entry.message_json,
        );
    }
    Bytes::from(text)
}

impl Dialect {
    fn frame(&mut self, item: LiveItem) -> Chunk {
        let mut out = String::new();
        match (self, item) {
            (Self::Live, LiveItem::Events(batch)) => return Chunk::Shared(batch),
            (Self::Live, LiveItem::Connected(snapshot)) => {
                data_frame(&mut out, None, &LiveMessage::Connected(snapshot).to_json());
            }
            (Self::Live, LiveItem::Stats(snapshot)) => {
                data_frame(&mut out, None, &LiveMessage::Stats(snapshot).to_json());
            }
            (Self::Live, LiveItem::Event(entry)) => {
                let id = entry.event.event_id.to_string();
                data_frame(&mut out, Some(&id), &entry.message_json);
            }
            (Self::Live, LiveItem::Heartbeat) => out.push_str(": heartbeat\n\n"),
            (Self::Trpc { .. }, LiveItem::Heartbeat) => out.push_str("event: ping\ndata: \n\n"),
            (Self::Trpc { superjson, last_id }, LiveItem::Events(batch)) => {
                *last_id = batch
                    .entries
                    .last()
                    .map(|entry| entry.event.event_id.to_string());
                // A tracked tRPC item is framed as an `/api/live` event.
                if !*superjson {
                    return Chunk::Shared(batch);
                }
                for entry in &batch.entries {
                    let id = entry.event.event_id.to_string();
                    data_frame(&mut out, Some(&id), &wrap(true, &entry.message_json));
                }
            }
            (Self::Trpc { superjson, last_id }, LiveItem::Event(entry)) => {
                let id = entry.event.event_id.to_string();
                data_frame(&mut out, Some(&id), &wrap(*superjson, &entry.message_json));
                *last_id = Some(id);
            }
            (
                Self::Trpc { superjson, last_id },
                LiveItem::Connected(snapshot) | LiveItem::Stats(snapshot),
            ) => {
                let json = LiveMessage::Stats(snapshot).to_json();
                let data = wrap(*superjson, &json);
                match last_id {
                    None => data_frame(&mut out, None, &data),
                    // An item without an id would be read as a repeat of the last tracked
                    // one: clear the id for it, then put the last one back (as tRPC does).
                    Some(last) => {
                        data_frame(&mut out, Some(""), &data);
                        let _ = write!(out, "event: restore-id\nid: {last}\ndata: \n\n");
                    }
                }
            }
        }
        Chunk::Own(out)
    }
}

fn wrap(superjson: bool, json: &str) -> std::borrow::Cow<'_, str> {
    if superjson {
        format!("{{\"json\":{json}}}").into()
    } else {
        json.into()
    }
}

/// Appends one SSE message; `data` is one line of JSON.
fn data_frame(out: &mut String, id: Option<&str>, data: &str) {
    out.reserve(data.len() + 64);
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = write!(out, "data: {data}\n\n");
}
