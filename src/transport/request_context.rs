//! Middleware that records what a request says about its caller — credentials, address,
//! user agent, ack mode, CDN location — as a [`RequestContext`] in its extensions, where the
//! tRPC handler and jsonrpsee's methods read it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header;
use ipnet::IpNet;
use jsonrpsee::server::ws::is_upgrade_request;

use super::client_ip::{cdn_place, client_ip};
use crate::domain::RequestContext;
use crate::url_parts::query_param;

/// The proxies whose forwarding headers are believed, the state of [`attach`].
pub type TrustedProxies = Arc<[IpNet]>;

/// Middleware: inserts the request's [`RequestContext`].
pub async fn attach(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| *address);
    let context = request_context(&request, peer, &trusted);
    request.extensions_mut().insert(context);
    next.run(request).await
}

/// The caller facts of a request. Browsers cannot set headers on a WebSocket, so an upgrade
/// may carry its token as `?token=` instead.
fn request_context(
    request: &Request,
    peer: Option<SocketAddr>,
    trusted: &[IpNet],
) -> RequestContext {
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
        client_ip: peer.map(|peer| client_ip(peer.ip(), headers, trusted)),
        user_agent: text(header::USER_AGENT),
        ack: text(header::HeaderName::from_static("x-sluice-ack")),
        geo: peer
            .map(|peer| cdn_place(peer.ip(), headers, trusted))
            .unwrap_or_default(),
    }
}
