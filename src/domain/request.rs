//! What a transport knows about a request, whichever transport it came through.

use std::net::IpAddr;

use super::Place;

/// What a transport knows about a request, inserted into jsonrpsee's `Extensions` by the HTTP
/// layer (and built by the tRPC adapter) so every transport authenticates the same way.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The raw `Authorization` header value (for WebSocket upgrades, also `?token=`).
    pub authorization: Option<String>,
    /// The client's address: the TCP peer, or what a trusted proxy says it forwarded.
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The `x-sluice-ack` header: `buffered` or `durable` for this request.
    pub ack: Option<String>,
    /// Where a trusted CDN in front of Sluice says the client is.
    pub geo: Place,
}
