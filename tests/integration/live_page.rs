//! The `/live` page in real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `tests/browser/`), against the `sluice` binary, which the script
//! stops and restarts.

use crate::support::browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_works_in_chromium() {
    let Some(folder) = browser::folder() else {
        return;
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", directory.path().join("live.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let env = [
        ("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice").to_owned()),
        ("SLUICE_PORT", port.to_string()),
        ("SLUICE_DATABASE_URL", database),
        ("SLUICE_ADMIN_TOKEN", crate::support::ADMIN_TOKEN.to_owned()),
    ];
    let screenshot = directory.path().join("live.png");
    browser::run(&folder, "live-page.test.mjs", &env, 1, &screenshot).await;
}
