//! The fuzzing harness, shared by the cargo-fuzz targets (`fuzz_targets/`) and by the
//! regression replay that `cargo test` runs (`tests/fuzz_regressions.rs`).
//!
//! One real server — the shipped defaults on an SQLite file, rate limiting off so that
//! inputs are not answered 429 after the first few — is driven in-process through its route
//! table, so an input travels the whole request path: routes and layers, jsonrpsee or the
//! tRPC decoder, authentication, validation, the pipeline and the store. The property is
//! the error policy's: no input makes Sluice panic, and none is answered with a 5xx (every
//! input here is the client's mistake or a valid request; the database is healthy).

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sluice::api::Procedure;
use sluice::config::Config;
use sluice::domain::RequestContext;
use sluice::server::RunningServer;
use tower::ServiceExt;

/// The admin token the harness's server accepts.
const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789abcdef";

/// A running server and the runtime that drives it.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.http.bind = "127.0.0.1:0".parse().expect("addr");
        config.database.database_url =
            Some(format!("sqlite://{}", dir.path().join("fuzz.db").display()));
        config.auth.admin_token = Some(ADMIN_TOKEN.to_owned());
        config.limits.rate_limit_per_second = 0;
        let server = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(config.http.bind)
                .await
                .expect("bind");
            RunningServer::start(&config, listener)
                .await
                .expect("start")
        });
        let router = server.router();
        Self {
            runtime,
            server: Some(server),
            router,
            _dir: dir,
        }
    }

    /// `data` as the body of a JSON-RPC POST to `/`.
    pub fn json_rpc(&self, data: &[u8]) {
        let request = Request::post("/")
            .header("content-type", "application/json")
            .body(Body::from(data.to_vec()))
            .expect("request");
        self.send(request, "JSON-RPC", data);
    }

    /// `data` as a tRPC request: the first byte picks the method, batching, superjson and the
    /// streaming mode; the rest is `path` and input separated by a NUL byte (the input goes
    /// in `?input=` for GET, in the body for POST).
    pub fn trpc(&self, data: &[u8]) {
        let Some((&flags, rest)) = data.split_first() else {
            return;
        };
        let (path, input) = match rest.iter().position(|&byte| byte == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let method = if flags & 1 == 0 {
            Method::GET
        } else {
            Method::POST
        };
        let mut uri = format!("/api/trpc/{}", percent_encode(path));
        let mut query = Vec::new();
        if flags & 2 != 0 {
            query.push("batch=1".to_owned());
        }
        if method == Method::GET && !input.is_empty() {
            query.push(format!("input={}", percent_encode(input)));
        }
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query.join("&"));
        }
        let mut builder = Request::builder().method(method.clone()).uri(&uri);
        if flags & 4 != 0 {
            builder = builder.header("trpc-accept", "application/jsonl");
        } else if flags & 8 != 0 {
            builder = builder.header("trpc-batch-mode", "stream");
        }
        if flags & 16 != 0 {
            builder = builder.header("authorization", format!("Bearer {ADMIN_TOKEN}"));
        }
        let content_type = if flags & 32 == 0 {
            "application/json"
        } else {
            "text/plain"
        };
        let body = if method == Method::POST {
            Body::from(input.to_vec())
        } else {
            Body::empty()
        };
        let Ok(request) = builder.header("content-type", content_type).body(body) else {
            return; // not a request a client could send (an invalid URI)
        };
        self.send(request, "tRPC", data);
    }

    /// `data` as the input of a procedure called in-process: the first byte picks the
    /// procedure and whether the caller is the admin, the rest is the JSON input. Every
    /// failure must be the caller's (4xx).
    pub fn procedure(&self, data: &[u8]) {
        let Some((&selector, rest)) = data.split_first() else {
            return;
        };
        let procedures: Vec<Procedure> = Procedure::all().collect();
        let procedure = procedures[(selector & 0x7f) as usize % procedures.len()];
        let input = match std::str::from_utf8(rest) {
            Ok("") => None,
            Ok(text) => match serde_json::from_str::<Value>(text) {
                Ok(value) => Some(value),
                Err(_) => Some(Value::String(text.to_owned())),
            },
            Err(_) => return,
        };
        let context = RequestContext {
            authorization: (selector & 0x80 != 0).then(|| format!("Bearer {ADMIN_TOKEN}")),
            ..RequestContext::default()
        };
        let service = self.server.as_ref().expect("server").service().clone();
        let result = self
            .runtime
            .block_on(async move { service.call(procedure, &context, input).await });
        if let Err(error) = result {
            assert!(
                error.code.is_client_error(),
                "{procedure:?} answered {:?} ({}) for input {:?}",
                error.code,
                error.message,
                String::from_utf8_lossy(rest)
            );
        }
    }

    fn send(&self, request: Request<Body>, transport: &str, data: &[u8]) {
        let router = self.router.clone();
        let (status, body) = self.runtime.block_on(async move {
            let response = router.oneshot(request).await.expect("infallible");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            (status, body)
        });
        assert!(
            !status.is_server_error(),
            "{transport} answered {status} for {:?}: {}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&body)
        );
        // Every reply is one JSON document (the streaming forms of a tRPC batch too: their
        // lines join into one), or empty for a JSON-RPC notification.
        if status != StatusCode::NO_CONTENT && !body.is_empty() {
            assert!(
                serde_json::from_slice::<Value>(&body).is_ok(),
                "{transport} answered {status} with a body that is not JSON: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The router holds one of the server's stop handles, which shutdown waits for.
        self.router = axum::Router::new();
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.stop());
        }
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~,".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
