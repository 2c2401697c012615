//! `eventIngestion.getFunnel`: of the visitors who did the first step, how many went on to
//! each next one, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::get_metrics::{MAX_TEXT, check_filters, checked_range};
use super::{Access, Kind, ProcedureSpec, handler, schema_of};
use crate::api::EventIngestion;
use crate::api::error::{ApiError, InvalidInput};
use crate::api::types::GetFunnelInput;
use crate::domain::{Funnel, FunnelQuery, FunnelReport};
use crate::pipeline::validation::{collect_validator_errors, parse_input};

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.getFunnel",
    kind: Kind::Query,
    access: Access::Admin,
    summary: "How many visitors did each step of a funnel, in order, in a session or the range (ADMIN).",
    input_required: true,
    input_schema: schema_of::<GetFunnelInput>,
    output_schema: schema_of::<FunnelReport>,
    handler: handler!(|service, _, input| service.get_funnel(input)),
};

impl EventIngestion {
    /// `eventIngestion.getFunnel`: each step's visitors, conversion and drop-off.
    async fn get_funnel(&self, input: Option<Value>) -> Result<FunnelReport, ApiError> {
        let query = funnel_query(input, self.pipeline.now()).map_err(ApiError::validation)?;
        self.pipeline
            .store()
            .funnel(&query)
            .await
            .map_err(|error| super::report_unavailable(&error))
    }
}

/// Checks and defaults a `getFunnel` input received at `now`.
pub fn funnel_query(input: Option<Value>, now: DateTime<Utc>) -> Result<FunnelQuery, InvalidInput> {
    let input: GetFunnelInput = parse_input(input)?;
    let mut errors = InvalidInput::default();
    if let Err(derived) = validator::Validate::validate(&input) {
        collect_validator_errors(&derived, "", &mut errors);
    }
    check_filters(input.filters.as_ref(), &mut errors);
    let unnamed = input
        .steps
        .iter()
        .any(|step| step.event_type.is_none() && step.path.is_none());
    let bad_text = input
        .steps
        .iter()
        .flat_map(|step| [&step.event_type, &step.path])
        .flatten()
        .any(|text| text.is_empty() || text.len() > MAX_TEXT);
    if unnamed {
        errors.field("steps", "each step names an eventType, a path, or both");
    } else if bad_text {
        errors.field(
            "steps",
            "a step's eventType and path have 1 to 255 characters",
        );
    }
    let (from, to) = checked_range(input.from.as_deref(), input.to.as_deref(), now, errors)?;
    Ok(FunnelQuery {
        from,
        to,
        funnel: Funnel {
            steps: input.steps,
            within: input.within.unwrap_or_default(),
        },
        filters: input.filters.unwrap_or_default(),
    })
}
