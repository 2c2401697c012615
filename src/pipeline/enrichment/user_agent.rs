//! User agents: browser, OS and device type from the uap-core rules (the `ua-parser` crate,
//! with `data/uap-regexes.json` compiled in), plus a list of known bots and tools. Parsing is
//! cached per distinct string, so the regexes run once per browser build, not per event.

use std::sync::LazyLock;
use std::time::Duration;

use ua_parser::Extractor;

use crate::pipeline::dedup::TtlCache;

/// uap-core's regexes.yaml (Apache-2.0, see data/uap-core.LICENSE), converted to JSON.
const UAP_REGEXES: &str = include_str!("../../../data/uap-regexes.json");

/// Substrings (lowercase) of user agents that name automated browsing: crawlers, link
/// previewers, uptime monitors, headless and automation browsers. Always bots.
const CRAWLER_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "scrapy",
    "headless",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "facebookexternalhit",
    "embedly",
    "preview",
    "whatsapp",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "synthetics",
    "monitor",
];

/// Substrings (lowercase) of user agents of HTTP libraries and tools. Apps and servers send
/// these too, so they make a bot only of a browser-side event (docs/live-and-metrics.md, who counts as a visitor).
const HTTP_TOOL_MARKERS: &[&str] = &[
    "curl/",
    "wget/",
    "httpie/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "undici",
    "got (",
    "libwww-perl",
    "httpclient",
    "http%20client",
    "winhttp",
    "guzzlehttp",
    "ruby",
    "postman",
    "insomnia",
];

/// What kind of automated client a user agent names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Automation {
    /// Automated browsing: a bot whoever sends it.
    Crawler,
    /// An HTTP library or tool: a bot only when it claims to be a browser's event.
    HttpTool,
}

/// The device family uap-core gives to crawlers.
const CRAWLER_FAMILY: &str = "Spider";

/// Distinct user agents remembered; real traffic has a few thousand.
const CACHE_ENTRIES: usize = 10_000;
const CACHE_TTL: Duration = Duration::from_secs(3600);

static EXTRACTOR: LazyLock<Option<Extractor<'static>>> = LazyLock::new(|| {
    let compiled = serde_json::from_str::<ua_parser::Regexes<'static>>(UAP_REGEXES)
        .map_err(|error| error.to_string())
        .and_then(|mut regexes| {
            // Of the device rules only the crawler ones decide anything here (`is_bot`); the
            // kind of device comes from markers. The other 621 rules cost 20 MB of compiled
            // regexes, more than the whole event buffer of a busy server.
            regexes
                .device_parsers
                .retain(|rule| rule.device_replacement.as_deref() == Some(CRAWLER_FAMILY));
            Extractor::try_from(regexes).map_err(|error| error.to_string())
        });
    match compiled {
        Ok(extractor) => Some(extractor),
        Err(error) => {
            tracing::error!(%error, "user agent rules failed to load; user agents are not parsed");
            None
        }
    }
});

/// What a user agent string says about its client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    pub browser_name: Option<String>,
    pub browser_version: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    /// The kind of device, from markers; `bot` for a crawler.
    pub device_type: Option<String>,
    pub automation: Option<Automation>,
}

/// The cached parser.
pub struct UserAgents {
    cache: TtlCache<String, Device>,
}

impl Default for UserAgents {
    fn default() -> Self {
        Self::new()
    }
}

impl UserAgents {
    /// The parser, with the rules compiled now rather than on the first request: the first
    /// visitor does not wait for them, and the compiler's scratch memory is freed before
    /// traffic arrives instead of adding to the peak of a busy moment.
    pub fn new() -> Self {
        LazyLock::force(&EXTRACTOR);
        Self {
            cache: TtlCache::new(CACHE_TTL, CACHE_ENTRIES),
        }
    }

    pub fn parse(&self, user_agent: &str) -> Device {
        if let Some(device) = self.cache.get(&user_agent.to_owned()) {
            return device;
        }
        let device = parse_uncached(user_agent);
        self.cache.set(user_agent.to_owned(), device.clone());
        device
    }
}

fn version(parts: &[Option<&str>]) -> Option<String> {
    let present: Vec<&str> = parts.iter().map_while(|part| *part).collect();
    (!present.is_empty()).then(|| present.join("."))
}

fn known(name: &str) -> Option<String> {
    (name != "Other").then(|| name.to_owned())
}

