//! The event and session rows, written once for both backends.
//!
//! The columns are the same on PostgreSQL and SQLite; only how a uuid, JSON text and a
//! timestamp are typed differs (`uuid`/`jsonb`/`timestamptz` there, text here). So each
//! backend's `models.rs` instantiates [`stored_rows!`] with its own representations, and the
//! column list and the conversions to and from [`EventRecord`](crate::domain::EventRecord)
//! and [`SessionRecord`](super::SessionRecord) exist once, here. The `schema.rs` files stay
//! as diesel's CLI prints them from each backend's migrations.

use uuid::Uuid;

use super::StorageError;

/// How a backend stores a uuid.
pub(crate) trait StoredUuid: Sized {
    fn from_uuid(id: Uuid) -> Self;
    fn to_uuid(&self) -> Result<Uuid, StorageError>;
}

impl StoredUuid for Uuid {
    fn from_uuid(id: Uuid) -> Self {
        id
    }

    fn to_uuid(&self) -> Result<Uuid, StorageError> {
        Ok(*self)
    }
}

/// Hyphenated text, as SQLite keeps uuids.
impl StoredUuid for String {
    fn from_uuid(id: Uuid) -> Self {
        id.to_string()
    }

    fn to_uuid(&self) -> Result<Uuid, StorageError> {
        Uuid::try_parse(self).map_err(|error| {
            StorageError::Query(diesel::result::Error::DeserializationError(Box::new(error)))
        })
    }
}

/// How a backend stores JSON text (`props`).
pub(crate) trait StoredJson {
    fn from_text(text: String) -> Self;
    fn into_text(self) -> String;
}

impl StoredJson for String {
    fn from_text(text: String) -> Self {
        text
    }

    fn into_text(self) -> String {
        self
    }
}

