//! The real `@trpc/client`, v10 and v11, with httpLink, httpBatchLink and httpBatchStreamLink
//! (each with and without superjson), from Node against a running Sluice on each backend.
//! The cases live in `tests/trpc-client/contract.mjs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sluice::domain::Role;

use crate::backend_tests;
use crate::support::{Backend, TestServer, jwt};

backend_tests!(
    trpc_client_v11_works,
    trpc_client_v10_works,
    trpc_client_v11_live_subscription_works
);

async fn trpc_client_v11_works(backend: Backend) {
    run_client_suite(backend, "v11").await;
}

async fn trpc_client_v10_works(backend: Backend) {
    run_client_suite(backend, "v10").await;
}

/// `npm ci` runs at most once per fixture folder at a time.
static INSTALL: Mutex<()> = Mutex::new(());

fn fixture(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/trpc-client")
        .join(version)
}

/// Installs the fixture's locked packages if they are not there yet.
fn ensure_installed(folder: &Path) {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("package.json")).expect("package.json"),
    )
    .expect("package.json is JSON");
    let installed = manifest["dependencies"]
        .as_object()
        .expect("dependencies")
        .keys()
        .all(|name| folder.join("node_modules").join(name).is_dir());
    if installed {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(folder)
        .output()
        .expect("npm is needed for the tRPC client tests");
    assert!(
        output.status.success(),
        "npm ci in {} failed:\n{}",
        folder.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `eventIngestion.live` through v11's `httpSubscriptionLink` (`live.test.mjs`).
async fn trpc_client_v11_live_subscription_works(backend: Backend) {
    let server = TestServer::start(backend).await;
    let report = run_node(&server, "v11", "live.test.mjs").await;
    assert!(report.contains("# pass 2"), "both cases ran:\n{report}");
}

async fn run_client_suite(backend: Backend, version: &str) {
    let server = TestServer::start(backend).await;
    let report = run_node(&server, version, "client.test.mjs").await;
    let passed = report
        .lines()
        .find_map(|line| line.strip_prefix("# pass "))
        .and_then(|count| count.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert_eq!(passed, 48, "every case ran:\n{report}");
    // The calls really reached the database: 6 link set-ups × (1 track + 2 batch items +
    // 2 tracks read back by getMetrics, a server's and a bot's + 1 track after opting back
    // in + 2 concurrent tracks); suppressed events are not stored.
    server.force_flush().await;
    assert_eq!(server.count().await, 48, "every accepted event is stored");
}

/// Runs the Node test file `file` of the `version` fixture against `server`; its TAP report.
async fn run_node(server: &TestServer, version: &str, file: &str) -> String {
    let folder = fixture(version);
    tokio::task::spawn_blocking({
        let folder = folder.clone();
        move || ensure_installed(&folder)
    })
    .await
    .expect("install");
    let url = format!("{}/api/trpc", server.http_url());
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=tap", file])
        .current_dir(&folder)
        .env("SLUICE_TRPC_URL", url)
        .env("SLUICE_ADMIN_JWT", jwt("admin-1", Role::Admin))
        .env("SLUICE_VIEWER_JWT", jwt("viewer-1", Role::Viewer))
        .output()
        .await
        .expect("node is needed for the tRPC client tests");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "@trpc/client {version} {file} failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// The generated TypeScript definitions compile under `tsc --strict`, together with the typed
/// router a frontend builds from them (the example in docs/api.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_definitions_compile() {
    let folder = fixture("v11");
    tokio::task::spawn_blocking({
        let folder = folder.clone();
        move || ensure_installed(&folder)
    })
    .await
    .expect("install");
    let output = tokio::process::Command::new("node")
        .args(["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"])
        .current_dir(&folder)
        .output()
        .await
        .expect("node");
    assert!(
        output.status.success(),
        "tsc failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
