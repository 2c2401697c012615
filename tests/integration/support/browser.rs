//! Runs a `tests/browser/*.test.mjs` script (Node, `playwright-core`, Debian's headless
//! `chromium`) and checks its TAP report.
//!
//! Without `/usr/bin/chromium` the caller is told to skip, unless `SLUICE_REQUIRE_BROWSER` is
//! set (`.ci/run` sets it, after installing Chromium).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `tests/browser` folder with its npm packages installed, or `None` (after saying so)
/// when this machine has no Chromium.
pub fn folder() -> Option<PathBuf> {
    if !Path::new("/usr/bin/chromium").exists() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_BROWSER").is_none(),
            "SLUICE_REQUIRE_BROWSER is set but /usr/bin/chromium is missing (apt-get install chromium)"
        );
        eprintln!("skipping the browser test: /usr/bin/chromium is not installed");
        return None;
    }
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let installed = ["playwright-core", "terser"]
        .iter()
        .all(|package| folder.join("node_modules").join(package).is_dir());
    if !installed {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&folder)
            .status()
            .expect("npm");
        assert!(installed.success(), "npm ci in tests/browser failed");
    }
    Some(folder)
}

/// Runs `script` in `folder` with `env`, asserts its `passes` tests passed, and keeps the
/// screenshot it took at `screenshot` (copied to `$SLUICE_UPDATE_SCREENSHOTS/<name>` when
/// that is set, to refresh `docs/`).
pub async fn run(
    folder: &Path,
    script: &str,
    env: &[(&str, String)],
    passes: usize,
    screenshot: &Path,
) {
    let running = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=tap", script])
        .current_dir(folder)
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .env("SLUICE_SCREENSHOT", screenshot)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), running)
        .await
        .unwrap_or_else(|_| panic!("{script} still running after 5 minutes"))
        .expect("node");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed in Chromium:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(&format!("# pass {passes}")), "{report}");
    assert!(screenshot.exists(), "a screenshot was taken");
    if let (Some(target), Some(name)) = (
        std::env::var_os("SLUICE_UPDATE_SCREENSHOTS"),
        screenshot.file_name(),
    ) {
        std::fs::copy(screenshot, Path::new(&target).join(name)).expect("copy the screenshot");
    }
}
