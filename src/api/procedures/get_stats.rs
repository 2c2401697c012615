//! `eventIngestion.getStats`: buffer, counters, rates, health and pool.

use serde_json::Value;

use super::{Access, Kind, ProcedureSpec, expect_no_input, handler, no_input, schema_of};
use crate::api::EventIngestion;
use crate::api::error::ApiError;
use crate::pipeline::stats::StatsReport;

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.getStats",
    kind: Kind::Query,
    access: Access::Admin,
    summary: "Buffer, counters, rates, health and pool (ADMIN).",
    input_required: false,
    input_schema: no_input,
    output_schema: schema_of::<StatsReport>,
    handler: handler!(|service, _, input| service.get_stats(input)),
};

impl EventIngestion {
    /// `eventIngestion.getStats`: buffer, counters, rates, health and pool.
    async fn get_stats(&self, input: Option<Value>) -> Result<StatsReport, ApiError> {
        expect_no_input(input)?;
        Ok(self.pipeline.stats())
    }
}