/// Declares `EventRow` and `SessionRow` for one backend, with their conversions.
///
/// `backend` is the diesel backend the rows are checked against, `uuid` and `json` the Rust
/// types of its uuid and JSON columns (implementing [`StoredUuid`] and [`StoredJson`]).
macro_rules! stored_rows {
    (backend = [$($backend:tt)+], uuid = $uuid:ty, json = $json:ty) => {
        use $crate::domain::{Attribution, Enrichment, EventRecord, Props};
        use $crate::storage::rows::{StoredJson as _, StoredUuid as _};
        use $crate::storage::{SessionRecord, StorageError};

        /// One row of `events`.
        #[derive(Debug, diesel::Insertable, diesel::Queryable, diesel::Selectable)]
        #[diesel(
            table_name = super::schema::events,
            check_for_backend($($backend)+),
            treat_none_as_default_value = false
        )]
        pub struct EventRow {
            pub id: $uuid,
            pub event_type: String,
            pub source: String,
            pub actor_id: Option<String>,
            pub actor_type: Option<String>,
            pub user_id: Option<String>,
            pub creator_id: Option<String>,
            pub brand_id: Option<String>,
            pub entity_id: Option<String>,
            pub entity_type: Option<String>,
            pub session_id: Option<$uuid>,
            pub props: Option<$json>,
            pub utm_source: Option<String>,
            pub utm_medium: Option<String>,
            pub utm_campaign: Option<String>,
            pub utm_term: Option<String>,
            pub utm_content: Option<String>,
            pub referrer: Option<String>,
            pub landing_page: Option<String>,
            pub idempotency_key: Option<$uuid>,
            pub dedup_fingerprint: Option<String>,
            pub occurred_at: chrono::DateTime<chrono::Utc>,
            pub received_at: chrono::DateTime<chrono::Utc>,
            pub browser_name: Option<String>,
            pub browser_version: Option<String>,
            pub os_name: Option<String>,
            pub os_version: Option<String>,
            pub device_type: Option<String>,
            pub is_bot: bool,
            pub country: Option<String>,
            pub region: Option<String>,
            pub city: Option<String>,
            pub ip_address: Option<String>,
            pub referrer_host: Option<String>,
            /// [`EventRecord::page_path`], kept for metrics.
            pub path: Option<String>,
        }

        impl From<&EventRecord> for EventRow {
            fn from(event: &EventRecord) -> Self {
                let path = event.page_path();
                let event = event.clone();
                let (attribution, enrichment) = (event.attribution, event.enrichment);
                Self {
                    id: <$uuid>::from_uuid(event.id),
                    event_type: event.event_type,
                    source: event.source,
                    actor_id: event.actor_id,
                    actor_type: event.actor_type,
                    user_id: event.user_id,
                    creator_id: event.creator_id,
                    brand_id: event.brand_id,
                    entity_id: event.entity_id,
                    entity_type: event.entity_type,
                    session_id: event.session_id.map(<$uuid>::from_uuid),
                    props: event.props.map(|props| <$json>::from_text(props.into_string())),
                    utm_source: attribution.utm_source,
                    utm_medium: attribution.utm_medium,
                    utm_campaign: attribution.utm_campaign,
                    utm_term: attribution.utm_term,
                    utm_content: attribution.utm_content,
                    referrer: attribution.referrer,
                    landing_page: attribution.landing_page,
                    idempotency_key: event.idempotency_key.map(<$uuid>::from_uuid),
                    dedup_fingerprint: event.dedup_fingerprint,
                    occurred_at: event.occurred_at,
                    received_at: event.received_at,
                    browser_name: enrichment.browser_name,
                    browser_version: enrichment.browser_version,
                    os_name: enrichment.os_name,
                    os_version: enrichment.os_version,
                    device_type: enrichment.device_type,
                    is_bot: enrichment.is_bot,
                    country: enrichment.country,
                    region: enrichment.region,
                    city: enrichment.city,
                    ip_address: enrichment.ip_address,
                    referrer_host: enrichment.referrer_host,
                    path,
                }
            }
        }

        impl TryFrom<EventRow> for EventRecord {
            type Error = StorageError;

            fn try_from(row: EventRow) -> Result<Self, StorageError> {
                Ok(Self {
                    id: row.id.to_uuid()?,
                    event_type: row.event_type,
                    source: row.source,
                    actor_id: row.actor_id,
                    actor_type: row.actor_type,
                    user_id: row.user_id,
                    creator_id: row.creator_id,
                    brand_id: row.brand_id,
                    entity_id: row.entity_id,
                    entity_type: row.entity_type,
                    session_id: row.session_id.as_ref().map(|id| id.to_uuid()).transpose()?,
                    props: row.props.map(|props| Props::from_json_text(props.into_text())),
                    attribution: Attribution {
                        utm_source: row.utm_source,
                        utm_medium: row.utm_medium,
                        utm_campaign: row.utm_campaign,
                        utm_term: row.utm_term,
                        utm_content: row.utm_content,
                        referrer: row.referrer,
                        landing_page: row.landing_page,
                    },
                    idempotency_key: row
                        .idempotency_key
                        .as_ref()
                        .map(|key| key.to_uuid())
                        .transpose()?,
                    dedup_fingerprint: row.dedup_fingerprint,
                    occurred_at: row.occurred_at,
                    received_at: row.received_at,
                    enrichment: Enrichment {
                        browser_name: row.browser_name,
                        browser_version: row.browser_version,
                        os_name: row.os_name,
                        os_version: row.os_version,
                        device_type: row.device_type,
                        is_bot: row.is_bot,
                        country: row.country,
                        region: row.region,
                        city: row.city,
                        ip_address: row.ip_address,
                        referrer_host: row.referrer_host,
                    },
                })
            }
        }

        /// One row of `sessions`.
        #[derive(Debug, diesel::Queryable, diesel::Selectable)]
        #[diesel(table_name = super::schema::sessions, check_for_backend($($backend)+))]
        pub struct SessionRow {
            pub id: $uuid,
            pub user_id: Option<String>,
            pub first_seen_at: chrono::DateTime<chrono::Utc>,
            pub last_seen_at: chrono::DateTime<chrono::Utc>,
            pub event_count: i64,
            pub entry_page: Option<String>,
            pub device_type: Option<String>,
            pub country: Option<String>,
            pub utm_source: Option<String>,
        }

        impl TryFrom<SessionRow> for SessionRecord {
            type Error = StorageError;

            fn try_from(row: SessionRow) -> Result<Self, StorageError> {
                Ok(Self {
                    id: row.id.to_uuid()?,
                    user_id: row.user_id,
                    first_seen_at: row.first_seen_at,
                    last_seen_at: row.last_seen_at,
                    event_count: row.event_count,
                    entry_page: row.entry_page,
                    device_type: row.device_type,
                    country: row.country,
                    utm_source: row.utm_source,
                })
            }
        }
    };
}

pub(crate) use stored_rows;
