//! Enrichment at ingestion, in the request path and cheap: the device from the user agent
//! (parsed once per distinct string), the place from trusted CDN headers or a GeoIP database,
//! the referrer's host, UTM parameters recovered from the landing page, and the client
//! address reduced as the operator chose (never logged).

pub mod geo;
pub mod user_agent;

use std::net::IpAddr;
use std::sync::Arc;

use crate::domain::{Attribution, Caller, Enrichment, EventSource, RequestContext};
use crate::url_parts::{host_of, query_of, query_param};
use geo::GeoIp;
use user_agent::{Automation, UserAgents};

/// Who sent an event, as far as telling bots from visitors goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// A browser-side event (`source: "web"`) from an anonymous caller or a user's token: an
    /// HTTP tool sending it is a bot.
    Browser,
    /// An app or a server: `source` `mobile`, `api`, `system` or `webhook`, or a SERVICE or
    /// ADMIN token. They use HTTP libraries, so only a crawler's name makes them a bot.
    AppOrServer,
}

impl Sender {
    pub fn of(source: EventSource, caller: &Caller) -> Self {
        if source != EventSource::Web || caller.may_act_for_users() || caller.is_admin() {
            Self::AppOrServer
        } else {
            Self::Browser
        }
    }

    /// Whether a client of this kind, with this user agent, is a bot.
    fn makes_bot(self, automation: Option<Automation>) -> bool {
        match automation {
            Some(Automation::Crawler) => true,
            Some(Automation::HttpTool) => self == Self::Browser,
            None => false,
        }
    }
}

/// How much of the client address is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IpStorage {
    /// The network only: /24 for IPv4, /48 for IPv6.
    #[default]
    Truncated,
    /// Nothing.
    None,
    /// The whole address (check your privacy obligations first).
    Full,
}

/// The enricher shared by every request.
pub struct Enricher {
    user_agents: UserAgents,
    geoip: Option<Arc<GeoIp>>,
    ip_storage: IpStorage,
}

impl Enricher {
    pub fn new(geoip: Option<Arc<GeoIp>>, ip_storage: IpStorage) -> Self {
        Self {
            user_agents: UserAgents::new(),
            geoip,
            ip_storage,
        }
    }

    /// Derives the enrichment of one event from `sender` and completes its attribution.
    pub fn enrich(
        &self,
        context: &RequestContext,
        sender: Sender,
        attribution: &mut Attribution,
    ) -> Enrichment {
        fill_utm_from_landing_page(attribution);
        let device = context
            .user_agent
            .as_deref()
            .map(|agent| self.user_agents.parse(agent))
            .unwrap_or_default();
        let place = if context.geo.country.is_some() {
            context.geo.clone()
        } else {
            context
                .client_ip
                .and_then(|ip| self.geoip.as_ref().and_then(|geoip| geoip.locate(ip)))
                .unwrap_or_default()
        };
        let is_bot = sender.makes_bot(device.automation);
        let device_type = if is_bot {
            Some("bot".to_owned())
        } else {
            device.device_type
        };
        Enrichment {
            browser_name: device.browser_name,
            browser_version: device.browser_version,
            os_name: device.os_name,
            os_version: device.os_version,
            device_type,
            is_bot,
            country: place.country,
            region: place.region,
            city: place.city,
            ip_address: context
                .client_ip
                .and_then(|ip| stored_ip(ip, self.ip_storage)),
            referrer_host: attribution.referrer.as_deref().and_then(host_of),
        }
    }

    /// Whether `sender` with this user agent is a bot (for dropping bots before anything
    /// else).
    pub fn is_bot(&self, user_agent: Option<&str>, sender: Sender) -> bool {
        user_agent.is_some_and(|agent| sender.makes_bot(self.user_agents.parse(agent).automation))
    }
}

/// Fills absent `utm*` fields from the `utm_*` query parameters of the landing page.
fn fill_utm_from_landing_page(attribution: &mut Attribution) {
    let Some(query) = attribution.landing_page.as_deref().and_then(query_of) else {
        return;
    };
    let query = query.to_owned();
    let fields = [
        ("utm_source", &mut attribution.utm_source),
        ("utm_medium", &mut attribution.utm_medium),
        ("utm_campaign", &mut attribution.utm_campaign),
        ("utm_term", &mut attribution.utm_term),
        ("utm_content", &mut attribution.utm_content),
    ];
    for (name, field) in fields {
        if field.is_none() {
            *field = query_param(&query, name)
                .filter(|value| !value.is_empty())
                .map(|value| value.chars().take(255).collect());
        }
    }
}

/// The address as stored: truncated to its network by default.
fn stored_ip(ip: IpAddr, storage: IpStorage) -> Option<String> {
    match storage {
        IpStorage::None => None,
        IpStorage::Full => Some(ip.to_string()),
        IpStorage::Truncated => Some(match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            IpAddr::V6(v6) => {
                let segments = v6.segments();
                let network =
                    std::net::Ipv6Addr::new(segments[0], segments[1], segments[2], 0, 0, 0, 0, 0);
                format!("{network}/48")
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_truncated_by_default() {
        let v4: IpAddr = "203.0.113.77".parse().expect("ip");
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().expect("ip");
        assert_eq!(
            stored_ip(v4, IpStorage::Truncated).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            stored_ip(v6, IpStorage::Truncated).as_deref(),
            Some("2001:db8:abcd::/48")
        );
        assert_eq!(stored_ip(v4, IpStorage::None), None);
        assert_eq!(
            stored_ip(v4, IpStorage::Full).as_deref(),
            Some("203.0.113.77")
        );
    }

    #[test]
    fn utm_parameters_come_from_the_landing_page_when_absent() {
        let mut attribution = Attribution {
            utm_source: Some("explicit".into()),
            landing_page: Some(
                "https://shop.example.com/p?utm_source=ignored&utm_medium=cpc&utm_campaign=black%20friday#top".into(),
            ),
            ..Attribution::default()
        };
        fill_utm_from_landing_page(&mut attribution);
        assert_eq!(attribution.utm_source.as_deref(), Some("explicit"));
        assert_eq!(attribution.utm_medium.as_deref(), Some("cpc"));
        assert_eq!(attribution.utm_campaign.as_deref(), Some("black friday"));
        assert_eq!(attribution.utm_term, None);
    }
}
