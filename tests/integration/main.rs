//! Integration tests: a real server over real sockets against a real database, each test on
//! SQLite and (with `SLUICE_TEST_POSTGRES_URL`, `SLUICE_TEST_CITUS_URL`) on PostgreSQL and on
//! a Citus cluster.

mod support;

mod admin;
mod batch;
mod bots;
mod citus;
mod cli;
mod connections;
mod dashboard_page;
mod enrichment;
mod exactly_once;
mod flushing;
mod funnels_and_retention;
mod jsonrpc_protocol;
mod live;
mod live_page;
mod metric_segments;
mod metrics;
mod plain_text;
mod reliability;
mod retention;
mod security;
mod sessions;
mod shutdown;
mod storage_contract;
mod track;
mod tracker_crate;
mod tracker_page;
mod trpc_client;
mod trpc_http;
mod validation;
