//! Transports: how requests reach the procedures in [`crate::api`].
//!
//! - [`http`]: the listener and the transport settings; [`connection`]: the connection cap at
//!   accept, backoff on accept errors, and the header-read and idle timeouts.
//! - [`routes`]: the route table and the layers around it (tracing, CORS, the request
//!   context of [`request_context`], the body limit of [`limits`]).
//! - [`jsonrpc`]: the `eventIngestion.*` methods as a jsonrpsee `RpcModule`, served as the
//!   tower service on `/` (HTTP POST and WebSocket); [`notifications`] makes JSON-RPC
//!   notifications run.
//! - [`trpc`]: tRPC's HTTP wire format at `/api/trpc/…`, over the same procedures.
//! - [`sse`]: the live stream as Server-Sent Events, at `/api/live` and as the tRPC
//!   subscription; [`pages`]: the HTML pages (`/live`, `/dashboard`).
//! - [`plain_text`]: which calls take a `text/plain` JSON body (beacons);
//!   [`tracker_script`]: the browser tracker at `/sluice.js`.
//! - [`probes`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`responses`]: error replies in the shared shape; [`client_ip`]: who the caller is
//!   behind trusted proxies.

pub mod client_ip;
pub mod connection;
pub mod http;
pub mod jsonrpc;
pub mod limits;
pub mod notifications;
pub mod pages;
pub mod plain_text;
pub mod probes;
pub mod request_context;
pub mod responses;
pub mod routes;
pub mod sse;
pub mod tracker_script;
pub mod trpc;
