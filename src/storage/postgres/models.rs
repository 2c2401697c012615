//! The PostgreSQL rows (see `storage::rows`): native uuids, props as [`JsonbText`].

crate::storage::rows::stored_rows!(
    backend = [diesel::pg::Pg],
    uuid = uuid::Uuid,
    json = JsonbText
);

/// JSON text bound to a `jsonb` column as it is: PostgreSQL parses it, so Sluice never builds
/// a `serde_json::Value` just to serialize it again.
#[derive(Debug, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Jsonb)]
pub struct JsonbText(pub String);

/// The version byte that starts jsonb's binary format, followed by the JSON text.
const JSONB_VERSION: u8 = 1;

impl crate::storage::rows::StoredJson for JsonbText {
    fn from_text(text: String) -> Self {
        Self(text)
    }

    fn into_text(self) -> String {
        self.0
    }
}

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
