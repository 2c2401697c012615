//! The HTTP side of the server: accepts TCP connections, records what each request says about
//! its caller in a [`RequestContext`], enforces the transport limits (body size, WebSocket
//! connections, CORS), and routes paths: `/` to JSON-RPC (POST and WebSocket upgrade),
//! `/api/trpc/…` to the tRPC adapter, anything else to a JSON 404.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use ipnet::IpNet;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    HttpBody, Methods, ServerConfig, StopHandle, TowerServiceBuilder, ws::is_upgrade_request,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::layer::util::{Identity, Stack};
use tower::{Service, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::client_ip::{cdn_place, client_ip};
use super::connection::{self, Acceptor};
use super::notifications::ExecuteNotificationsLayer;
use super::{probes, trpc};
use crate::api::EventIngestion;
use crate::api::error::{ApiError, ErrorCode};
use crate::domain::RequestContext;
use crate::url_parts::query_param;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RpcBuilder = TowerServiceBuilder<Stack<ExecuteNotificationsLayer, Identity>, Identity>;

/// Transport limits and policies.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_request_body_bytes: u32,
    pub max_connections: u32,
    /// Most calls in one JSON-RPC batch.
    pub max_batch_len: u32,
    /// Most WebSocket connections open at once.
    pub max_ws_connections: usize,
    /// Peers whose `X-Forwarded-For`/`X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins browsers may call from; `*` for any (then without credentials); empty: none.
    pub cors_origins: Vec<String>,
    /// Longest a client may take to send a request head, counted from when the connection
    /// is ready for it: also how long an idle keep-alive connection stays open.
    pub header_read_timeout: std::time::Duration,
}

/// Largest request body by default, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: u32 = 1024 * 1024;
/// Most concurrent connections by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;
/// How long a client may take to send a request head, or sit idle, by default, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 15;
/// Most WebSocket connections open at once by default.
pub const DEFAULT_MAX_WS_CONNECTIONS: usize = 1024;

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_request_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_batch_len: 100,
            max_ws_connections: DEFAULT_MAX_WS_CONNECTIONS,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            header_read_timeout: std::time::Duration::from_secs(
                DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
            ),
        }
    }
}

/// Serves `methods` on `listener` until `stop` fires; each connection finishes its current
/// requests before it closes.
pub async fn serve(
    listener: TcpListener,
    service: Arc<EventIngestion>,
    methods: Methods,
    settings: HttpSettings,
    stop: StopHandle,
) {
    let config = ServerConfig::builder()
        .max_request_body_size(settings.max_request_body_bytes)
        .max_response_body_size(u32::MAX)
        // The cap is enforced at accept (`connection::Acceptor`); jsonrpsee's own count, whose
        // default is 100, must not be lower.
        .max_connections(settings.max_connections)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(
            settings.max_batch_len,
        ))
        .build();
    let rpc_builder = jsonrpsee::server::Server::builder()
        .set_config(config)
        .set_rpc_middleware(RpcServiceBuilder::new().layer(ExecuteNotificationsLayer))
        .to_service_builder();
    let cors = cors_layer(&settings.cors_origins);
    let shared = Arc::new(Shared {
        ws_permits: Arc::new(Semaphore::new(settings.max_ws_connections)),
        settings,
        rpc_builder,
        service,
        methods,
        stop: stop.clone(),
    });
    let header_read_timeout = shared.settings.header_read_timeout;
    let acceptor = Acceptor::new(listener, shared.settings.max_connections as usize);
    loop {
        let (socket, peer_addr, permit) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = stop.clone().shutdown() => break,
        };
        let _ = socket.set_nodelay(true);
        let service = ServiceBuilder::new()
            .layer(cors.clone())
            .service(RouteService {
                shared: shared.clone(),
                peer_addr,
            });
        let connection_stop = stop.clone();
        tokio::spawn(async move {
            let served = connection::serve(
                socket,
                service,
                header_read_timeout,
                connection_stop.clone().shutdown(),
            );
            if let Err(error) = served.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(connection_stop);
            drop(permit);
        });
    }
}

/// What every connection's router shares.
struct Shared {
    settings: HttpSettings,
    rpc_builder: RpcBuilder,
    service: Arc<EventIngestion>,
    methods: Methods,
    stop: StopHandle,
    ws_permits: Arc<Semaphore>,
}

/// One connection's request router.
#[derive(Clone)]
struct RouteService {
    shared: Arc<Shared>,
    peer_addr: SocketAddr,
}

