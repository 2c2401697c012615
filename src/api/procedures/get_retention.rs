//! `eventIngestion.getRetention`: do visitors come back? Cohorts by the period of their first
//! event in range.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::get_metrics::{check_filters, checked_range};
use super::{Access, Kind, ProcedureSpec, handler, schema_of};
use crate::api::EventIngestion;
use crate::api::error::{ApiError, InvalidInput};
use crate::api::types::GetRetentionInput;
use crate::domain::{RetentionQuery, RetentionReport};
use crate::pipeline::validation::{collect_validator_errors, parse_input};

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.getRetention",
    kind: Kind::Query,
    access: Access::Admin,
    summary: "Visitors by the day or week they first came, and how many came back in each later one (ADMIN).",
    input_required: false,
    input_schema: schema_of::<GetRetentionInput>,
    output_schema: schema_of::<RetentionReport>,
    handler: handler!(|service, _, input| service.get_retention(input)),
};

impl EventIngestion {
    /// `eventIngestion.getRetention`: cohorts and how many of each came back.
    async fn get_retention(&self, input: Option<Value>) -> Result<RetentionReport, ApiError> {
        let query = retention_query(input, self.pipeline.now()).map_err(ApiError::validation)?;
        self.pipeline
            .store()
            .retention(&query)
            .await
            .map_err(|error| super::report_unavailable(&error))
    }
}

/// Checks and defaults a `getRetention` input received at `now`.
pub fn retention_query(
    input: Option<Value>,
    now: DateTime<Utc>,
) -> Result<RetentionQuery, InvalidInput> {
    let input: GetRetentionInput = match input {
        None | Some(Value::Null) => GetRetentionInput::default(),
        raw => parse_input(raw)?,
    };
    let mut errors = InvalidInput::default();
    if let Err(derived) = validator::Validate::validate(&input) {
        collect_validator_errors(&derived, "", &mut errors);
    }
    check_filters(input.filters.as_ref(), &mut errors);
    let (from, to) = checked_range(input.from.as_deref(), input.to.as_deref(), now, errors)?;
    Ok(RetentionQuery {
        from,
        to,
        period: input.period.unwrap_or_default(),
        filters: input.filters.unwrap_or_default(),
    })
}
