//! The three column types whose storage differs between the backends, as SQL types of their
//! own, so that one schema (and every statement built on it) serves both:
//!
//! | type | Rust | PostgreSQL | SQLite |
//! |---|---|---|---|
//! | [`Id`] | `Uuid` | `uuid` | hyphenated text |
//! | [`UtcTime`] | `DateTime<Utc>` | `timestamptz` | diesel's `TimestamptzSqlite` text |
//! | [`Json`] | [`JsonText`] | `jsonb` | text |
//!
//! Each conversion hands over to diesel's own for the backend's type, so the stored format is
//! the one diesel always wrote.

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
use diesel::internal::derives::as_expression::Bound;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types;
use diesel::sqlite::{Sqlite, SqliteValue};
use uuid::Uuid;

/// A uuid column.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Id;

/// A timestamp column (UTC).
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct UtcTime;

/// A JSON column.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Json;

/// JSON text, stored as it is: PostgreSQL parses it into `jsonb`, so Sluice never builds a
/// `serde_json::Value` just to serialize it again.
#[derive(Debug, Clone, PartialEq, Eq, AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = Json)]
pub struct JsonText(pub String);

/// The version byte that starts jsonb's binary format, followed by the JSON text.
const JSONB_VERSION: u8 = 1;

impl ToSql<Id, Pg> for Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<sql_types::Uuid, Pg>>::to_sql(self, out)
    }
}

impl FromSql<Id, Pg> for Uuid {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<sql_types::Uuid, Pg>>::from_sql(value)
    }
}

impl ToSql<Id, Sqlite> for Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<Id, Sqlite> for Uuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Uuid::try_parse(&text)?)
    }
}

impl ToSql<UtcTime, Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<sql_types::Timestamptz, Pg>>::to_sql(self, out)
    }
}

impl FromSql<UtcTime, Pg> for DateTime<Utc> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<sql_types::Timestamptz, Pg>>::from_sql(value)
    }
}

impl ToSql<UtcTime, Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <DateTime<Utc> as ToSql<sql_types::TimestamptzSqlite, Sqlite>>::to_sql(self, out)
    }
}

impl FromSql<UtcTime, Sqlite> for DateTime<Utc> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<sql_types::TimestamptzSqlite, Sqlite>>::from_sql(value)
    }
}

impl ToSql<Json, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        use std::io::Write;
        out.write_all(&[JSONB_VERSION])?;
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Json, Pg> for JsonText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, text)) => Ok(Self(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb format version".into()),
        }
    }
}

impl ToSql<Json, Sqlite> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.as_str());
        Ok(IsNull::No)
    }
}

impl FromSql<Json, Sqlite> for JsonText {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <String as FromSql<sql_types::Text, Sqlite>>::from_sql(value).map(Self)
    }
}

/// A non-null value of a portable column, ready to bind: `events::id.eq(Stored(id))`.
///
/// `Uuid` and `DateTime<Utc>` are other crates' types, and diesel's blanket impls keep another
/// crate from making them expressions of a new SQL type; this wrapper is Sluice's own. (Rows
/// read them as they are, and `Option`s bind as they are: diesel covers both.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<T>(pub T);

/// A Rust type with a portable SQL type.
pub trait Portable {
    type Sql: diesel::sql_types::SqlType + diesel::expression::TypedExpressionType;
}

impl Portable for Uuid {
    type Sql = Id;
}

impl Portable for DateTime<Utc> {
    type Sql = UtcTime;
}

impl<T> From<T> for Stored<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Portable> AsExpression<T::Sql> for Stored<T> {
    type Expression = Bound<T::Sql, Self>;
    fn as_expression(self) -> Self::Expression {
        Bound::new(self)
    }
}

impl<T: Portable> AsExpression<T::Sql> for &Stored<T> {
    type Expression = Bound<T::Sql, Self>;
    fn as_expression(self) -> Self::Expression {
        Bound::new(self)
    }
}

impl<T, DB> ToSql<T::Sql, DB> for Stored<T>
where
    T: Portable + ToSql<T::Sql, DB> + std::fmt::Debug,
    DB: diesel::backend::Backend,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.to_sql(out)
    }
}
