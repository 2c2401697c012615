//! tRPC's HTTP wire format at `/api/trpc/<path>`, so frontends keep using `@trpc/client`
//! (v10 and v11: `httpLink`, `httpBatchLink`, `httpBatchStreamLink`).
//!
//! This adapter only translates: every call goes to the same [`EventIngestion::call`] that
//! JSON-RPC uses, and errors come out in the same shape.
//!
//! Wire facts: a query is `GET ?input=<urlencoded JSON>`, a mutation is `POST` with the raw
//! JSON input as body (empty body: no input). A batch is `/a,b?batch=1`, with the input (or
//! body) an object keyed `"0"`, `"1"`, … and a JSON array in reply, HTTP 207 when the items'
//! statuses differ. `trpc-accept: application/jsonl` asks for the streaming (JSON Lines)
//! form of a batch. An input of the form `{"json": …, "meta"?: …}` is a superjson envelope;
//! it is unwrapped and answered in kind.

use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use super::limits::read_body;
use super::plain_text;
use super::responses::{self, status_of};
use super::routes::AppState;
use super::sse;
use crate::api::error::{ApiError, ErrorCode};
use crate::api::live::LIVE_PATH;
use crate::api::{EventIngestion, Procedure};
use crate::domain::RequestContext;
use crate::url_parts::query_param;

/// The path prefix tRPC clients are pointed at.
pub const PREFIX: &str = "/api/trpc/";

/// The streaming forms of a batch reply.
enum Streaming {
    /// v11 `httpBatchStreamLink` (`trpc-accept: application/jsonl`).
    JsonLines,
    /// v10 `unstable_httpBatchStreamLink` (`trpc-batch-mode: stream`): one JSON object
    /// written a member per line.
    ObjectLines,
}

/// One call of a (possibly batched) request, decoded.
struct Call {
    path: String,
    input: Option<Value>,
    superjson: bool,
}

/// Answers one tRPC HTTP request.
pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let service = &*state.service;
    let max_body_bytes = state.settings.max_request_body_bytes as usize;
    let context = request
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default();
    let context = &context;
    let is_batch = request
        .uri()
        .query()
        .and_then(|query| query_param(query, "batch"))
        .is_some_and(|batch| batch == "1" || batch == "true");
    let streaming = if request
        .headers()
        .get("trpc-accept")
        .is_some_and(|accept| accept.as_bytes() == b"application/jsonl")
    {
        Some(Streaming::JsonLines)
    } else if request
        .headers()
        .get("trpc-batch-mode")
        .is_some_and(|mode| mode.as_bytes() == b"stream")
    {
        Some(Streaming::ObjectLines)
    } else {
        None
    };
    let paths: Vec<String> = request
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    let method = request.method().clone();
    if method == Method::GET && !is_batch && paths.len() == 1 && paths[0] == LIVE_PATH {
        return subscription(&state, &request);
    }
    let calls = match decode_calls(request, &paths, is_batch, max_body_bytes).await {
        Ok(calls) => calls,
        Err(error) => return single_response(&error_item(&error, None, false), Some(&error)),
    };
    let mut items = Vec::with_capacity(calls.len());
    let mut errors = Vec::with_capacity(calls.len());
    for call in calls {
        let outcome = run_call(service, &method, &call, context).await;
        let (item, error) = match outcome {
            Ok(data) => (success_item(data, call.superjson), None),
            Err(error) => (
                error_item(&error, Some(&call.path), call.superjson),
                Some(error),
            ),
        };
        items.push(item);
        errors.push(error);
    }
    if !is_batch {
        let item = items.pop().unwrap_or(Value::Null);
        return single_response(&item, errors.pop().flatten().as_ref());
    }
    match streaming {
        Some(Streaming::JsonLines) => {
            let superjson = items.iter().any(is_superjson_item);
            return jsonl_response(items, superjson);
        }
        Some(Streaming::ObjectLines) => return object_lines_response(items),
        None => {}
    }
    batch_response(items, &errors)
}