fn parse_uncached(user_agent: &str) -> Device {
    let lower = user_agent.to_ascii_lowercase();
    let Some(extractor) = EXTRACTOR.as_ref() else {
        return Device::default();
    };
    let (browser, os, device) = extractor.extract(user_agent);
    let browser_name = browser.as_ref().and_then(|b| known(&b.family));
    let browser_version = browser
        .as_ref()
        .and_then(|b| version(&[b.major, b.minor, b.patch]));
    let os_name = os.as_ref().and_then(|o| known(&o.os));
    let os_version = os
        .as_ref()
        .and_then(|o| version(&[o.major.as_deref(), o.minor.as_deref(), o.patch.as_deref()]));
    let device_family = device
        .as_ref()
        .map(|d| d.device.to_string())
        .unwrap_or_default();
    let automation = automation(&lower, device_family == CRAWLER_FAMILY);
    let device_type = device_type(
        &lower,
        os_name.as_deref(),
        automation == Some(Automation::Crawler),
    );
    Device {
        browser_name,
        browser_version,
        os_name,
        os_version,
        device_type: Some(device_type.to_owned()),
        automation,
    }
}

/// A crawler's name wins over the library it is built on; uap-core's crawler rules also name
/// some HTTP libraries (`^Java/`, `WinHTTP`), which are tools here, not crawlers.
fn automation(lower: &str, uap_crawler: bool) -> Option<Automation> {
    let has = |markers: &[&str]| markers.iter().any(|marker| lower.contains(marker));
    if has(CRAWLER_MARKERS) {
        Some(Automation::Crawler)
    } else if has(HTTP_TOOL_MARKERS) || lower == "node" || lower.starts_with("node/") {
        Some(Automation::HttpTool)
    } else if uap_crawler {
        Some(Automation::Crawler)
    } else {
        None
    }
}

/// uap-core names devices, not kinds of device; the kind comes from well-known markers.
fn device_type(lower: &str, os: Option<&str>, is_bot: bool) -> &'static str {
    let has = |markers: &[&str]| markers.iter().any(|marker| lower.contains(marker));
    if is_bot {
        "bot"
    } else if has(&[
        "smart-tv", "smarttv", "appletv", "googletv", "hbbtv", "crkey", "roku", "tizen tv",
        "webos tv", "; tv)",
    ]) {
        "tv"
    } else if has(&["playstation", "xbox", "nintendo"]) {
        "console"
    } else if has(&["watch", "wearos"]) {
        "wearable"
    } else if has(&["ipad", "tablet", "kindle", "silk/", "playbook"])
        || (lower.contains("android") && !lower.contains("mobile"))
    {
        "tablet"
    } else if has(&["mobi", "iphone", "ipod", "android", "windows phone"]) {
        "mobile"
    } else if matches!(
        os,
        Some("Windows" | "Mac OS X" | "Linux" | "Ubuntu" | "Chrome OS" | "Fedora" | "FreeBSD")
    ) {
        "desktop"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(agent: &str) -> Device {
        UserAgents::new().parse(agent)
    }

    #[test]
    fn real_world_user_agents() {
        let chrome = parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36",
        );
        assert_eq!(chrome.browser_name.as_deref(), Some("Chrome"));
        assert_eq!(chrome.browser_version.as_deref(), Some("120.0.6099"));
        assert_eq!(chrome.os_name.as_deref(), Some("Windows"));
        assert_eq!(chrome.device_type.as_deref(), Some("desktop"));
        assert_eq!(chrome.automation, None);

        let iphone = parse(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(iphone.browser_name.as_deref(), Some("Mobile Safari"));
        assert_eq!(iphone.os_name.as_deref(), Some("iOS"));
        assert_eq!(iphone.os_version.as_deref(), Some("17.1.2"));
        assert_eq!(iphone.device_type.as_deref(), Some("mobile"));

        let tablet = parse(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
        );
        assert_eq!(tablet.os_name.as_deref(), Some("Android"));
        assert_eq!(tablet.device_type.as_deref(), Some("tablet"));

        let googlebot =
            parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!(googlebot.automation, Some(Automation::Crawler));
        assert_eq!(googlebot.device_type.as_deref(), Some("bot"));

        let curl = parse("curl/8.4.0");
        assert_eq!(curl.automation, Some(Automation::HttpTool));
        assert_eq!(curl.browser_name.as_deref(), Some("curl"));
    }

    #[test]
    fn apps_and_servers_are_tools_and_crawlers_are_crawlers() {
        for tool in [
            "okhttp/4.12.0",
            "axios/1.6.0",
            "Java/17",
            "Java/17.0.9",
            "node",
            "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
            "Wget/1.21.4",
        ] {
            assert_eq!(parse(tool).automation, Some(Automation::HttpTool), "{tool}");
        }
        for app in [
            "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240105.004)",
            "Shop/3.2 (iPhone; iOS 17.2; Scale/3.00) CFNetwork/1485 Darwin/23.1.0",
        ] {
            assert_eq!(parse(app).automation, None, "{app}");
        }
        for crawler in [
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "WhatsApp/2.23.20.0",
            "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
            "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (compatible; Yeti/1.1; +http://naver.me/spd)",
        ] {
            let device = parse(crawler);
            assert_eq!(device.automation, Some(Automation::Crawler), "{crawler}");
            assert_eq!(device.device_type.as_deref(), Some("bot"), "{crawler}");
        }
    }
}
