//! The route table: every path Sluice answers, and the layers around them.
//!
//! | path             | method       | handler                                   |
//! |------------------|--------------|-------------------------------------------|
//! | `/`              | POST, upgrade| JSON-RPC over HTTP and WebSocket ([`JsonRpcService`]) |
//! | `/api/trpc/…`    | GET, POST    | tRPC's HTTP wire format ([`trpc::handle`]) |
//! | `/healthz`       | GET          | liveness ([`probes::healthz`])            |
//! | `/readyz`        | GET          | readiness ([`probes::readyz`])            |
//! | `/metrics`       | GET          | Prometheus text ([`probes::metrics`])     |
//! | `/api/live`      | GET          | the live stream as SSE ([`sse::live`])    |
//! | `/live`          | GET          | the live page ([`pages::live`])           |
//! | `/dashboard`     | GET          | the dashboard ([`pages::dashboard`])      |
//! | `/sluice.js`     | GET          | the browser tracker ([`tracker_script::tracker_script`]) |
//! | anything else    |              | NOT_FOUND in the shared error shape       |
//!
//! Around every route, outermost first: tracing, CORS, the request context. Routes that read
//! a body refuse a declared length over the limit before reading it.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{any, get};
use http::{HeaderValue, header};
use jsonrpsee::server::{Methods, StopHandle};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use super::http::HttpSettings;
use super::jsonrpc::JsonRpcService;
use super::limits::{BodyLimitLayer, ErrorShape};
use super::request_context::{RequestContextLayer, TrustedProxies};
use super::responses::error_response;
use super::{pages, probes, sse, tracker_script, trpc};
use crate::api::EventIngestion;
use crate::api::error::{ApiError, ErrorCode};

/// What handlers share: the procedures and the transport settings.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<EventIngestion>,
    pub settings: Arc<HttpSettings>,
}

/// The whole HTTP application: the procedures behind every route, JSON-RPC served with
/// `methods` (connections end when `stop` fires).
pub fn app(
    service: Arc<EventIngestion>,
    methods: Methods,
    settings: &HttpSettings,
    stop: StopHandle,
) -> Router {
    let json_rpc = JsonRpcService::new(methods, settings, stop);
    let state = AppState {
        service,
        settings: Arc::new(settings.clone()),
    };
    router(state, json_rpc)
}

/// Every route of the server, with its layers.
pub fn router(state: AppState, json_rpc: JsonRpcService) -> Router {
    let max_bytes = state.settings.max_request_body_bytes as usize;
    let body_limit = |shape| BodyLimitLayer { max_bytes, shape };
    let trusted: TrustedProxies = state.settings.trusted_proxies.clone().into();
    let cors = cors_layer(&state.settings.cors_origins);
    Router::new()
        .route(
            &format!("{}{{*path}}", trpc::PREFIX),
            any(trpc::handle).layer(body_limit(ErrorShape::Plain)),
        )
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .route(sse::LIVE_SSE_PATH, get(sse::live))
        .route("/live", get(pages::live))
        .route("/dashboard", get(pages::dashboard))
        .route("/sluice.js", get(tracker_script::tracker_script))
        .route_service(
            "/",
            ServiceBuilder::new()
                .layer(body_limit(ErrorShape::JsonRpc))
                .service(json_rpc),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(cors)
                .layer(RequestContextLayer::new(trusted)),
        )
        .with_state(state)
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    error_response(
        &ApiError::new(ErrorCode::NotFound, format!("No route for {path}")),
        path,
    )
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path();
    let error = ApiError::new(
        ErrorCode::MethodNotSupported,
        format!("{} is not supported on {path}", request.method()),
    );
    error_response(&error, path)
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
