//! The SQLite row of an event, used both to insert and to read back. Uuids are stored as
//! hyphenated text, props as JSON text.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{events, sessions};
use crate::domain::{Attribution, Enrichment, EventRecord, Props};
use crate::storage::{SessionRecord, StorageError};

#[derive(Debug, Insertable, Queryable, Selectable)]
#[diesel(table_name = events, check_for_backend(diesel::sqlite::Sqlite), treat_none_as_default_value = false)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub source: String,
    pub actor_id: Option<String>,
    pub actor_type: Option<String>,
    pub user_id: Option<String>,
    pub creator_id: Option<String>,
    pub brand_id: Option<String>,
    pub entity_id: Option<String>,
    pub entity_type: Option<String>,
    pub session_id: Option<String>,
    pub props: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub referrer: Option<String>,
    pub landing_page: Option<String>,
    pub idempotency_key: Option<String>,
    pub dedup_fingerprint: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
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
}

impl From<&EventRecord> for EventRow {
    fn from(event: &EventRecord) -> Self {
        let event = event.clone();
        Self {
            id: event.id.to_string(),
            event_type: event.event_type,
            source: event.source,
            actor_id: event.actor_id,
            actor_type: event.actor_type,
            user_id: event.user_id,
            creator_id: event.creator_id,
            brand_id: event.brand_id,
            entity_id: event.entity_id,
            entity_type: event.entity_type,
            session_id: event.session_id.map(|id| id.to_string()),
            props: event.props.map(Props::into_string),
            utm_source: event.attribution.utm_source,
            utm_medium: event.attribution.utm_medium,
            utm_campaign: event.attribution.utm_campaign,
            utm_term: event.attribution.utm_term,
            utm_content: event.attribution.utm_content,
            referrer: event.attribution.referrer,
            landing_page: event.attribution.landing_page,
            idempotency_key: event.idempotency_key.map(|key| key.to_string()),
            dedup_fingerprint: event.dedup_fingerprint,
            occurred_at: event.occurred_at,
            received_at: event.received_at,
            browser_name: event.enrichment.browser_name,
            browser_version: event.enrichment.browser_version,
            os_name: event.enrichment.os_name,
            os_version: event.enrichment.os_version,
            device_type: event.enrichment.device_type,
            is_bot: event.enrichment.is_bot,
            country: event.enrichment.country,
            region: event.enrichment.region,
            city: event.enrichment.city,
            ip_address: event.enrichment.ip_address,
            referrer_host: event.enrichment.referrer_host,
        }
    }
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StorageError;

    fn try_from(row: EventRow) -> Result<Self, StorageError> {
        Ok(Self {
            id: parse_uuid(&row.id)?,
            event_type: row.event_type,
            source: row.source,
            actor_id: row.actor_id,
            actor_type: row.actor_type,
            user_id: row.user_id,
            creator_id: row.creator_id,
            brand_id: row.brand_id,
            entity_id: row.entity_id,
            entity_type: row.entity_type,
            session_id: row.session_id.as_deref().map(parse_uuid).transpose()?,
            props: row.props.map(Props::from_json_text),
            attribution: Attribution {
                utm_source: row.utm_source,
                utm_medium: row.utm_medium,
                utm_campaign: row.utm_campaign,
                utm_term: row.utm_term,
                utm_content: row.utm_content,
                referrer: row.referrer,
                landing_page: row.landing_page,
            },
            idempotency_key: row.idempotency_key.as_deref().map(parse_uuid).transpose()?,
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

pub(super) fn parse_uuid(text: &str) -> Result<Uuid, StorageError> {
    Uuid::try_parse(text).map_err(|error| {
        StorageError::Query(diesel::result::Error::DeserializationError(Box::new(error)))
    })
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::sqlite::Sqlite))]
pub struct SessionRow {
    pub id: String,
    pub user_id: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
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
            id: parse_uuid(&row.id)?,
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
