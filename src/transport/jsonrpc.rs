//! JSON-RPC 2.0: every procedure registered under its path, params by name (the input object)
//! or by position (`[input]`), served by jsonrpsee as the tower service on `/` (HTTP POST and
//! WebSocket).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::Poll;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use jsonrpsee::core::server::TrySendError;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    BatchRequestConfig, Methods, PendingSubscriptionSink, ServerConfig, StopHandle,
    TowerServiceBuilder, ws::is_upgrade_request,
};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::atomic::Ordering;
use tokio::sync::Semaphore;
use tower::Service;
use tower::layer::util::{Identity, Stack};

use super::http::HttpSettings;
use super::limits::read_body;
use super::notifications::ExecuteNotificationsLayer;
use super::plain_text;
use super::responses::{error_response, json_rpc_error_response};
use crate::api::error::{ApiError, ErrorCode, InvalidInput};
use crate::api::live::{LIVE_PATH, LiveInput, LiveItem, SUBSCRIBE_METHOD, UNSUBSCRIBE_METHOD};
use crate::api::{EventIngestion, Procedure};
use crate::domain::RequestContext;
use crate::pipeline::live::LiveMessage;

/// The module serving every `eventIngestion.*` method.
pub fn rpc_module(service: Arc<EventIngestion>) -> RpcModule<EventIngestion> {
    let mut module = RpcModule::from_arc(service);
    for procedure in Procedure::all() {
        let registered = module.register_async_method(
            procedure.path(),
            move |params, service, extensions| async move {
                call(procedure, &params, &service, &extensions).await
            },
        );
        // Paths are distinct constants; a clash is a programming error caught by every test.
        if let Err(error) = registered {
            panic!("registering {}: {error}", procedure.path());
        }
    }
    let subscribed = module.register_subscription(
        SUBSCRIBE_METHOD,
        LIVE_PATH,
        UNSUBSCRIBE_METHOD,
        |params, pending, service, extensions| async move {
            subscribe_live(&params, pending, &service, &extensions).await;
        },
    );
    if let Err(error) = subscribed {
        panic!("registering {SUBSCRIBE_METHOD}: {error}");
    }
    module
}

/// `eventIngestion.subscribeLive`: the live feed as `eventIngestion.live` notifications, each
/// `{"type": …, "data": …}`, until the client unsubscribes or is dropped for not reading.
async fn subscribe_live(
    params: &Params<'static>,
    pending: PendingSubscriptionSink,
    service: &EventIngestion,
    extensions: &Extensions,
) {
    let context = extensions
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default();
    let opened = input_from_params(params)
        .and_then(LiveInput::parse)
        .and_then(|input| service.open_live(&context, input));
    let mut feed = match opened {
        Ok(feed) => feed,
        Err(error) => {
            pending
                .reject(to_error_object(&error, SUBSCRIBE_METHOD))
                .await;
            return;
        }
    };
    let Ok(mut sink) = pending.accept().await else {
        return;
    };
    loop {
        let item = tokio::select! {
            item = feed.next() => item,
            () = sink.closed() => return,
        };
        let messages = match item {
            None => return,
            // WebSocket has its own pings.
            Some(LiveItem::Heartbeat) => continue,
            Some(LiveItem::Event(entry)) => vec![entry.message_json.clone()],
            Some(LiveItem::Events(batch)) => batch
                .entries
                .iter()
                .map(|entry| entry.message_json.clone())
                .collect(),
            Some(LiveItem::Connected(snapshot)) => {
                vec![LiveMessage::Connected(snapshot).to_json()]
            }
            Some(LiveItem::Stats(snapshot)) => vec![LiveMessage::Stats(snapshot).to_json()],
        };
        for message in messages {
            let Ok(raw) = RawValue::from_string(message) else {
                continue;
            };
            match sink.try_send(raw) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => return,
                Err(TrySendError::Full(_)) => {
                    service
                        .live_viewers()
                        .counters()
                        .dropped
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("live viewer dropped: its WebSocket is not reading");
                    return;
                }
            }
        }
    }
}

async fn call(
    procedure: Procedure,
    params: &Params<'static>,
    service: &EventIngestion,
    extensions: &Extensions,
) -> Result<Value, ErrorObjectOwned> {
    let context = extensions
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default();
    let result = match input_from_params(params) {
        Ok(input) => service.call(procedure, &context, input).await,
        Err(error) => {
            error.log(procedure.path());
            Err(error)
        }
    };
    result.map_err(|error| to_error_object(&error, procedure.path()))
}