/// `eventIngestion.live`, the one subscription: served as SSE for `httpSubscriptionLink`.
fn subscription(state: &AppState, request: &Request) -> Response {
    let raw = request
        .uri()
        .query()
        .and_then(|query| query_param(query, "input"));
    match parse_input(raw) {
        Ok(input) => {
            let (input, superjson) = unwrap_superjson(input);
            sse::trpc_subscription(state, request, input, superjson, LIVE_PATH)
        }
        Err(error) => single_response(&error_item(&error, Some(LIVE_PATH), false), Some(&error)),
    }
}

async fn run_call(
    service: &EventIngestion,
    method: &Method,
    call: &Call,
    context: &RequestContext,
) -> Result<Value, ApiError> {
    let procedure = Procedure::from_path(&call.path).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!(
                "No \"{}\" procedure on path \"{}\"",
                kind(method),
                call.path
            ),
        )
    })?;
    let allowed = if procedure.is_query() {
        Method::GET
    } else {
        Method::POST
    };
    if method != allowed {
        return Err(ApiError::new(
            ErrorCode::MethodNotSupported,
            format!(
                "Unsupported {method} request to {} procedure at path \"{}\"",
                if procedure.is_query() {
                    "query"
                } else {
                    "mutation"
                },
                call.path
            ),
        ));
    }
    service.call(procedure, context, call.input.clone()).await
}

fn kind(method: &Method) -> &'static str {
    if method == Method::GET {
        "query"
    } else {
        "mutation"
    }
}

/// Reads the inputs: from `?input=` for GET, from the body for POST.
async fn decode_calls(
    request: Request,
    paths: &[String],
    is_batch: bool,
    max_body_bytes: usize,
) -> Result<Vec<Call>, ApiError> {
    let raw = match *request.method() {
        Method::GET => request
            .uri()
            .query()
            .and_then(|query| query_param(query, "input")),
        Method::POST => read_text_body(request, paths, max_body_bytes).await?,
        ref other => {
            return Err(ApiError::new(
                ErrorCode::MethodNotSupported,
                format!("tRPC accepts GET and POST, not {other}"),
            ));
        }
    };
    let parsed = parse_input(raw)?;
    if !is_batch {
        let path = paths.first().cloned().unwrap_or_default();
        let (input, superjson) = unwrap_superjson(parsed);
        return Ok(vec![Call {
            path,
            input,
            superjson,
        }]);
    }
    let mut by_index = match parsed {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::bad_request(
                "A batch input must be an object keyed by call index",
            ));
        }
    };
    Ok(paths
        .iter()
        .enumerate()
        .map(|(index, path)| {
            let (input, superjson) = unwrap_superjson(by_index.remove(&index.to_string()));
            Call {
                path: path.clone(),
                input,
                superjson,
            }
        })
        .collect())
}

async fn read_text_body(
    request: Request,
    paths: &[String],
    limit: usize,
) -> Result<Option<String>, ApiError> {
    let content_type = plain_text::media_type(request.headers());
    let bytes = read_body(request.into_body(), limit).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let plain_text_taken = content_type.as_deref() == Some("text/plain")
        && plain_text::all_take_plain_text(paths.iter().map(String::as_str));
    if content_type
        .as_deref()
        .is_some_and(|kind| kind != "application/json")
        && !plain_text_taken
    {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Send the input as application/json (text/plain is taken by track, trackBatch and setConsent only)",
        ));
    }
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| ApiError::new(ErrorCode::ParseError, "The body is not UTF-8"))
}

/// `{"json": x, "meta": …}` → `(x, true)`; anything else is passed through.
/// The raw input as JSON; blank is no input.
fn parse_input(raw: Option<String>) -> Result<Option<Value>, ApiError> {
    match raw.filter(|raw| !raw.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Value>(&raw)
            .map(Some)
            .map_err(|error| {
                ApiError::new(
                    ErrorCode::ParseError,
                    format!("Input is not valid JSON: {error}"),
                )
            }),
    }
}

fn unwrap_superjson(input: Option<Value>) -> (Option<Value>, bool) {
    match input {
        Some(Value::Object(mut map))
            if map.contains_key("json") && map.keys().all(|key| key == "json" || key == "meta") =>
        {
            let inner = map.remove("json").filter(|value| !value.is_null());
            (inner, true)
        }
        other => (other, false),
    }
}

