//! Writes a tiny MaxMind DB (.mmdb) file, so the tests exercise the real reader on a real
//! database: one IPv4 network mapped to a GeoIP2-City-shaped record.
//! Format: https://maxmind.github.io/MaxMind-DB/ (search tree, data section, metadata).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// A value of the MaxMind DB data section.
pub enum Data {
    Str(&'static str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(BTreeMap<&'static str, Data>),
    Array(Vec<Data>),
}

fn control(out: &mut Vec<u8>, type_number: u8, size: usize) {
    assert!(size < 29, "tiny writer: sizes below 29 only");
    if type_number <= 7 {
        out.push((type_number << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(type_number - 7);
    }
}

fn uint(out: &mut Vec<u8>, type_number: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let first = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len());
    control(out, type_number, bytes.len() - first);
    out.extend_from_slice(&bytes[first..]);
}

fn encode(out: &mut Vec<u8>, data: &Data) {
    match data {
        Data::Str(text) => {
            control(out, 2, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Data::U16(value) => uint(out, 5, u64::from(*value)),
        Data::U32(value) => uint(out, 6, u64::from(*value)),
        Data::U64(value) => uint(out, 9, *value),
        Data::Map(entries) => {
            control(out, 7, entries.len());
            for (key, value) in entries {
                encode(out, &Data::Str(key));
                encode(out, value);
            }
        }
        Data::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
    }
}

/// `{key: value, …}`.
pub fn map(entries: Vec<(&'static str, Data)>) -> Data {
    Data::Map(entries.into_iter().collect())
}

/// A GeoIP2-City record.
pub fn city_record(country: &'static str, region: &'static str, city: &'static str) -> Data {
    map(vec![
        ("country", map(vec![("iso_code", Data::Str(country))])),
        (
            "subdivisions",
            Data::Array(vec![map(vec![("iso_code", Data::Str(region))])]),
        ),
        (
            "city",
            map(vec![("names", map(vec![("en", Data::Str(city))]))]),
        ),
    ])
}

/// Writes an IPv4 database where `network`/`prefix` maps to `record` and nothing else matches.
pub fn write(path: &Path, network: Ipv4Addr, prefix: usize, record: &Data) {
    let bits = u32::from(network);
    let node_count = prefix as u32;
    let data_pointer = node_count + 16; // offset 0 of the data section
    let mut tree = Vec::new();
    for depth in 0..prefix {
        let bit = (bits >> (31 - depth)) & 1;
        let on_path = if depth + 1 == prefix {
            data_pointer
        } else {
            depth as u32 + 1
        };
        let (left, right) = if bit == 0 {
            (on_path, node_count)
        } else {
            (node_count, on_path)
        };
        for record_value in [left, right] {
            tree.extend_from_slice(&record_value.to_be_bytes()[1..]); // 24-bit records
        }
    }
    let mut file = tree;
    file.extend_from_slice(&[0u8; 16]);
    encode(&mut file, record);
    file.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let metadata = map(vec![
        ("binary_format_major_version", Data::U16(2)),
        ("binary_format_minor_version", Data::U16(0)),
        ("build_epoch", Data::U64(1_700_000_000)),
        ("database_type", Data::Str("Sluice-Test-City")),
        ("description", map(vec![("en", Data::Str("test database"))])),
        ("ip_version", Data::U16(4)),
        ("languages", Data::Array(vec![Data::Str("en")])),
        ("node_count", Data::U32(node_count)),
        ("record_size", Data::U16(24)),
    ]);
    encode(&mut file, &metadata);
    std::fs::write(path, file).expect("write mmdb");
}
