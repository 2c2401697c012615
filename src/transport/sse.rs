//! Server-Sent Events for live viewers: SSE `GET /api/live` ([`live`]) and the tRPC
//! subscription `eventIngestion.live` ([`trpc_subscription`]) frame the same
//! [`LiveFeed`](crate::api::live::LiveFeed), each in its own dialect.
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
use crate::pipeline::live::LiveMessage;
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
        Ok(feed) => stream_response(feed, Dialect::Live),
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

fn stream_response(feed: LiveFeed, mut dialect: Dialect) -> Response {
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
    // One chunk, so one write, per batch.
    let frames = feed.into_batches().map(move |batch| {
        let mut chunk = String::new();
        for item in batch {
            dialect.write_frame(item, &mut chunk);
        }
        Ok::<_, Infallible>(Bytes::from(chunk))
    });
    let body = futures_util::stream::once(async move { Ok(Bytes::from(opening)) }).chain(frames);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold events back to fill a buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

impl Dialect {
    fn write_frame(&mut self, item: LiveItem, out: &mut String) {
        match (self, item) {
            (Self::Live, LiveItem::Connected(snapshot)) => {
                data_frame(out, None, &LiveMessage::Connected(snapshot).to_json());
            }
            (Self::Live, LiveItem::Stats(snapshot)) => {
                data_frame(out, None, &LiveMessage::Stats(snapshot).to_json());
            }
            (Self::Live, LiveItem::Event(entry)) => {
                let id = entry.event.event_id.to_string();
                data_frame(out, Some(&id), &entry.message_json);
            }
            (Self::Live, LiveItem::Heartbeat) => out.push_str(": heartbeat\n\n"),
            (Self::Trpc { .. }, LiveItem::Heartbeat) => out.push_str("event: ping\ndata: \n\n"),
            (Self::Trpc { superjson, last_id }, LiveItem::Event(entry)) => {
                let id = entry.event.event_id.to_string();
                data_frame(out, Some(&id), &wrap(*superjson, &entry.message_json));
                *last_id = Some(id);
            }
            (
                Self::Trpc { superjson, last_id },
                LiveItem::Connected(snapshot) | LiveItem::Stats(snapshot),
            ) => {
                let json = LiveMessage::Stats(snapshot).to_json();
                let data = wrap(*superjson, &json);
                match last_id {
                    None => data_frame(out, None, &data),
                    // An item without an id would be read as a repeat of the last tracked
                    // one: clear the id for it, then put the last one back (as tRPC does).
                    Some(last) => {
                        data_frame(out, Some(""), &data);
                        let _ = write!(out, "event: restore-id\nid: {last}\ndata: \n\n");
                    }
                }
            }
        }
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
