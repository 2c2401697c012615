//! A fresh database per test: a temporary SQLite file, or a PostgreSQL database created on the
//! shared server (named `sluice_test_<unix time>_<random>`) and dropped afterwards, even when
//! the test panics. Leftovers of crashed runs older than an hour are dropped on the way. On a
//! Citus cluster the database is made on every node, with the extension and the workers, as
//! an operator sets up a Citus database.

use std::time::{SystemTime, UNIX_EPOCH};

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tempfile::TempDir;

/// Environment variable with the admin URL of a PostgreSQL server the tests may create
/// databases on.
pub const POSTGRES_URL_VAR: &str = "SLUICE_TEST_POSTGRES_URL";

/// Environment variable with the URL of a Citus coordinator (a database with the extension and
/// its workers added, as `scripts/citus-cluster` prints) the tests may create databases on.
pub const CITUS_URL_VAR: &str = "SLUICE_TEST_CITUS_URL";

/// Which backend a test runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
    Citus { admin_url: String },
}

impl Backend {
    /// PostgreSQL when `SLUICE_TEST_POSTGRES_URL` is set, else `None` (the test is skipped).
    pub fn postgres() -> Option<Self> {
        match std::env::var(POSTGRES_URL_VAR) {
            Ok(admin_url) if !admin_url.is_empty() => Some(Self::Postgres { admin_url }),
            _ => {
                eprintln!("skipped: {POSTGRES_URL_VAR} is not set");
                None
            }
        }
    }

    /// Citus when `SLUICE_TEST_CITUS_URL` is set, else `None` (the test is skipped).
    pub fn citus() -> Option<Self> {
        match std::env::var(CITUS_URL_VAR) {
            Ok(admin_url) if !admin_url.is_empty() => Some(Self::Citus { admin_url }),
            _ => {
                eprintln!("skipped: {CITUS_URL_VAR} is not set");
                None
            }
        }
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres {
        admin_url: String,
        name: String,
        citus: bool,
    },
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("sluice.db").display());
                Self {
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                }
            }
            Backend::Postgres { admin_url } => Self::create_on(admin_url, false, false).await,
            Backend::Citus { admin_url } => Self::create_on(admin_url, true, true).await,
        }
    }

    /// A database on the Citus coordinator that is not part of the cluster yet: a plain
    /// PostgreSQL database until [`TestDatabase::join_cluster`].
    pub async fn create_outside_the_cluster(admin_url: &str) -> Self {
        Self::create_on(admin_url, true, false).await
    }

    /// Makes this database a Citus database, as an operator does on a PostgreSQL that becomes
    /// a coordinator: the extension on every node, the workers added.
    pub async fn join_cluster(&self) {
        self.join_cluster_with(usize::MAX).await;
    }

    /// [`TestDatabase::join_cluster`] with only the first `count` workers; returns the
    /// addresses of all of them.
    pub async fn join_cluster_with(&self, count: usize) -> Vec<std::net::SocketAddr> {
        let Cleanup::Postgres { admin_url, .. } = &self.cleanup else {
            panic!("only a database on a Citus coordinator joins its cluster");
        };
        let mut admin = AsyncPgConnection::establish(admin_url)
            .await
            .expect("connect to the admin URL");
        join_workers(&mut admin, &self.url, count).await
    }

    /// Runs `sql` on this database.
    pub async fn execute(&self, sql: &str) {
        let mut connection = AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect");
        diesel::sql_query(sql)
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    async fn create_on(admin_url: &str, citus: bool, join: bool) -> Self {
        let mut admin = AsyncPgConnection::establish(admin_url)
            .await
            .expect("connect to the PostgreSQL admin URL");
        if citus {
            propagate_databases(&mut admin).await;
        }
        drop_stale_databases(&mut admin).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let name = format!("sluice_test_{now}_{:08x}", fastrand::u32(..));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = database_url(admin_url, &name);
        if join {
            join_workers(&mut admin, &url, usize::MAX).await;
        }
        Self {
            url,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_owned(),
                name,
                citus,
            },
        }
    }

    /// The host and port of the database server (the coordinator on Citus): where a proxy
    /// that cuts the database off points.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        server_addr(&self.url)
    }

    /// This database's URL with the server replaced by `addr` (a proxy in front of it).
    pub fn url_through(&self, addr: std::net::SocketAddr) -> String {
        let name = self.url.rsplit('/').next().expect("name");
        database_url(&format!("postgres://postgres@{addr}/x"), name)
    }
}

