//! The PostgreSQL row of an event as it is read back (inserts bind columns as arrays, see
//! `insert_unnest`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{events, sessions};
use crate::domain::{Attribution, Enrichment, EventRecord, Props};
use crate::storage::SessionRecord;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = events, check_for_backend(diesel::pg::Pg))]
pub struct EventRow {
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
    pub props: Option<JsonbText>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub referrer: Option<String>,
    pub landing_page: Option<String>,
    pub idempotency_key: Option<Uuid>,
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

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub event_count: i64,
    pub entry_page: Option<String>,
    pub device_type: Option<String>,
    pub country: Option<String>,
    pub utm_source: Option<String>,
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

/// JSON text bound to a `jsonb` column as it is: PostgreSQL parses it, so Sluice never builds
/// a `serde_json::Value` just to serialize it again.
#[derive(Debug, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Jsonb)]
pub struct JsonbText(pub String);

/// The version byte that starts jsonb's binary format, followed by the JSON text.
const JSONB_VERSION: u8 = 1;

impl diesel::serialize::ToSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for JsonbText {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        use std::io::Write;
        out.write_all(&[JSONB_VERSION])?;
        out.write_all(self.0.as_bytes())?;
        Ok(diesel::serialize::IsNull::No)
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for JsonbText {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, text)) => Ok(Self(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb format version".into()),
        }
    }
}