/// Accepts `{…}` (by name), `[{…}]` (by position), `[]` or no params (no input).
fn input_from_params(params: &Params<'_>) -> Result<Option<Value>, ApiError> {
    let Some(raw) = params.as_str() else {
        return Ok(None);
    };
    let value: Value = serde_json::from_str(raw)
        .map_err(|error| ApiError::bad_request(format!("Invalid params: {error}")))?;
    match value {
        Value::Null => Ok(None),
        Value::Object(_) => Ok(Some(value)),
        Value::Array(mut items) if items.len() <= 1 => Ok(items.pop()),
        Value::Array(items) => {
            let mut errors = InvalidInput::default();
            errors.form(format!(
                "Expected the input object or [input] as params, got {} positional params",
                items.len()
            ));
            Err(ApiError::validation(errors))
        }
        _ => Err(ApiError::bad_request(
            "Params must be an object or an array",
        )),
    }
}

/// The wire form of an error: tRPC's number, message and data.
pub fn to_error_object(error: &ApiError, path: &str) -> ErrorObjectOwned {
    let wire = error.wire(path);
    ErrorObjectOwned::owned(wire.code, wire.message, Some(wire.data))
}

/// The HTTP side of JSON-RPC, the tower service on `/`: a POST body is read within the
/// body limit and answered by jsonrpsee; a WebSocket upgrade is handed to jsonrpsee if a
/// connection slot is free, and the slot is given back when the session closes.
#[derive(Clone)]
pub struct JsonRpcService {
    shared: Arc<Shared>,
}

struct Shared {
    builder: RpcBuilder,
    methods: Methods,
    stop: StopHandle,
    max_body_bytes: usize,
    ws_permits: Arc<Semaphore>,
    max_ws_connections: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RpcBuilder = TowerServiceBuilder<Stack<ExecuteNotificationsLayer, Identity>, Identity>;

impl JsonRpcService {
    /// Serves `methods` under `settings`; connections end when `stop` fires.
    pub fn new(methods: Methods, settings: &HttpSettings, stop: StopHandle) -> Self {
        let config = ServerConfig::builder()
            .max_request_body_size(settings.max_request_body_bytes)
            .max_response_body_size(u32::MAX)
            // The cap is enforced at accept (`connection::Acceptor`); jsonrpsee's own count,
            // whose default is 100, must not be lower.
            .max_connections(settings.max_connections)
            .set_batch_request_config(BatchRequestConfig::Limit(settings.max_batch_len))
            .build();
        let builder = jsonrpsee::server::Server::builder()
            .set_config(config)
            .set_rpc_middleware(RpcServiceBuilder::new().layer(ExecuteNotificationsLayer))
            .to_service_builder();
        Self {
            shared: Arc::new(Shared {
                builder,
                methods,
                stop,
                max_body_bytes: settings.max_request_body_bytes as usize,
                ws_permits: Arc::new(Semaphore::new(settings.max_ws_connections)),
                max_ws_connections: settings.max_ws_connections,
            }),
        }
    }
}

impl Shared {
    fn rpc(
        &self,
    ) -> jsonrpsee::server::TowerService<Stack<ExecuteNotificationsLayer, Identity>, Identity> {
        self.builder
            .clone()
            .build(self.methods.clone(), self.stop.clone())
    }

    async fn websocket(&self, request: Request) -> Result<Response, BoxError> {
        let Ok(permit) = self.ws_permits.clone().try_acquire_owned() else {
            let error = ApiError {
                retry_after_secs: Some(5),
                ..ApiError::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "Too many WebSocket connections (limit {})",
                        self.max_ws_connections
                    ),
                )
            };
            return Ok(error_response(&error, "/"));
        };
        let mut rpc = self.rpc();
        let closed = rpc.on_session_closed();
        tokio::spawn(async move {
            closed.await;
            drop(permit);
        });
        Ok(rpc.call(request).await?.map(Body::new))
    }

    async fn http(&self, request: Request) -> Result<Response, BoxError> {
        let (mut parts, body) = request.into_parts();
        let bytes = match read_body(body, self.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(error) => return Ok(json_rpc_error_response(&error)),
        };
        // jsonrpsee takes JSON only: a tracking call sent as text/plain is JSON by contract.
        if plain_text::is_plain_text(&parts.headers)
            && plain_text::json_rpc_takes_plain_text(&bytes)
        {
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
        }
        let request = Request::from_parts(parts, Full::new(bytes));
        Ok(self.rpc().call(request).await?.map(Body::new))
    }
}

impl Service<Request> for JsonRpcService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let shared = self.shared.clone();
        async move {
            let answered = if is_upgrade_request(&request) {
                shared.websocket(request).await
            } else {
                shared.http(request).await
            };
            Ok(answered.unwrap_or_else(|error| {
                tracing::error!(%error, "JSON-RPC transport failed");
                let error = ApiError::new(ErrorCode::InternalServerError, "Internal server error");
                json_rpc_error_response(&error)
            }))
        }
        .boxed()
    }
}
