//! Who counts as a visitor (docs/live-and-metrics.md, who counts as a visitor): apps and servers count whatever HTTP
//! library they use; crawlers, previewers, monitors, headless browsers and HTTP tools posing
//! as a browser's events do not, and getMetrics says how many it left out.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use sluice::domain::Role;
use uuid::Uuid;

use crate::backend_tests;
use crate::support::raw_http::post;
use crate::support::{ADMIN_TOKEN, Backend, TestServer, jwt};

backend_tests!(
    apps_and_servers_count_and_bots_do_not,
    dropping_bots_keeps_apps_and_servers
);

/// One sender: its user agent, the event's `source` (none: the default, `web`), and a token.
struct Sender {
    user_agent: &'static str,
    source: Option<&'static str>,
    token: Option<String>,
}

const COUNTED: &[(&str, Option<&str>)] = &[
    ("okhttp/4.12.0", Some("mobile")),
    (
        "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240105.004)",
        Some("mobile"),
    ),
    (
        "Shop/3.2 (iPhone; iOS 17.2; Scale/3.00) CFNetwork/1485 Darwin/23.1.0",
        Some("mobile"),
    ),
    ("axios/1.6.0", Some("api")),
    ("node", Some("system")),
    ("Java/17.0.9", Some("webhook")),
    ("curl/8.4.0", Some("api")),
];

const NOT_COUNTED: &[(&str, Option<&str>)] = &[
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        None,
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        None,
    ),
    (
        "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        None,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        None,
    ),
    ("curl/8.4.0", None),
    ("python-requests/2.31.0", Some("web")),
    // A crawler is a bot whatever source it claims.
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        Some("mobile"),
    ),
];

async fn send(server: &TestServer, sender: &Sender, session: Uuid) -> Value {
    let mut input = json!({"eventType": "page_viewed", "sessionId": session,
                           "props": {"path": "/home"}});
    if let Some(source) = sender.source {
        input["source"] = json!(source);
    }
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track", "params": input});
    let authorization = sender.token.as_ref().map(|token| format!("Bearer {token}"));
    let mut headers = vec![("user-agent", sender.user_agent)];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    let response = post(&server.http_url(), body.to_string(), &headers).await;
    assert!(response.body["error"].is_null(), "{}", response.text);
    response.body["result"].clone()
}

fn senders(list: &[(&'static str, Option<&'static str>)]) -> Vec<Sender> {
    list.iter()
        .map(|(user_agent, source)| Sender {
            user_agent,
            source: *source,
            token: None,
        })
        .collect()
}

async fn apps_and_servers_count_and_bots_do_not(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut counted = senders(COUNTED);
    // A trusted server's token makes its HTTP library count, even on a browser-side event.
    counted.push(Sender {
        user_agent: "Java/17",
        source: None,
        token: Some(jwt("billing", Role::Service)),
    });
    counted.push(Sender {
        user_agent: "python-requests/2.31.0",
        source: None,
        token: Some(ADMIN_TOKEN.to_owned()),
    });
    let not_counted = senders(NOT_COUNTED);
    let mut stored = Vec::new();
    for sender in counted.iter().chain(&not_counted) {
        let result = send(&server, sender, Uuid::now_v7()).await;
        assert_eq!(result["status"], "accepted", "{}", sender.user_agent);
        stored.push(result["eventId"].clone());
    }
    server.force_flush().await;
    for (index, id) in stored.iter().enumerate() {
        let id: Uuid = serde_json::from_value(id.clone()).expect("event id");
        let event = server.stored(id).await.expect("stored");
        let (bot, agent) = if index < counted.len() {
            (false, counted[index].user_agent)
        } else {
            (true, not_counted[index - counted.len()].user_agent)
        };
        assert_eq!(event.enrichment.is_bot, bot, "{agent}");
        if bot {
            assert_eq!(event.enrichment.device_type.as_deref(), Some("bot"));
        }
    }
    let now = Utc::now();
    let report = server
        .admin_call(
            "eventIngestion.getMetrics",
            json!({"from": (now - Duration::hours(1)).to_rfc3339(),
                   "to": (now + Duration::hours(1)).to_rfc3339()}),
        )
        .await
        .expect("getMetrics");
    let totals = &report["totals"];
    assert_eq!(totals["events"], counted.len(), "{report}");
    assert_eq!(totals["visitors"], counted.len(), "{report}");
    assert_eq!(totals["botEvents"], not_counted.len(), "{report}");
    let filtered = server
        .admin_call(
            "eventIngestion.getMetrics",
            json!({"from": (now - Duration::hours(1)).to_rfc3339(),
                   "to": (now + Duration::hours(1)).to_rfc3339(),
                   "eventType": "signed_up"}),
        )
        .await
        .expect("getMetrics");
    assert_eq!(
        filtered["totals"]["botEvents"], 0,
        "bots are counted under the same filters"
    );
}

/// With bots dropped, an app's event is stored and a crawler's suppressed.
async fn dropping_bots_keeps_apps_and_servers(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.pipeline.drop_bots = true).await;
    let app = send(&server, &senders(&COUNTED[..1])[0], Uuid::now_v7()).await;
    assert_eq!(app["status"], "accepted");
    let crawler = send(&server, &senders(&NOT_COUNTED[..1])[0], Uuid::now_v7()).await;
    assert_eq!(crawler["status"], "suppressed");
    let tool = send(&server, &senders(&NOT_COUNTED[4..5])[0], Uuid::now_v7()).await;
    assert_eq!(tool["status"], "suppressed", "curl posing as a browser");
}
