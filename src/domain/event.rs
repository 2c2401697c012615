//! The domain model: an accepted analytics event as it is buffered, written and read back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::Attribution;
use crate::url_parts::path_of;

/// An event that passed validation and was given its id.
///
/// Identity fields are stamped by the server from the caller's credentials; clients never
/// send them. Text-valued enums (`source`, `entity_type`) are stored by their wire names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: Uuid,
    pub event_type: String,
    pub source: String,
    pub actor_id: Option<String>,
    pub actor_type: Option<String>,
    pub user_id: Option<String>,
    pub creator_id: Option<String>,
    pub brand_id: Option<String>,
    pub entity_id: Option<String>,
    pub entity_type: Option<String>,
    pub session_id: Option<Uuid>,
    pub props: Option<Props>,
    pub attribution: Attribution,
    pub idempotency_key: Option<Uuid>,
    pub dedup_fingerprint: Option<String>,
    /// When the event happened: `props.occurred_at` if the client sent it, else `received_at`.
    #[serde(with = "compact_time")]
    pub occurred_at: DateTime<Utc>,
    /// When Sluice accepted the event.
    #[serde(with = "compact_time")]
    pub received_at: DateTime<Utc>,
    /// What the server derived about the event's client.
    pub enrichment: Enrichment,
}

/// Facts about the client derived at ingestion: device from the user agent, place from
/// trusted CDN headers or a GeoIP database, the referrer's host, and the client address as
/// the operator chose to keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrichment {
    pub browser_name: Option<String>,
    pub browser_version: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    /// desktop, mobile, tablet, tv, console, wearable, bot or other.
    pub device_type: Option<String>,
    pub is_bot: bool,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    /// Truncated (/24, /48) by default; full or absent when so configured.
    pub ip_address: Option<String>,
    pub referrer_host: Option<String>,
}

impl EventRecord {
    /// The page the event happened on: `props.path`, else `props.page`, else the landing
    /// page's path (docs/live-and-metrics.md "Live analytics"; metrics group pages the same way).
    pub fn page_path(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct PageProps {
            path: Option<String>,
            page: Option<String>,
        }
        let from_props = self
            .props
            .as_ref()
            .and_then(|props| serde_json::from_str::<PageProps>(props.as_str()).ok())
            .and_then(|props| props.path.or(props.page));
        from_props.or_else(|| self.attribution.landing_page.as_deref().map(path_of))
    }

    /// The event as one JSON object, props included as an object (not as their text).
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        let mut json = serde_json::to_value(self)?;
        if let Some(props) = &self.props {
            json["props"] = props.to_value()?;
        }
        Ok(json)
    }
}

/// An event's props: a JSON object kept as its compact text. Validation and fingerprinting
/// read the parsed object; from then on the text is all that is needed, and it takes a
/// fraction of the memory of a parsed `Value` while the event waits in the buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Props(Box<str>);

impl Props {
    /// Props from their JSON text (as validation serialized them, or the database returned
    /// them).
    pub fn from_json_text(text: impl Into<Box<str>>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into()
    }

    /// The props parsed back into a JSON value.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl From<serde_json::Map<String, Value>> for Props {
    fn from(object: serde_json::Map<String, Value>) -> Self {
        Self(Value::Object(object).to_string().into())
    }
}

/// A new event id: a UUIDv7 (time-ordered, so ids insert at the end of the primary key) with
/// its random bits from a fast thread-local generator. The ids need to be unique, not
/// unguessable, and the operating system's generator cost a system call per event.
pub fn new_event_id() -> Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    let mut random = [0u8; 10];
    fastrand::fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// Times as RFC 3339 text in JSON (dead letters stay readable) and as nanoseconds in binary
/// formats (the packed buffer), where formatting and parsing text would be wasted work.
mod compact_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            time.serialize(serializer)
        } else {
            let seconds = time.timestamp();
            let nanos = time.timestamp_subsec_nanos();
            (seconds, nanos).serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        if deserializer.is_human_readable() {
            DateTime::deserialize(deserializer)
        } else {
            let (seconds, nanos) = <(i64, u32)>::deserialize(deserializer)?;
            DateTime::from_timestamp(seconds, nanos)
                .ok_or_else(|| serde::de::Error::custom("time out of range"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_distinct_time_ordered_v7() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| new_event_id()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let millis = |id: &Uuid| id.get_timestamp().map(|t| t.to_unix()).unwrap_or_default();
        assert!(
            ids.windows(2)
                .all(|pair| millis(&pair[0]) <= millis(&pair[1]))
        );
    }

    #[test]
    fn times_are_text_in_json() {
        let mut event = crate::domain::test_support::event("signed_up");
        event.props = serde_json::json!({"a": 1})
            .as_object()
            .cloned()
            .map(Into::into);
        let json = event.to_json().expect("json");
        assert!(
            json["occurred_at"]
                .as_str()
                .is_some_and(|t| t.contains('T'))
        );
        assert_eq!(json["props"], serde_json::json!({"a": 1}));
    }
}
