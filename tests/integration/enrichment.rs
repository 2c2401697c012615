//! Enrichment, sessions and consent, stored on both backends.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use sluice::domain::EventRecord;
use sluice::domain::Role;
use uuid::Uuid;

use crate::backend_tests;
use crate::support::mmdb;
use crate::support::raw_http::post;
use crate::support::{Backend, TestServer, call, jwt, page_view};

backend_tests!(
    real_user_agents_are_parsed,
    client_addresses_are_truncated_or_dropped,
    cdn_geography_comes_only_from_trusted_proxies,
    a_geoip_database_locates_clients,
    attribution_is_completed_from_the_landing_page,
    sessions_are_folded_in_the_same_write,
    an_opted_out_session_is_suppressed,
    an_opted_out_user_is_suppressed_on_every_node,
    bots_can_be_dropped
);

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const CURL: &str = "curl/8.4.0";

/// Tracks `input` over raw HTTP with extra headers; returns the result object.
async fn track_with(server: &TestServer, input: Value, headers: &[(&str, &str)]) -> Value {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eventIngestion.track", "params": input});
    let response = post(&server.http_url(), body.to_string(), headers).await;
    response.body["result"].clone()
}

async fn stored_event(server: &TestServer, result: &Value) -> EventRecord {
    let id: Uuid = serde_json::from_value(result["eventId"].clone()).expect("event id");
    server.force_flush().await;
    server.stored(id).await.expect("stored")
}

async fn real_user_agents_are_parsed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let cases = [
        (CHROME, Some("Chrome"), Some("Windows"), "desktop", false),
        (IPHONE, Some("Mobile Safari"), Some("iOS"), "mobile", false),
        (
            ANDROID_TABLET,
            Some("Chrome"),
            Some("Android"),
            "tablet",
            false,
        ),
        (GOOGLEBOT, Some("Googlebot"), None, "bot", true),
        // An HTTP tool sending a browser's event (`source` web, no token).
        (CURL, Some("curl"), None, "bot", true),
    ];
    for (agent, browser, os, device, bot) in cases {
        let result = track_with(&server, page_view(), &[("user-agent", agent)]).await;
        let stored = stored_event(&server, &result).await.enrichment;
        assert_eq!(stored.browser_name.as_deref(), browser, "{agent}");
        assert_eq!(stored.os_name.as_deref(), os, "{agent}");
        assert_eq!(stored.device_type.as_deref(), Some(device), "{agent}");
        assert_eq!(stored.is_bot, bot, "{agent}");
    }
    let iphone = track_with(&server, page_view(), &[("user-agent", IPHONE)]).await;
    let stored = stored_event(&server, &iphone).await.enrichment;
    assert_eq!(stored.os_version.as_deref(), Some("17.1.2"));
    assert_eq!(stored.browser_version.as_deref(), Some("17.1"));
}

async fn client_addresses_are_truncated_or_dropped(backend: Backend) {
    let truncated = TestServer::start(backend.clone()).await;
    let result = track_with(&truncated, page_view(), &[]).await;
    assert_eq!(
        stored_event(&truncated, &result)
            .await
            .enrichment
            .ip_address
            .as_deref(),
        Some("127.0.0.0/24")
    );
    let none = TestServer::start_with(backend, |config| {
        config.pipeline.ip_storage = sluice::pipeline::enrichment::IpStorage::None;
    })
    .await;
    let result = track_with(&none, page_view(), &[]).await;
    assert_eq!(
        stored_event(&none, &result).await.enrichment.ip_address,
        None
    );
}

