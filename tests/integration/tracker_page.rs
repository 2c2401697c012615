//! The browser tracker `/sluice.js` in real headless Chromium (`tests/browser/tracker.test.mjs`):
//! a site on another origin, the server cut away and restored by a TCP proxy, beacons,
//! single-page navigation, refused events and opt-outs, against a real server.

use crate::support::{ADMIN_TOKEN, Backend, TestServer, browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_works_in_chromium() {
    let Some(folder) = browser::folder() else {
        return;
    };
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.cors_origins = vec!["*".into()];
    })
    .await;
    // A second server that rate-limits: what it answers TOO_MANY_REQUESTS comes back later.
    let limited = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.cors_origins = vec!["*".into()];
        config.limits.rate_limit_per_second = 10;
        config.limits.rate_limit_burst = 50;
    })
    .await;
    let directory = tempfile::tempdir().expect("tempdir");
    let env = [
        ("SLUICE_URL", server.http_url()),
        ("SLUICE_LIMITED_URL", limited.http_url()),
        ("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
    ];
    let screenshot = directory.path().join("tracker.png");
    browser::run(&folder, "tracker.test.mjs", &env, 8, &screenshot).await;
}
