//! Places: where a client is, as far as a CDN or a GeoIP database can tell.

/// Where a request comes from, as a trusted CDN or the GeoIP database says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
}
