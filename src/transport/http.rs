//! The HTTP side of the server: accepts TCP connections, records what each request says about
//! its caller in a [`RequestContext`], and routes paths: `/` to JSON-RPC (POST and WebSocket
//! upgrade), anything else to a JSON 404.

use std::net::SocketAddr;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    HttpBody, Methods, ServerConfig, StopHandle, TowerServiceBuilder, serve_with_graceful_shutdown,
};
use serde_json::json;
use tokio::net::TcpListener;
use tower::Service;
use tower::layer::util::{Identity, Stack};

use super::notifications::ExecuteNotificationsLayer;

use crate::api::error::{ApiError, ErrorCode};
use crate::identity::RequestContext;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Transport limits.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_request_body_bytes: u32,
    pub max_connections: u32,
    /// Most calls in one JSON-RPC batch.
    pub max_batch_len: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 1024 * 1024,
            max_connections: 4096,
            max_batch_len: 100,
        }
    }
}

/// Serves `methods` on `listener` until `stop` fires; each connection finishes its current
/// requests before it closes.
pub async fn serve(
    listener: TcpListener,
    methods: Methods,
    settings: HttpSettings,
    stop: StopHandle,
) {
    let config = ServerConfig::builder()
        .max_request_body_size(settings.max_request_body_bytes)
        .max_response_body_size(u32::MAX)
        .max_connections(settings.max_connections)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(
            settings.max_batch_len,
        ))
        .build();
    let rpc_builder = jsonrpsee::server::Server::builder()
        .set_config(config)
        .set_rpc_middleware(RpcServiceBuilder::new().layer(ExecuteNotificationsLayer))
        .to_service_builder();
    loop {
        let (socket, peer_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a connection");
                    continue;
                }
            },
            () = stop.clone().shutdown() => break,
        };
        let _ = socket.set_nodelay(true);
        let service = RouteService {
            rpc_builder: rpc_builder.clone(),
            methods: methods.clone(),
            stop: stop.clone(),
            peer_addr,
        };
        let connection_stop = stop.clone();
        tokio::spawn(async move {
            let connection_done =
                serve_with_graceful_shutdown(socket, service, connection_stop.clone().shutdown());
            if let Err(error) = connection_done.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(connection_stop);
        });
    }
}

/// One connection's request router.
#[derive(Clone)]
struct RouteService {
    rpc_builder: TowerServiceBuilder<Stack<ExecuteNotificationsLayer, Identity>, Identity>,
    methods: Methods,
    stop: StopHandle,
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
        let context = request_context(request.headers(), self.peer_addr);
        request.extensions_mut().insert(context);
        match request.uri().path() {
            "/" => {
                let mut rpc = self
                    .rpc_builder
                    .clone()
                    .build(self.methods.clone(), self.stop.clone());
                rpc.call(request).boxed()
            }
            path => {
                let error = ApiError::new(ErrorCode::NotFound, format!("No route for {path}"));
                ready(error_response(&error, path))
            }
        }
    }
}

fn ready(response: Response<HttpBody>) -> BoxFuture<'static, Result<Response<HttpBody>, BoxError>> {
    async move { Ok(response) }.boxed()
}

/// A JSON error body in the shared error shape, with the matching HTTP status.
pub fn error_response(error: &ApiError, path: &str) -> Response<HttpBody> {
    let body = json!({
        "error": {
            "code": error.code.json_rpc_code(),
            "message": error.message,
            "data": error.data(path),
        }
    });
    let mut response = Response::new(HttpBody::from(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn request_context(headers: &HeaderMap, peer_addr: SocketAddr) -> RequestContext {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    RequestContext {
        authorization: text(header::AUTHORIZATION),
        peer_addr: Some(peer_addr),
        user_agent: text(header::USER_AGENT),
    }
}

/// Runs `serve` on a spawned task, returning its join handle; a convenience for [`crate::server`].
pub fn spawn(
    listener: TcpListener,
    methods: Methods,
    settings: HttpSettings,
    stop: StopHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(serve(listener, methods, settings, stop))
}
