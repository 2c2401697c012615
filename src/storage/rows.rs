//! The event and session rows, once for both backends (the schema's portable types make the
//! columns the same Rust types on each): the column list and the conversions to and from
//! [`EventRecord`] and [`SessionRecord`].

use diesel::Selectable;
use diesel::pg::Pg;
use uuid::Uuid;

use super::schema::types::{JsonText, Stored};

use crate::domain::{Attribution, Enrichment, EventRecord, Props};
use crate::storage::SessionRecord;

/// One row of `events`.
#[derive(Debug, diesel::Insertable, diesel::Queryable, diesel::Selectable)]
#[diesel(
    table_name = super::schema::events,
    check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite),
    treat_none_as_default_value = false
)]
pub struct EventRow {
    #[diesel(serialize_as = Stored<Uuid>)]
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
    pub props: Option<JsonText>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub referrer: Option<String>,
    pub landing_page: Option<String>,
    pub idempotency_key: Option<Uuid>,
    pub dedup_fingerprint: Option<String>,
    #[diesel(serialize_as = Stored<chrono::DateTime<chrono::Utc>>)]
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    #[diesel(serialize_as = Stored<chrono::DateTime<chrono::Utc>>)]
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

impl EventRow {
    /// The columns an `EventRow` is read from (the same on both backends).
    pub fn columns() -> <Self as Selectable<Pg>>::SelectExpression {
        <Self as Selectable<Pg>>::construct_selection()
    }
}

impl From<&EventRecord> for EventRow {
    fn from(event: &EventRecord) -> Self {
        let path = event.page_path();
        let event = event.clone();
        let (attribution, enrichment) = (event.attribution, event.enrichment);
        Self {
            id: event.id,
            event_type: event.event_type,
            source: event.source,
            actor_id: event.actor_id,
            actor_type: event.actor_type,
            user_id: event.user_id,
            creator_id: event.creator_id,
            brand_id: event.brand_id,
            entity_id: event.entity_id,
            entity_type: event.entity_type,
            session_id: event.session_id,
            props: event.props.map(|props| JsonText(props.into_string())),
            utm_source: attribution.utm_source,
            utm_medium: attribution.utm_medium,
            utm_campaign: attribution.utm_campaign,
            utm_term: attribution.utm_term,
            utm_content: attribution.utm_content,
            referrer: attribution.referrer,
            landing_page: attribution.landing_page,
            idempotency_key: event.idempotency_key,
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

impl From<EventRow> for EventRecord {
    fn from(row: EventRow) -> Self {
        Self {
            id: row.id,
            event_type: row.event_type,
            source: row.source,
            actor_id: row.actor_id,
            actor_type: row.actor_type,
            user_id: row.user_id,
            creator_id: row.creator_id,
            brand_id: row.brand_id,
            entity_id: row.entity_id,
            entity_type: row.entity_type,
            session_id: row.session_id,
            props: row.props.map(|props| Props::from_json_text(props.0)),
            attribution: Attribution {
                utm_source: row.utm_source,
                utm_medium: row.utm_medium,
                utm_campaign: row.utm_campaign,
                utm_term: row.utm_term,
                utm_content: row.utm_content,
                referrer: row.referrer,
                landing_page: row.landing_page,
            },
            idempotency_key: row.idempotency_key,
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
        }
    }
}

/// One row of `sessions`.
#[derive(Debug, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = super::schema::sessions, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Option<String>,
    pub first_seen_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub event_count: i64,
    pub entry_page: Option<String>,
    pub device_type: Option<String>,
    pub country: Option<String>,
    pub utm_source: Option<String>,
}

impl SessionRow {
    /// The columns a `SessionRow` is read from (the same on both backends).
    pub fn columns() -> <Self as Selectable<Pg>>::SelectExpression {
        <Self as Selectable<Pg>>::construct_selection()
    }
}

impl From<SessionRow> for SessionRecord {
    fn from(row: SessionRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            first_seen_at: row.first_seen_at,
            last_seen_at: row.last_seen_at,
            event_count: row.event_count,
            entry_page: row.entry_page,
            device_type: row.device_type,
            country: row.country,
            utm_source: row.utm_source,
        }
    }
}
