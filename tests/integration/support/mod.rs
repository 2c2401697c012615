//! The test harness: a real Sluice server on port 0 over a fresh database, with JSON-RPC
//! clients (HTTP and WebSocket) and a raw HTTP client for asserting exact wire bytes.

pub mod browser;
pub mod database;
pub mod metrics_fixture;
pub mod mmdb;
pub mod process;
pub mod proxy;
pub mod raw_http;
pub mod sse;
pub mod stores;

use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::core::client::{ClientT, Error as ClientError};
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use serde_json::{Value, json};
use sluice::config::Config;
use sluice::domain::EventRecord;
use sluice::pipeline::flusher::FlushReport;
use sluice::server::RunningServer;
use sluice::storage::EventStore;
use tokio::net::TcpListener;
use uuid::Uuid;

pub use database::{Backend, TestDatabase};

/// The admin token every test server accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The JWT secret of every test server.
pub const JWT_SECRET: &str = "test-jwt-secret-test-jwt-secret-0123";

/// A JWT for `sub` with `role`, signed with the test secret, valid for an hour.
pub fn jwt(sub: &str, role: sluice::domain::Role) -> String {
    let claims = sluice::domain::Claims {
        sub: sub.to_owned(),
        role,
        creator_id: None,
        brand_id: None,
        exp: None,
    };
    sluice::identity::mint_token(
        &sluice::identity::Secret::new(JWT_SECRET),
        claims,
        Some(3600),
    )
    .expect("mint")
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn name(backend: Backend)`:
/// `sqlite::name` always runs, `postgres::name` when `SLUICE_TEST_POSTGRES_URL` is set,
/// `citus::name` when `SLUICE_TEST_CITUS_URL` is set.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        $crate::shared_database_tests!($($name),*);
    };
}

/// [`backend_tests!`] for tests of what only a database shared by several nodes has (a
/// PostgreSQL server, a Citus cluster): `postgres::name` and `citus::name`.
#[macro_export]
macro_rules! shared_database_tests {
    ($($name:ident),* $(,)?) => {
        $crate::shared_database_tests!(@on postgres, $($name),*);
        $crate::shared_database_tests!(@on citus, $($name),*);
    };
    (@on $backend:ident, $($name:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::support::Backend::$backend() {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

/// A running server and the database behind it.
pub struct TestServer {
    server: Option<RunningServer>,
    /// Kept for its lifetime: dropping it deletes the database. `None` on a second node,
    /// which shares the first node's database.
    _database: Option<TestDatabase>,
    pub config: Config,
}

/// The configuration tests start from: nothing flushes by itself unless a test asks for it,
/// and rate limiting is off unless a test turns it on.
pub fn test_config(database: &TestDatabase) -> Config {
    let mut config = Config::default();
    config.http.bind = "127.0.0.1:0".parse().expect("addr");
    config.database.database_url = Some(database.url.clone());
    config.database.db_pool_size = 4;
    config.pipeline.batch_timeout_ms = 3_600_000;
    config.auth.admin_token = Some(ADMIN_TOKEN.to_owned());
    config.auth.jwt_secret = Some(JWT_SECRET.to_owned());
    config.limits.rate_limit_per_second = 0;
    config
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts with the test configuration changed by `adjust`.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::create(&backend).await;
        let mut config = test_config(&database);
        adjust(&mut config);
        let server = Self::boot(&config).await;
        Self {
            server: Some(server),
            _database: Some(database),
            config,
        }
    }

    /// Starts with the pipeline's clock given (a `ManualClock` the test moves).
    pub async fn start_with_clock(
        backend: Backend,
        clock: Arc<dyn sluice::pipeline::clock::Clock>,
    ) -> Self {
        let database = TestDatabase::create(&backend).await;
        let config = test_config(&database);
        let listener = TcpListener::bind(config.http.bind).await.expect("bind");
        let server = RunningServer::start_with_clock(&config, listener, clock)
            .await
            .expect("server starts");
        Self {
            server: Some(server),
            _database: Some(database),
            config,
        }
    }

    /// Starts with `config` on a database that someone else keeps (a second node's own
    /// configuration, say).
    pub async fn start_on(config: Config) -> Self {
        let server = Self::boot(&config).await;
        TestServer {
            server: Some(server),
            _database: None,
            config,
        }
    }

    async fn boot(config: &Config) -> RunningServer {
        let listener = TcpListener::bind(config.http.bind).await.expect("bind");
        RunningServer::start(config, listener)
            .await
            .expect("server starts")
    }

    fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.running().local_addr())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.running().local_addr())
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        self.running().store()
    }

    /// An anonymous JSON-RPC HTTP client.
    pub fn client(&self) -> HttpClient {
        HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(self.http_url())
            .expect("http client")
    }

    /// A JSON-RPC HTTP client sending `Authorization: <value>`.
    pub fn client_with_authorization(&self, value: &str) -> HttpClient {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().expect("header"));
        HttpClientBuilder::default()
            .set_headers(headers)
            .build(self.http_url())
            .expect("http client")
    }

    pub fn admin_client(&self) -> HttpClient {
        self.client_with_authorization(&format!("Bearer {ADMIN_TOKEN}"))
    }

    pub async fn ws_client(&self) -> WsClient {
        WsClientBuilder::default()
            .build(self.ws_url())
            .await
            .expect("ws client")
    }

    /// A WebSocket client; `Err` when the server refuses the handshake.
    pub async fn try_ws_client(
        &self,
        url_suffix: &str,
        authorization: Option<&str>,
    ) -> Result<WsClient, ClientError> {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(http::header::AUTHORIZATION, value.parse().expect("header"));
        }
        WsClientBuilder::default()
            .set_headers(headers)
            .build(format!("{}{url_suffix}", self.ws_url()))
            .await
    }

    /// Calls `method` anonymously with `input` by name.
    pub async fn call(&self, method: &str, input: Value) -> Result<Value, ErrorObjectOwned> {
        call(&self.client(), method, input).await
    }

    pub async fn admin_call(&self, method: &str, input: Value) -> Result<Value, ErrorObjectOwned> {
        call(&self.admin_client(), method, input).await
    }

    /// Tracks one event and returns its id, failing the test if it is not accepted.
    pub async fn track(&self, input: Value) -> Uuid {
        let output = self
            .call("eventIngestion.track", input)
            .await
            .expect("track accepted");
        assert_eq!(output["status"], "accepted", "{output}");
        serde_json::from_value(output["eventId"].clone()).expect("event id")
    }

    pub async fn force_flush(&self) -> Value {
        self.admin_call("eventIngestion.forceFlush", json!({}))
            .await
            .expect("forceFlush")
    }

    pub async fn stats(&self) -> Value {
        self.admin_call("eventIngestion.getStats", json!({}))
            .await
            .expect("getStats")
    }

    /// The `accepted` counter of getStats.
    pub async fn stats_count_accepted(&self) -> u64 {
        self.stats().await["counters"]["accepted"]
            .as_u64()
            .expect("accepted counter")
    }

    pub async fn stored(&self, id: Uuid) -> Option<EventRecord> {
        self.store().find_event(id).await.expect("read back")
    }

    pub async fn count(&self) -> i64 {
        self.store().count_events().await.expect("count")
    }

    /// Waits up to `limit` for `count` events to be stored; returns the last count seen.
    pub async fn wait_for_count(&self, count: i64, limit: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let seen = self.count().await;
            if seen >= count || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops gracefully (drains the buffer) and returns what the drain wrote.
    pub async fn stop(&mut self) -> FlushReport {
        self.server.take().expect("running").stop().await
    }

    /// Runs `postgres` or `sqlite` (whichever fits the backend) directly on the test's
    /// database: for causing real database faults, such as a constraint a row will break.
    pub async fn execute_sql(&self, postgres: &str, sqlite: &str) {
        use diesel::connection::SimpleConnection;
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let url = self.database_url();
        if url.starts_with("postgres") {
            let mut connection = diesel_async::AsyncPgConnection::establish(&url)
                .await
                .expect("connect");
            connection.batch_execute(postgres).await.expect("sql");
        } else {
            let path = url.trim_start_matches("sqlite://").to_owned();
            let sql = sqlite.to_owned();
            tokio::task::spawn_blocking(move || {
                let mut connection =
                    <diesel::SqliteConnection as diesel::Connection>::establish(&path)
                        .expect("open");
                connection.batch_execute(&sql).expect("sql");
            })
            .await
            .expect("blocking task");
        }
    }

    /// The URL of this server's database.
    pub fn database_url(&self) -> String {
        self.config.database.url()
    }

    /// Another Sluice process on the same database (a second node of a cluster). Keep the
    /// first node alive while this one runs: it owns the database.
    pub async fn another_node(&self) -> TestServer {
        let server = Self::boot(&self.config).await;
        TestServer {
            server: Some(server),
            _database: None,
            config: self.config.clone(),
        }
    }

    /// Starts the server again on the same database, on a new port.
    pub async fn restart(&mut self) {
        if self.server.is_some() {
            self.stop().await;
        }
        self.server = Some(Self::boot(&self.config).await);
    }
}

/// Calls `method` with `input` as named params (`{}` → no params).
pub async fn call(
    client: &impl ClientT,
    method: &str,
    input: Value,
) -> Result<Value, ErrorObjectOwned> {
    call_raw(client, method, input)
        .await
        .map_err(into_error_object)
}

/// Like [`call`], but returns transport failures instead of panicking on them.
pub async fn call_raw(
    client: &impl ClientT,
    method: &str,
    input: Value,
) -> Result<Value, ClientError> {
    let mut params = ObjectParams::new();
    if let Value::Object(fields) = input {
        for (name, value) in fields {
            params.insert(&name, value).expect("param");
        }
    }
    client.request(method, params).await
}

pub fn into_error_object(error: ClientError) -> ErrorObjectOwned {
    match error {
        ClientError::Call(error) => error,
        other => panic!("transport failure instead of a JSON-RPC error: {other}"),
    }
}

/// The error's `data` as JSON.
pub fn error_data(error: &ErrorObjectOwned) -> Value {
    error
        .data()
        .map(|raw| serde_json::from_str(raw.get()).expect("data is JSON"))
        .unwrap_or(Value::Null)
}

/// Asserts the error has the tRPC key and JSON-RPC number of `key`.
pub fn assert_error(error: &ErrorObjectOwned, key: &str, number: i32) {
    let data = error_data(error);
    assert_eq!(error.code(), number, "{error:?}");
    assert_eq!(data["code"], key, "{data}");
}

/// A minimal valid track input.
pub fn page_view() -> Value {
    json!({"eventType": "page_viewed", "props": {"path": format!("/{}", Uuid::now_v7())}})
}
