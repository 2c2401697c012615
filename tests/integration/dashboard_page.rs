//! The `/dashboard` page in real headless Chromium, against a server holding the metrics
//! fixture: it shows the fixture's figures, and a click on a row narrows them.

use crate::support::metrics_fixture;
use crate::support::{ADMIN_TOKEN, Backend, browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_chromium() {
    let Some(folder) = browser::folder() else {
        return;
    };
    let (server, fixture) = metrics_fixture::serve(Backend::Sqlite).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let env = [
        ("SLUICE_URL", server.http_url()),
        ("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("SLUICE_FIXTURE_FROM", fixture.at(0, 0)),
        ("SLUICE_FIXTURE_TO", fixture.at(3, 0)),
    ];
    let screenshot = directory.path().join("dashboard.png");
    browser::run(&folder, "dashboard-page.test.mjs", &env, 1, &screenshot).await;
}
