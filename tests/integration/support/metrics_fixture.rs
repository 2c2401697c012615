//! A known set of events for `getMetrics` (and the dashboard): three days, five sessions,
//! one signed-in user on two of them, a repeat the dedup catches, an opted-out session, an
//! event without session and a crawler. Every figure of the report is worked out by hand in
//! `tests/integration/metrics.rs`.
//!
//! The server must trust `127.0.0.1` as a proxy (`config.http.trusted_proxies`), so that the
//! `cf-ipcountry` header places each event.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::raw_http::post;
use super::{TestServer, jwt};

pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
pub const GOOGLEBOT: &str =
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
pub const ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36";

/// Where the fixture's events lie: `day0` is midnight UTC four days ago, the events fall on
/// `day0`, the day after and the day after that.
pub struct MetricsFixture {
    pub day0: DateTime<Utc>,
}

impl MetricsFixture {
    /// `day0` plus `days` and `hours`, as RFC 3339.
    pub fn at(&self, days: i64, hours: i64) -> String {
        self.at_minute(days, hours, 0)
    }

    /// `day0` plus `days`, `hours` and `minutes`, as RFC 3339.
    pub fn at_minute(&self, days: i64, hours: i64, minutes: i64) -> String {
        (self.day0 + Duration::days(days) + Duration::hours(hours) + Duration::minutes(minutes))
            .to_rfc3339()
    }
}

struct Sent<'a> {
    input: Value,
    user_agent: Option<&'a str>,
    country: Option<&'a str>,
    token: Option<String>,
}

async fn send(server: &TestServer, sent: &Sent<'_>) -> Value {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track", "params": sent.input});
    let authorization = sent.token.as_ref().map(|token| format!("Bearer {token}"));
    let mut headers = Vec::new();
    if let Some(agent) = sent.user_agent {
        headers.push(("user-agent", agent));
    }
    if let Some(country) = sent.country {
        headers.push(("cf-ipcountry", country));
    }
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    let response = post(&server.http_url(), body.to_string(), &headers).await;
    assert!(response.body["error"].is_null(), "{}", response.text);
    response.body["result"].clone()
}

/// A server on `backend` trusting `127.0.0.1` as a proxy (for the fixture's countries),
/// holding the fixture.
pub async fn serve(backend: super::Backend) -> (TestServer, MetricsFixture) {
    let server = TestServer::start_with(backend, |config| {
        config.http.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    let fixture = load(&server).await;
    (server, fixture)
}

/// Tracks the fixture through `server` and flushes it; the buffer must be empty first.
pub async fn load(server: &TestServer) -> MetricsFixture {
    let day0 = (Utc::now() - Duration::days(4))
        .duration_trunc(Duration::days(1))
        .expect("midnight");
    let fixture = MetricsFixture { day0 };
    let [s1, s2, s3, s4, s5, s6, s7] = [(); 7].map(|()| Uuid::now_v7());
    let user = jwt("user-1", sluice::domain::Role::Creator);
    let page_at = |session: Uuid, path: &str, at: String| {
        json!({"eventType": "page_viewed", "sessionId": session,
               "props": {"path": path, "occurred_at": at}})
    };
    let page = |session: Uuid, path: &str, days: i64, hours: i64| {
        page_at(session, path, fixture.at(days, hours))
    };
    let first = {
        let mut event = page_at(s1, "/home", fixture.at_minute(0, 10, 15));
        event["attribution"] =
            json!({"utmSource": "google", "referrer": "https://news.ycombinator.com/item?id=1"});
        event
    };
    let events = [
        // 1 and 2: session 1 on /home then /pricing, from Germany on Chrome.
        Sent {
            input: first.clone(),
            user_agent: Some(CHROME),
            country: Some("DE"),
            token: None,
        },
        Sent {
            input: page_at(s1, "/pricing", fixture.at_minute(0, 10, 20)),
            user_agent: Some(CHROME),
            country: Some("DE"),
            token: None,
        },
        // 3 and 4: session 2 on an iPhone in the US, over two days.
        Sent {
            input: {
                let mut event = page(s2, "/home", 0, 11);
                event["attribution"] = json!({"referrer": "https://duckduckgo.com/"});
                event
            },
            user_agent: Some(IPHONE),
            country: Some("US"),
            token: None,
        },
        Sent {
            input: json!({"eventType": "signup_clicked", "sessionId": s2,
                          "props": {"path": "/pricing", "occurred_at": fixture.at(1, 9)}}),
            user_agent: Some(IPHONE),
            country: Some("US"),
            token: None,
        },
        // 5: session 3 on an Android tablet in France, from a newsletter.
        Sent {
            input: {
                let mut event = page(s3, "/docs", 1, 9);
                event["attribution"] = json!({"utmSource": "newsletter"});
                event
            },
            user_agent: Some(ANDROID_TABLET),
            country: Some("FR"),
            token: None,
        },
        // 6 and 7: one signed-in user over two sessions: one visitor.
        Sent {
            input: page(s5, "/home", 2, 14),
            user_agent: Some(CHROME),
            country: Some("DE"),
            token: Some(user.clone()),
        },
        Sent {
            input: page(s6, "/docs", 2, 15),
            user_agent: Some(CHROME),
            country: Some("DE"),
            token: Some(user),
        },
        // 8: a server event with neither session nor page: no visitor.
        Sent {
            input: json!({"eventType": "report_exported", "source": "api",
                          "props": {"occurred_at": fixture.at(2, 16)}}),
            user_agent: None,
            country: None,
            token: None,
        },
        // 9: a crawler on /home from Germany: stored, flagged, counted only in `botEvents`.
        Sent {
            input: page(s7, "/home", 1, 13),
            user_agent: Some(GOOGLEBOT),
            country: Some("DE"),
            token: None,
        },
    ];
    for event in &events {
        assert_eq!(
            send(server, event).await["status"],
            "accepted",
            "{}",
            event.input
        );
    }
    // The same event again: the dedup fingerprint catches it.
    let repeat = Sent {
        input: first,
        user_agent: Some(CHROME),
        country: Some("DE"),
        token: None,
    };
    assert_eq!(send(server, &repeat).await["status"], "duplicate");
    // Session 4 is accepted, then opts out before the flush: none of it is stored.
    let opted_out = Sent {
        input: page(s4, "/home", 1, 12),
        user_agent: Some(CHROME),
        country: Some("DE"),
        token: None,
    };
    assert_eq!(send(server, &opted_out).await["status"], "accepted");
    server
        .call(
            "eventIngestion.setConsent",
            json!({"sessionId": s4, "granted": false}),
        )
        .await
        .expect("opt out");
    assert_eq!(send(server, &opted_out).await["status"], "suppressed");
    server.force_flush().await;
    assert_eq!(
        server.count().await,
        9,
        "the fixture's nine events are stored"
    );
    fixture
}
