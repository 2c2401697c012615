//! The traffic the benchmark sends: what real frontends send, not what is easiest to ingest.
//!
//! - every event carries a `sessionId` from a pool of 5 000 recurring sessions (the seeds'
//!   `getSessionId()`), so the session fold runs on every flush and sessions recur across
//!   flushes;
//! - each session has one of twelve real browser user agents (sent as the request's header);
//! - paths follow a skewed distribution (a few pages get most views, a long tail the rest);
//! - a quarter of the events carry campaign attribution, a fifth a referrer only;
//! - props of realistic size (about 300 bytes: path, title, screen, locale, load time) with
//!   `occurred_at` stamped by the client, as the browser tracker does;
//! - 70 % page views, then clicks, searches and sign-ups.
//!
//! [`Kind::SessionLess`] sends the same events without `sessionId`: a comparison line only.
//! [`Kind::Hostile`] sends them with a fresh `sessionId` each and a random browser build in
//! every user agent: what a busy day's new visitors look like to the caches, and what anyone
//! can send on purpose.

use std::borrow::Cow;
use std::fmt::Write;

use serde_json::{Value, json};

/// Distinct sessions the events are drawn from.
pub const SESSIONS: u64 = 5_000;

/// Real user agents (desktop, mobile and tablet browsers), one per session.
pub const USER_AGENTS: [&str; 12] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
];

const SECTIONS: [&str; 8] = [
    "/",
    "/pricing",
    "/blog",
    "/docs",
    "/products",
    "/signup",
    "/about",
    "/search",
];

const SCREENS: [&str; 4] = ["1920x1080", "1440x900", "390x844", "820x1180"];
const LOCALES: [&str; 4] = ["en-US", "de-DE", "fr-FR", "es-ES"];

/// Whether events carry a session.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Realistic,
    SessionLess,
    /// A new session and a new browser build on every event.
    Hostile,
}

/// One generated event: everything the body needs, drawn from the event's number.
pub struct Shape {
    pub event_type: &'static str,
    pub session: u64,
    section: &'static str,
    pub page: u64,
    screen: &'static str,
    locale: &'static str,
    load_ms: u64,
    attribution: Attribution,
}

enum Attribution {
    None,
    ReferrerOnly,
    Campaign,
}

/// SplitMix64: a good spread of bits from a counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Shape {
    pub fn of(n: u64) -> Self {
        let h = mix(n);
        let roll = h % 100;
        let event_type = match roll {
            0..70 => "page_viewed",
            70..85 => "button_clicked",
            85..95 => "search_performed",
            _ => "signed_up",
        };
        // Skewed pages: u³ puts most of the mass near zero (a fifth of the views on the top
        // 1 % of 500 pages), with a long tail.
        let u = ((h >> 8) % 10_000) as f64 / 10_000.0;
        let page = (u * u * u * 500.0) as u64;
        let attribution = match (h >> 24) % 20 {
            0..5 => Attribution::Campaign,
            5..9 => Attribution::ReferrerOnly,
            _ => Attribution::None,
        };
        Self {
            event_type,
            session: mix(h) % SESSIONS,
            section: SECTIONS[(page % SECTIONS.len() as u64) as usize],
            page,
            screen: SCREENS[((h >> 32) % 4) as usize],
            locale: LOCALES[((h >> 36) % 4) as usize],
            load_ms: 200 + (h >> 40) % 2_800,
            attribution,
        }
    }
}

/// A session's id: stable within a run, distinct between runs (`salt`).
fn session_id(salt: u32, session: u64) -> String {
    format!("{salt:08x}-5e55-4000-8000-{session:012x}")
}

/// What a client stamps as `props.occurred_at` for the `index`-th event of a body made at
/// `second` (RFC 3339 to the second, rendered once per body).
fn occurred_at(second: &str, index: u64) -> String {
    format!("{second}.{:03}Z", index.min(999))
}

/// The run's events: `kind` and a salt that keeps each run's sessions apart.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    pub kind: Kind,
    pub salt: u32,
}