/// The host and port a PostgreSQL URL names.
pub fn server_addr(url: &str) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .expect("the database server's address")
}

/// Makes `CREATE DATABASE` and `DROP DATABASE` on the coordinator reach the workers too.
async fn propagate_databases(admin: &mut AsyncPgConnection) {
    diesel::sql_query("SET citus.enable_create_database_propagation = on")
        .execute(admin)
        .await
        .expect("citus database propagation");
}

#[derive(QueryableByName)]
struct Node {
    #[diesel(sql_type = Text)]
    nodename: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    nodeport: i32,
}

/// Sets up the new Citus database `url` as its cluster's admin database is: the extension on
/// every node, the coordinator's address, the first `count` workers. Returns the addresses
/// of all the workers.
async fn join_workers(
    admin: &mut AsyncPgConnection,
    url: &str,
    count: usize,
) -> Vec<std::net::SocketAddr> {
    let workers: Vec<Node> = diesel::sql_query(
        "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary'",
    )
    .load(admin)
    .await
    .expect("the cluster's workers");
    let name = url.rsplit('/').next().expect("name");
    for worker in &workers {
        let worker_url = database_url(
            &format!(
                "postgres://postgres@{}:{}/x",
                worker.nodename, worker.nodeport
            ),
            name,
        );
        let mut connection = AsyncPgConnection::establish(&worker_url)
            .await
            .expect("connect to a worker");
        diesel::sql_query("CREATE EXTENSION IF NOT EXISTS citus")
            .execute(&mut connection)
            .await
            .expect("citus on the worker");
    }
    let mut coordinator = AsyncPgConnection::establish(url)
        .await
        .expect("connect to the new database");
    let coordinator_addr = server_addr(url);
    let mut setup = vec![
        "CREATE EXTENSION IF NOT EXISTS citus".to_owned(),
        format!(
            "SELECT citus_set_coordinator_host('{}', {})",
            coordinator_addr.ip(),
            coordinator_addr.port()
        ),
    ];
    setup.extend(workers.iter().take(count).map(|worker| {
        format!(
            "SELECT citus_add_node('{}', {})",
            worker.nodename, worker.nodeport
        )
    }));
    for statement in setup {
        diesel::sql_query(&statement)
            .execute(&mut coordinator)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
    workers
        .iter()
        .map(|worker| {
            server_addr(&format!(
                "postgres://{}:{}/x",
                worker.nodename, worker.nodeport
            ))
        })
        .collect()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres {
            admin_url,
            name,
            citus,
        } = &self.cleanup
        else {
            return;
        };
        let (admin_url, name, citus) = (admin_url.clone(), name.clone(), *citus);
        // Drop may run inside the test's runtime, which cannot block: use a thread of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url).await?;
                if citus {
                    propagate_databases(&mut admin).await;
                }
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("warning: could not drop test database {}", self.url);
        }
    }
}

#[derive(QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = Text)]
    datname: String,
}

async fn drop_stale_databases(admin: &mut AsyncPgConnection) {
    let Ok(names) =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'sluice_test_%'")
            .load::<DatabaseName>(admin)
            .await
    else {
        return;
    };
    let hour_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.as_secs().saturating_sub(3600));
    for DatabaseName { datname } in names {
        let created = datname
            .strip_prefix("sluice_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| created < hour_ago) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"))
                .execute(admin)
                .await;
        }
    }
}

/// The admin URL with its database name replaced.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |index| index + 3);
    let path_start = base[scheme_end..].find('/').map(|index| scheme_end + index);
    let host = path_start.map_or(base, |start| &base[..start]);
    match query {
        Some(query) => format!("{host}/{name}?{query}"),
        None => format!("{host}/{name}"),
    }
}
