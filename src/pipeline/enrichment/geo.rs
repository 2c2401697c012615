//! Geography from a MaxMind-format database (GeoLite2/GeoIP2 City or Country, or any
//! compatible .mmdb) that the operator points Sluice at.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};

use crate::domain::Place;

/// An opened .mmdb file, read into memory once.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl GeoIp {
    pub fn open(path: &Path) -> Result<Self, String> {
        Reader::open_readfile(path)
            .map(|reader| Self { reader })
            .map_err(|error| format!("cannot open GeoIP database {}: {error}", path.display()))
    }

    /// Country, region and city of `ip`, when the database knows it.
    pub fn locate(&self, ip: IpAddr) -> Option<Place> {
        let found = self.reader.lookup(ip).ok()?;
        let city: geoip2::City<'_> = found.decode().ok()??;
        let place = Place {
            country: city.country.iso_code.map(str::to_owned),
            region: city
                .subdivisions
                .first()
                .and_then(|subdivision| subdivision.iso_code.or(subdivision.names.english))
                .map(str::to_owned),
            city: city.city.names.english.map(str::to_owned),
        };
        (place != Place::default()).then_some(place)
    }
}