impl Traffic {
    pub fn new(kind: Kind) -> Self {
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                elapsed.subsec_nanos() ^ elapsed.as_secs() as u32
            });
        Self { kind, salt }
    }

    /// The user agent of event `n`'s session (the header of a request that starts with it).
    pub fn user_agent(&self, n: u64) -> Cow<'static, str> {
        if self.kind == Kind::Hostile {
            let h = mix(n ^ u64::from(self.salt) << 32);
            return Cow::Owned(format!(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.{}.{} Safari/537.36",
                100 + h % 32,
                (h >> 8) % 10_000,
                (h >> 24) % 300
            ));
        }
        Cow::Borrowed(USER_AGENTS[(Shape::of(n).session % USER_AGENTS.len() as u64) as usize])
    }

    /// The session of event `n`, if the traffic has sessions.
    pub fn session(&self, n: u64) -> Option<String> {
        match self.kind {
            Kind::Realistic => Some(session_id(self.salt, Shape::of(n).session)),
            Kind::Hostile => Some(session_id(self.salt, n)),
            Kind::SessionLess => None,
        }
    }

    /// Event `n` as a JSON value: the reference [`Traffic::write_event`] must match.
    pub fn event(&self, n: u64, second: &str, index: u64) -> Value {
        let shape = Shape::of(n);
        let mut props = json!({
            "path": format!("{}/{}", shape.section, shape.page),
            "title": format!("{} page {} | Example Shop", shape.section, shape.page),
            "screen": shape.screen,
            "locale": shape.locale,
            "load_ms": shape.load_ms,
            "occurred_at": occurred_at(second, index),
        });
        if shape.event_type == "button_clicked" {
            props["element"] = json!("cta-primary");
            props["label"] = json!("Start your free trial");
        }
        let mut event = json!({"eventType": shape.event_type, "source": "web", "props": props});
        if let Some(session) = self.session(n) {
            event["sessionId"] = json!(session);
        }
        match shape.attribution {
            Attribution::None => {}
            Attribution::ReferrerOnly => {
                event["attribution"] = json!({"referrer": "https://news.ycombinator.com/"});
            }
            Attribution::Campaign => {
                event["attribution"] = json!({
                    "utmSource": "google", "utmMedium": "cpc", "utmCampaign": "winter_sale",
                    "referrer": "https://www.google.com/",
                    "landingPage": "https://shop.example.com/pricing?utm_source=google&utm_medium=cpc"
                });
            }
        }
        event
    }

    /// Appends the JSON text of [`Traffic::event`] to `out`. Bodies are rendered as text, as
    /// `wrk` sends prepared ones, so that building a `Value` tree per event does not take the
    /// cores the server is measured on.
    pub fn write_event(&self, out: &mut String, n: u64, second: &str, index: u64) {
        let shape = Shape::of(n);
        let _ = write!(
            out,
            r#"{{"eventType":"{}","source":"web","props":{{"path":"{}/{}","title":"{} page {} | Example Shop","screen":"{}","locale":"{}","load_ms":{},"occurred_at":"{}""#,
            shape.event_type,
            shape.section,
            shape.page,
            shape.section,
            shape.page,
            shape.screen,
            shape.locale,
            shape.load_ms,
            occurred_at(second, index)
        );
        if shape.event_type == "button_clicked" {
            out.push_str(r#","element":"cta-primary","label":"Start your free trial""#);
        }
        out.push('}');
        if let Some(session) = self.session(n) {
            let _ = write!(out, r#","sessionId":"{session}""#);
        }
        match shape.attribution {
            Attribution::None => {}
            Attribution::ReferrerOnly => {
                out.push_str(r#","attribution":{"referrer":"https://news.ycombinator.com/"}"#);
            }
            Attribution::Campaign => out.push_str(
                r#","attribution":{"utmSource":"google","utmMedium":"cpc","utmCampaign":"winter_sale","referrer":"https://www.google.com/","landingPage":"https://shop.example.com/pricing?utm_source=google&utm_medium=cpc"}"#,
            ),
        }
        out.push('}');
    }
}

/// The current second as RFC 3339 without fraction or zone, the prefix of `occurred_at`.
pub fn this_second() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}
