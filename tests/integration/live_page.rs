//! The `/live` page in real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `tests/browser/`), against the `sluice` binary.
//!
//! Without `/usr/bin/chromium` the test says so and passes, unless `SLUICE_REQUIRE_BROWSER`
//! is set (`.ci/run` sets it, after installing Chromium).

use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_works_in_chromium() {
    if !Path::new("/usr/bin/chromium").exists() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_BROWSER").is_none(),
            "SLUICE_REQUIRE_BROWSER is set but /usr/bin/chromium is missing (apt-get install chromium)"
        );
        eprintln!("skipping the browser test: /usr/bin/chromium is not installed");
        return;
    }
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !folder.join("node_modules/playwright-core").is_dir() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&folder)
            .status()
            .expect("npm");
        assert!(installed.success(), "npm ci in tests/browser failed");
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", directory.path().join("live.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let screenshot = directory.path().join("live.png");
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=tap", "live-page.test.mjs"])
        .current_dir(&folder)
        .env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_PORT", port.to_string())
        .env("SLUICE_DATABASE_URL", &database)
        .env("SLUICE_ADMIN_TOKEN", crate::support::ADMIN_TOKEN)
        .env("SLUICE_SCREENSHOT", &screenshot)
        .output()
        .await
        .expect("node");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the live page failed in Chromium:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("# pass 1"), "{report}");
    assert!(screenshot.exists(), "a screenshot was taken");
    if let Some(target) = std::env::var_os("SLUICE_UPDATE_SCREENSHOTS") {
        let target = Path::new(&target).join("live.png");
        std::fs::copy(&screenshot, target).expect("copy the screenshot");
    }
}
