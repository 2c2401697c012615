//! Sluice: an analytics event-ingestion backend.
//!
//! Requests arrive through a [`transport`] (JSON-RPC 2.0 over HTTP and WebSocket), become calls
//! of the [`api`] procedures, and flow through the [`pipeline`] (validation, buffer, flusher)
//! into [`storage`] (PostgreSQL or SQLite). [`server`] wires these together; [`config`] says
//! how. The `sluice` binary is a thin shell around [`server::run`].

pub mod api;
pub mod config;
pub mod diagnostics;
pub mod domain;
pub mod identity;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod storage;
pub mod transport;
pub mod url_parts;