async fn cdn_geography_comes_only_from_trusted_proxies(backend: Backend) {
    let cdn = [
        ("cf-ipcountry", "DE"),
        ("cf-region-code", "BE"),
        ("cf-ipcity", "Berlin"),
        ("x-forwarded-for", "198.51.100.23"),
    ];
    let untrusted = TestServer::start(backend.clone()).await;
    let result = track_with(&untrusted, page_view(), &cdn).await;
    let stored = stored_event(&untrusted, &result).await.enrichment;
    assert_eq!(stored.country, None, "anyone can send CDN headers");
    assert_eq!(stored.ip_address.as_deref(), Some("127.0.0.0/24"));

    let behind_cdn = TestServer::start_with(backend, |config| {
        config.http.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    let result = track_with(&behind_cdn, page_view(), &cdn).await;
    let stored = stored_event(&behind_cdn, &result).await.enrichment;
    assert_eq!(stored.country.as_deref(), Some("DE"));
    assert_eq!(stored.region.as_deref(), Some("BE"));
    assert_eq!(stored.city.as_deref(), Some("Berlin"));
    assert_eq!(stored.ip_address.as_deref(), Some("198.51.100.0/24"));
}

async fn a_geoip_database_locates_clients(backend: Backend) {
    let folder = tempfile::tempdir().expect("dir");
    let path = folder.path().join("city.mmdb");
    mmdb::write(
        &path,
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        &mmdb::city_record("FR", "IDF", "Paris"),
    );
    let server = TestServer::start_with(backend, |config| {
        config.pipeline.geoip_db = Some(path.clone());
        config.http.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    let inside = track_with(&server, page_view(), &[("x-forwarded-for", "203.0.113.77")]).await;
    let stored = stored_event(&server, &inside).await.enrichment;
    assert_eq!(stored.country.as_deref(), Some("FR"));
    assert_eq!(stored.region.as_deref(), Some("IDF"));
    assert_eq!(stored.city.as_deref(), Some("Paris"));
    let outside = track_with(&server, page_view(), &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(
        stored_event(&server, &outside).await.enrichment.country,
        None
    );
}

async fn attribution_is_completed_from_the_landing_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    let input = json!({
        "eventType": "page_viewed",
        "attribution": {
            "utmSource": "newsletter",
            "referrer": "https://Mail.Example.org:8443/inbox?id=1",
            "landingPage": "https://shop.example.com/?utm_source=ignored&utm_medium=email&utm_campaign=spring%20sale&utm_content=hero"
        }
    });
    let result = track_with(&server, input, &[]).await;
    let stored = stored_event(&server, &result).await;
    assert_eq!(
        stored.attribution.utm_source.as_deref(),
        Some("newsletter"),
        "explicit wins"
    );
    assert_eq!(stored.attribution.utm_medium.as_deref(), Some("email"));
    assert_eq!(
        stored.attribution.utm_campaign.as_deref(),
        Some("spring sale")
    );
    assert_eq!(stored.attribution.utm_content.as_deref(), Some("hero"));
    assert_eq!(stored.attribution.utm_term, None);
    assert_eq!(
        stored.enrichment.referrer_host.as_deref(),
        Some("mail.example.org")
    );
}

async fn sessions_are_folded_in_the_same_write(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.http.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    let session = Uuid::now_v7();
    let token = jwt("visitor-9", Role::Viewer);
    let auth = format!("Bearer {token}");
    let headers = [
        ("user-agent", IPHONE),
        ("cf-ipcountry", "NL"),
        ("authorization", auth.as_str()),
    ];
    let at = |minutes: i64| (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339();
    let events = [
        json!({"eventType": "page_viewed", "sessionId": session, "props": {"path": "/b", "occurred_at": at(20)}}),
        json!({"eventType": "page_viewed", "sessionId": session, "props": {"path": "/a", "occurred_at": at(30)},
               "attribution": {"landingPage": "https://x.io/a?utm_source=ads"}}),
        json!({"eventType": "clicked", "sessionId": session, "props": {"occurred_at": at(10)}}),
    ];
    for event in &events {
        assert_eq!(
            track_with(&server, event.clone(), &headers).await["status"],
            "accepted"
        );
    }
    // A duplicate is not an extra event of the session.
    assert_eq!(
        track_with(&server, events[2].clone(), &headers).await["status"],
        "duplicate"
    );
    server.force_flush().await;
    let stored = server
        .store()
        .find_session(session)
        .await
        .expect("read")
        .expect("session row");
    assert_eq!(stored.event_count, 3);
    assert_eq!(stored.user_id.as_deref(), Some("visitor-9"));
    assert_eq!(
        stored.entry_page.as_deref(),
        Some("https://x.io/a?utm_source=ads")
    );
    assert_eq!(stored.device_type.as_deref(), Some("mobile"));
    assert_eq!(stored.country.as_deref(), Some("NL"));
    assert_eq!(stored.utm_source.as_deref(), Some("ads"));
    let span = stored.last_seen_at - stored.first_seen_at;
    assert!((span.num_seconds() - 20 * 60).abs() <= 1, "{span}");

    let later = json!({"eventType": "page_viewed", "sessionId": session, "props": {"path": "/c"}});
    track_with(&server, later, &headers).await;
    server.force_flush().await;
    let updated = server
        .store()
        .find_session(session)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(updated.event_count, 4);
    assert!(updated.last_seen_at > stored.last_seen_at);
    assert_eq!(updated.first_seen_at, stored.first_seen_at);
    assert_eq!(updated.entry_page, stored.entry_page);
}

async fn an_opted_out_session_is_suppressed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = Uuid::now_v7();
    let event =
        |n: u32| json!({"eventType": "page_viewed", "sessionId": session, "props": {"n": n}});
    let before = server.track(event(1)).await;
    let consent = server
        .call(
            "eventIngestion.setConsent",
            json!({"sessionId": session, "granted": false}),
        )
        .await
        .expect("setConsent");
    assert_eq!(
        consent["subjects"],
        json!([{"type": "session", "id": session.to_string()}])
    );
    let suppressed = server
        .call("eventIngestion.track", event(2))
        .await
        .expect("answered");
    assert_eq!(
        suppressed,
        json!({"eventId": null, "tracked": false, "status": "suppressed"})
    );
    let batch = server
        .call(
            "eventIngestion.trackBatch",
            json!({"events": [event(3), page_view()]}),
        )
        .await
        .expect("batch");
    assert_eq!(batch["results"][0]["data"]["status"], "suppressed");
    assert_eq!(batch["results"][1]["data"]["status"], "accepted");
    server.force_flush().await;
    // The event accepted before the opt-out was still buffered: the write drops it too.
    assert!(
        server.stored(before).await.is_none(),
        "opted out before it was written"
    );
    assert_eq!(server.count().await, 1);
    assert_eq!(server.stats().await["counters"]["suppressed"], 2);

    server
        .call(
            "eventIngestion.setConsent",
            json!({"sessionId": session, "granted": true}),
        )
        .await
        .expect("opt back in");
    assert_eq!(
        server
            .call("eventIngestion.track", event(4))
            .await
            .expect("t")["status"],
        "accepted"
    );
    let error = server
        .call("eventIngestion.setConsent", json!({"granted": false}))
        .await
        .expect_err("anonymous without a session");
    crate::support::assert_error(&error, "BAD_REQUEST", -32600);
}

async fn an_opted_out_user_is_suppressed_on_every_node(backend: Backend) {
    let first = TestServer::start(backend).await;
    let second = first.another_node().await;
    let user =
        first.client_with_authorization(&format!("Bearer {}", jwt("privacy-fan", Role::Viewer)));
    let on_second =
        second.client_with_authorization(&format!("Bearer {}", jwt("privacy-fan", Role::Viewer)));
    // Accepted on the first node, still buffered there…
    let buffered = call(&user, "eventIngestion.track", page_view())
        .await
        .expect("track");
    assert_eq!(buffered["status"], "accepted");
    // …when the user opts out through the second node.
    let consent = call(
        &on_second,
        "eventIngestion.setConsent",
        json!({"granted": false}),
    )
    .await
    .expect("setConsent");
    assert_eq!(
        consent["subjects"],
        json!([{"type": "user", "id": "privacy-fan"}])
    );
    assert_eq!(
        call(&on_second, "eventIngestion.track", page_view())
            .await
            .expect("t")["status"],
        "suppressed"
    );
    first.force_flush().await;
    assert_eq!(
        first.count().await,
        0,
        "the write honours an opt-out made on another node"
    );
}

async fn bots_can_be_dropped(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.pipeline.drop_bots = true).await;
    let bot = track_with(&server, page_view(), &[("user-agent", GOOGLEBOT)]).await;
    assert_eq!(bot["status"], "suppressed");
    let person = track_with(&server, page_view(), &[("user-agent", CHROME)]).await;
    assert_eq!(person["status"], "accepted");
    server.force_flush().await;
    assert_eq!(server.count().await, 1);
}
