//! The procedures, one file each. Each file declares its procedure once — path, kind,
//! access, summary, input and output schemas, handler — in a [`ProcedureSpec`]; the JSON-RPC
//! registration, the tRPC dispatch, the admin check and `schema/` are all derived from
//! `ALL`. Adding a procedure is one new file here and one line in `ALL`.

mod diagnostics;
mod force_flush;
mod get_funnel;
mod get_metrics;
mod get_retention;
mod get_stats;
mod set_consent;
mod track;
mod track_batch;

use futures_util::future::BoxFuture;
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde_json::{Value, json};

use super::EventIngestion;
use super::error::{ApiError, ErrorCode, InvalidInput};
use crate::domain::{Caller, RequestContext};

pub use track_batch::MAX_BATCH_EVENTS;

/// Every procedure Sluice serves, in the order the schema lists them.
pub(super) const ALL: &[&ProcedureSpec] = &[
    &track::PROCEDURE,
    &track_batch::PROCEDURE,
    &get_stats::PROCEDURE,
    &force_flush::PROCEDURE,
    &set_consent::PROCEDURE,
    &diagnostics::PROCEDURE,
    &get_metrics::PROCEDURE,
    &get_funnel::PROCEDURE,
    &get_retention::PROCEDURE,
];

/// How a procedure is called: tRPC serves queries over GET and mutations over POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Mutation,
}

/// Who may call a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a JWT, when sent, names the caller.
    Anyone,
    /// The admin token or a JWT with the ADMIN role, checked before the handler runs.
    Admin,
}

/// A procedure's handler: the service, the request, the raw input → the JSON output.
pub type Handler = for<'a> fn(
    &'a EventIngestion,
    &'a RequestContext,
    Option<Value>,
) -> BoxFuture<'a, Result<Value, ApiError>>;

/// Everything transports and the schema need to know of one procedure.
pub struct ProcedureSpec {
    /// The JSON-RPC method name and the tRPC path.
    pub path: &'static str,
    pub kind: Kind,
    pub access: Access,
    /// One line for the schema.
    pub summary: &'static str,
    /// False for procedures that take no input (`{}` or nothing).
    pub input_required: bool,
    pub input_schema: fn(&mut SchemaGenerator) -> Value,
    pub output_schema: fn(&mut SchemaGenerator) -> Value,
    pub handler: Handler,
}

/// A [`Handler`] from a call of one of `EventIngestion`'s procedure methods: the call's
/// future boxed, its output encoded as JSON.
macro_rules! handler {
    (|$service:ident, $context:pat_param, $input:ident| $call:expr) => {{
        fn handle<'a>(
            $service: &'a $crate::api::EventIngestion,
            $context: &'a $crate::domain::RequestContext,
            $input: Option<::serde_json::Value>,
        ) -> ::futures_util::future::BoxFuture<
            'a,
            Result<::serde_json::Value, $crate::api::error::ApiError>,
        > {
            Box::pin(async move { $crate::api::procedures::to_json($call.await) })
        }
        handle
    }};
}
use handler;

/// A report the store could not read, as callers see it (the cause goes to the log).
fn report_unavailable(error: &crate::storage::StorageError) -> ApiError {
    tracing::warn!(%error, "report query failed");
    ApiError::unavailable(
        format!("Could not read the report ({}); retry", error.tag()),
        1,
    )
}

/// The schema of `T`, registered with the generator's shared definitions.
fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// The input schema of procedures without input.
fn no_input(_: &mut SchemaGenerator) -> Value {
    json!({"type": "object", "additionalProperties": false})
}

/// Whose bucket a request draws from: the user, else the session, else the client address.
fn rate_limit_key(caller: &Caller, session: Option<&str>, context: &RequestContext) -> String {
    if let Some(user) = caller.user_id() {
        format!("user:{user}")
    } else if let Some(session) = session {
        format!("session:{session}")
    } else if let Some(ip) = context.client_ip {
        format!("ip:{ip}")
    } else {
        "unknown".to_owned()
    }
}

fn session_of(input: &Value) -> Option<&str> {
    input.get("sessionId").and_then(Value::as_str)
}

/// Procedures without input accept none, `{}` (tRPC clients send either) — nothing else.
fn expect_no_input(input: Option<Value>) -> Result<(), ApiError> {
    match input {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(fields)) if fields.is_empty() => Ok(()),
        Some(Value::Object(fields)) => {
            let mut errors = InvalidInput::default();
            let keys: Vec<String> = fields.keys().map(|key| format!("'{key}'")).collect();
            errors.form(format!(
                "Unrecognized key(s) in object: {}",
                keys.join(", ")
            ));
            Err(ApiError::validation(errors))
        }
        Some(_) => {
            let mut errors = InvalidInput::default();
            errors.form("Expected an empty object or no input");
            Err(ApiError::validation(errors))
        }
    }
}

fn to_json<T: Serialize>(result: Result<T, ApiError>) -> Result<Value, ApiError> {
    result.and_then(|output| {
        serde_json::to_value(output)
            .map_err(|error| ApiError::new(ErrorCode::InternalServerError, error.to_string()))
    })
}
