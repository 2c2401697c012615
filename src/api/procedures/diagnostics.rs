//! `eventIngestion.diagnostics`: the database and the pipeline, checked on demand.

use serde_json::Value;

use super::{Access, Kind, ProcedureSpec, expect_no_input, handler, no_input, schema_of};
use crate::api::EventIngestion;
use crate::api::error::ApiError;
use crate::api::types::DiagnosticsReport;

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.diagnostics",
    kind: Kind::Query,
    access: Access::Admin,
    summary: "Database reachability, latency, tables, migrations and row counts, and the pipeline (ADMIN).",
    input_required: false,
    input_schema: no_input,
    output_schema: schema_of::<DiagnosticsReport>,
    handler: handler!(|service, _, input| service.diagnostics(input)),
};

impl EventIngestion {
    /// `eventIngestion.diagnostics`: the database (reachability, latency, tables,
    /// migrations, row counts) and the pipeline (buffer, counters, health, pool).
    async fn diagnostics(&self, input: Option<Value>) -> Result<DiagnosticsReport, ApiError> {
        expect_no_input(input)?;
        let database = crate::diagnostics::diagnose(self.pipeline.store().as_ref()).await;
        Ok(DiagnosticsReport {
            database,
            pipeline: self.pipeline.stats(),
        })
    }
}