impl Service<Request<Incoming>> for RouteService {
    type Response = Response<HttpBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let context = request_context(
            &request,
            self.peer_addr,
            &self.shared.settings.trusted_proxies,
        );
        let shared = self.shared.clone();
        match request.uri().path() {
            path if path.starts_with(trpc::PREFIX) => async move {
                let limit = shared.settings.max_request_body_bytes as usize;
                Ok(trpc::handle(&shared.service, request, &context, limit).await)
            }
            .boxed(),
            "/healthz" => ready(Ok(probes::healthz())),
            "/readyz" => async move { Ok(probes::readyz(&shared.service).await) }.boxed(),
            "/metrics" => ready(Ok(probes::metrics(&shared.service))),
            "/" if is_upgrade_request(&request) => {
                request.extensions_mut().insert(context);
                websocket(shared, request).boxed()
            }
            "/" => {
                request.extensions_mut().insert(context);
                json_rpc_over_http(shared, request).boxed()
            }
            path => {
                let error = ApiError::new(ErrorCode::NotFound, format!("No route for {path}"));
                ready(Ok(error_response(&error, path)))
            }
        }
    }
}

/// Hands a WebSocket upgrade to jsonrpsee if a connection slot is free; the slot is given
/// back when the session closes.
async fn websocket(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<HttpBody>, BoxError> {
    let Ok(permit) = shared.ws_permits.clone().try_acquire_owned() else {
        let error = ApiError {
            retry_after_secs: Some(5),
            ..ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "Too many WebSocket connections (limit {})",
                    shared.settings.max_ws_connections
                ),
            )
        };
        return Ok(error_response(&error, "/"));
    };
    let mut rpc = shared
        .rpc_builder
        .clone()
        .build(shared.methods.clone(), shared.stop.clone());
    let closed = rpc.on_session_closed();
    tokio::spawn(async move {
        closed.await;
        drop(permit);
    });
    rpc.call(request).await
}

/// Reads the body within the size limit, then lets jsonrpsee answer.
async fn json_rpc_over_http(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<HttpBody>, BoxError> {
    let limit = shared.settings.max_request_body_bytes as usize;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Ok(payload_too_large(limit));
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Ok(payload_too_large(limit));
        }
        Err(error) => return Err(error),
    };
    let request = Request::from_parts(parts, Full::new(bytes));
    let mut rpc = shared
        .rpc_builder
        .clone()
        .build(shared.methods.clone(), shared.stop.clone());
    rpc.call(request).await
}

fn payload_too_large(limit: usize) -> Response<HttpBody> {
    let error = ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("Request body exceeds {limit} bytes"),
    );
    json_rpc_error_response(&error)
}

/// A JSON-RPC error reply (id null) carrying the shared error shape, with its HTTP status.
fn json_rpc_error_response(error: &ApiError) -> Response<HttpBody> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": Value::Null,
        "error": error.wire(""),
    });
    json_response(error, body)
}

/// A JSON error body in the shared error shape, with the matching HTTP status.
pub fn error_response(error: &ApiError, path: &str) -> Response<HttpBody> {
    let body = json!({ "error": error.wire(path) });
    json_response(error, body)
}

fn json_response(error: &ApiError, body: Value) -> Response<HttpBody> {
    let mut response = Response::new(HttpBody::from(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = error.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn ready(
    response: Result<Response<HttpBody>, BoxError>,
) -> BoxFuture<'static, Result<Response<HttpBody>, BoxError>> {
    futures_util::future::ready(response).boxed()
}

/// The caller facts of a request. Browsers cannot set headers on a WebSocket, so an upgrade
/// may carry its token as `?token=` instead.
fn request_context<B>(request: &Request<B>, peer: SocketAddr, trusted: &[IpNet]) -> RequestContext {
    let headers = request.headers();
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = text(header::AUTHORIZATION).or_else(|| {
        is_upgrade_request(request)
            .then(|| query_param(request.uri().query()?, "token"))
            .flatten()
            .map(|token| format!("Bearer {token}"))
    });
    RequestContext {
        authorization,
        client_ip: Some(client_ip(peer.ip(), headers, trusted)),
        user_agent: text(header::USER_AGENT),
        ack: text(header::HeaderName::from_static("x-sluice-ack")),
        geo: cdn_place(peer.ip(), headers, trusted),
    }
}

/// CORS for browser callers: preflights answered, `Authorization` and `Content-Type` allowed.
/// With a list of origins, credentials are allowed too; with `*`, any origin, without them.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([http::Method::GET, http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("trpc-accept"),
            header::HeaderName::from_static("x-sluice-ack"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(3600));
    if origins.iter().any(|origin| origin == "*") {
        return base.allow_origin(AllowOrigin::any());
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if allowed.is_empty() {
        // No origin listed: browsers on other origins get no CORS grant.
        return base.allow_origin(AllowOrigin::list([]));
    }
    base.allow_origin(AllowOrigin::list(allowed))
        .allow_credentials(true)
}

/// Runs `serve` on a spawned task, returning its join handle; a convenience for [`crate::server`].
pub fn spawn(
    listener: TcpListener,
    service: Arc<EventIngestion>,
    methods: Methods,
    settings: HttpSettings,
    stop: StopHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(serve(listener, service, methods, settings, stop))
}
