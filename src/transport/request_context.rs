//! The layer that records what a request says about its caller — credentials, address,
//! user agent, ack mode, CDN location — as a [`RequestContext`] in its extensions, where the
//! tRPC handler and jsonrpsee's methods read it.

use std::net::SocketAddr;
use std::sync::Arc;

use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use http::header;
use ipnet::IpNet;
use jsonrpsee::server::ws::is_upgrade_request;
use tower::{Layer, Service};

use super::client_ip::{cdn_place, client_ip};
use crate::domain::RequestContext;
use crate::url_parts::query_param;

/// The proxies whose forwarding headers are believed.
pub type TrustedProxies = Arc<[IpNet]>;

/// The layer that inserts each request's [`RequestContext`] (a plain tower layer: no boxing
/// or cloning on the request path).
#[derive(Clone)]
pub struct RequestContextLayer {
    trusted: TrustedProxies,
}

impl RequestContextLayer {
    pub fn new(trusted: TrustedProxies) -> Self {
        Self { trusted }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = AttachRequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttachRequestContext {
            inner,
            trusted: self.trusted.clone(),
        }
    }
}

/// The service of [`RequestContextLayer`].
#[derive(Clone)]
pub struct AttachRequestContext<S> {
    inner: S,
    trusted: TrustedProxies,
}

impl<S: Service<Request>> Service<Request> for AttachRequestContext<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> S::Future {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| *address);
        let context = request_context(&request, peer, &self.trusted);
        request.extensions_mut().insert(context);
        self.inner.call(request)
    }
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

/// The items of a comma-separated request header (`Accept-Encoding`, `If-None-Match`),
/// across every line of it, trimmed.
pub fn header_items(
    headers: &http::HeaderMap,
    name: http::header::HeaderName,
) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}
