//! The client's IP address: the TCP peer, unless the peer is a proxy the operator trusts, in
//! which case `X-Forwarded-For` (or `X-Real-IP`) says who the client is. Without trusted
//! proxies those headers are ignored, so nobody can spoof an address by sending them.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use crate::domain::Place;
use crate::url_parts::percent_decode;

/// Resolves the client address of a request that arrived from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    // Each proxy appends the address it received from, so walk from the right and stop at
    // the first hop that is not one of ours.
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| parse_hop(hop.trim()))
        .collect();
    if let Some(client) = forwarded.iter().rev().find(|hop| !trusted(hop)) {
        return *client;
    }
    if let Some(first) = forwarded.first() {
        return *first;
    }
    headers
        .get("x-real-ip")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_hop(value.trim()))
        .unwrap_or(peer)
}

/// Country, region and city from the headers CDNs add (Cloudflare, CloudFront, Vercel), only
/// when the request came through a trusted proxy: anyone else could send them.
pub fn cdn_place(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> Place {
    if !trusted_proxies.iter().any(|net| net.contains(&peer)) {
        return Place::default();
    }
    let first = |names: &[&str]| {
        names.iter().find_map(|name| {
            headers
                .get(*name)
                .and_then(|value| value.to_str().ok())
                .map(|value| percent_decode(value.trim()))
                .filter(|value| !value.is_empty() && value != "XX" && value != "T1")
        })
    };
    Place {
        country: first(&[
            "cf-ipcountry",
            "cloudfront-viewer-country",
            "x-vercel-ip-country",
        ])
        .map(|code| code.to_ascii_uppercase()),
        region: first(&[
            "cf-region-code",
            "cloudfront-viewer-country-region",
            "x-vercel-ip-country-region",
        ]),
        city: first(&["cf-ipcity", "cloudfront-viewer-city", "x-vercel-ip-city"]),
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse().ok().or_else(|| {
        hop.parse::<std::net::SocketAddr>()
            .ok()
            .map(|address| address.ip())
    })
}

/// Parses the trusted-proxy setting: comma-separated addresses or CIDR networks.
pub fn parse_trusted_proxies(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("not an IP address or CIDR network: {entry}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn forwarded_headers_are_ignored_from_untrusted_peers() {
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &spoofed, &[]),
            ip("203.0.113.9")
        );
        let trusted = parse_trusted_proxies("10.0.0.0/8").expect("list");
        assert_eq!(
            client_ip(ip("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_chain_is_walked_from_the_right() {
        let trusted = parse_trusted_proxies("10.0.0.0/8, 192.168.1.1").expect("list");
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(
            client_ip(ip("192.168.1.1"), &chain, &trusted),
            ip("198.51.100.7")
        );
        let real_ip = headers(&[("x-real-ip", "198.51.100.8")]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &real_ip, &trusted),
            ip("198.51.100.8")
        );
        let with_port = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &with_port, &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn cdn_geography_is_believed_only_from_trusted_proxies() {
        let cdn = headers(&[
            ("cf-ipcountry", "de"),
            ("x-vercel-ip-city", "S%C3%A3o%20Paulo"),
        ]);
        let trusted = parse_trusted_proxies("10.0.0.0/8").expect("list");
        let place = cdn_place(ip("10.0.0.1"), &cdn, &trusted);
        assert_eq!(place.country.as_deref(), Some("DE"));
        assert_eq!(place.city.as_deref(), Some("São Paulo"));
        assert_eq!(
            cdn_place(ip("203.0.113.1"), &cdn, &trusted),
            Place::default()
        );
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        assert!(parse_trusted_proxies("10.0.0.0/8, nonsense").is_err());
        assert_eq!(parse_trusted_proxies("").expect("empty").len(), 0);
    }
}