fn success_item(data: Value, superjson: bool) -> Value {
    let data = if superjson {
        json!({ "json": data })
    } else {
        data
    };
    json!({ "result": { "data": data } })
}

fn error_item(error: &ApiError, path: Option<&str>, superjson: bool) -> Value {
    let mut shape = error.wire(path.unwrap_or(""));
    if path.is_none() {
        shape.data["path"] = Value::Null;
    }
    if superjson {
        json!({ "error": { "json": shape } })
    } else {
        json!({ "error": shape })
    }
}

fn is_superjson_item(item: &Value) -> bool {
    item.pointer("/result/data/json").is_some() || item.pointer("/error/json").is_some()
}

fn status_or_ok(error: Option<&ApiError>) -> StatusCode {
    error.map_or(StatusCode::OK, status_of)
}

fn single_response(item: &Value, error: Option<&ApiError>) -> Response {
    json_response(status_or_ok(error), item.to_string(), error)
}

/// The array reply of a batch: one status when all items agree, else 207 Multi-Status.
fn batch_response(items: Vec<Value>, errors: &[Option<ApiError>]) -> Response {
    let statuses: Vec<StatusCode> = errors
        .iter()
        .map(|error| status_or_ok(error.as_ref()))
        .collect();
    let status = match statuses.first() {
        Some(first) if statuses.iter().all(|status| status == first) => *first,
        Some(_) => StatusCode::MULTI_STATUS,
        None => StatusCode::OK,
    };
    let retry = errors
        .iter()
        .flatten()
        .find(|error| error.retry_after_secs.is_some());
    json_response(status, Value::Array(items).to_string(), retry)
}

/// The JSON Lines reply `httpBatchStreamLink` reads: a head line mapping each call index to
/// its encoded value. Every value here is already complete, so the head is the whole stream.
fn jsonl_response(items: Vec<Value>, superjson: bool) -> Response {
    let mut head = Map::new();
    for (index, item) in items.into_iter().enumerate() {
        let item = if superjson {
            unwrap_item_json(item)
        } else {
            item
        };
        head.insert(index.to_string(), json!([[item]]));
    }
    let head = if superjson {
        json!({ "json": head })
    } else {
        Value::Object(head)
    };
    let mut response = json_response(StatusCode::OK, format!("{head}\n"), None);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("trpc-accept"));
    response
}

/// v10's streaming form: `{"0":item` then `,"1":item` on the next lines, then `}`.
fn object_lines_response(items: Vec<Value>) -> Response {
    let mut body = String::new();
    for (index, item) in items.iter().enumerate() {
        body.push(if index == 0 { '{' } else { ',' });
        body.push_str(&format!("\"{index}\":{item}\n"));
    }
    if body.is_empty() {
        body.push('{');
    }
    body.push('}');
    let mut response = json_response(StatusCode::OK, body, None);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("trpc-batch-mode"));
    response
}

/// For streaming, superjson wraps the whole head, not each item's data.
fn unwrap_item_json(mut item: Value) -> Value {
    for pointer in ["/result/data", "/error"] {
        if let Some(wrapped) = item.pointer_mut(pointer)
            && let Some(inner) = wrapped.get_mut("json").map(Value::take)
        {
            *wrapped = inner;
        }
    }
    item
}

fn json_response(status: StatusCode, body: String, error: Option<&ApiError>) -> Response {
    responses::json_response(status, body, error.and_then(|error| error.retry_after_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superjson_envelopes_are_recognised_exactly() {
        assert_eq!(
            unwrap_superjson(Some(json!({"json": {"eventType": "x"}}))),
            (Some(json!({"eventType": "x"})), true)
        );
        assert_eq!(
            unwrap_superjson(Some(
                json!({"json": null, "meta": {"values": ["undefined"]}})
            )),
            (None, true)
        );
        let plain = json!({"eventType": "x", "json": 1});
        assert_eq!(unwrap_superjson(Some(plain.clone())), (Some(plain), false));
    }
}
