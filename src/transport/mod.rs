//! Transports: how requests reach the procedures in [`crate::api`].
//!
//! - [`jsonrpc`]: the `eventIngestion.*` methods as a jsonrpsee `RpcModule` (HTTP POST and
//!   WebSocket on one port); [`notifications`] makes JSON-RPC notifications run.
//! - [`trpc`]: tRPC's HTTP wire format at `/api/trpc/…`, over the same procedures.
//! - [`probes`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`connection`]: the connection cap at accept, backoff on accept errors, and the
//!   header-read and idle timeouts.
//! - [`http`]: the listener, the per-request [`crate::domain::RequestContext`], and routing of
//!   HTTP paths to the JSON-RPC service.

pub mod client_ip;
pub mod connection;
pub mod http;
pub mod jsonrpc;
pub mod notifications;
pub mod probes;
pub mod trpc;
