//! `eventIngestion.forceFlush`: write everything buffered now and report it.

use serde_json::Value;

use super::{Access, Kind, ProcedureSpec, expect_no_input, handler, no_input, schema_of};
use crate::api::EventIngestion;
use crate::api::error::ApiError;
use crate::api::types::ForceFlushOutput;

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.forceFlush",
    kind: Kind::Mutation,
    access: Access::Admin,
    summary: "Write everything buffered now and report it (ADMIN).",
    input_required: false,
    input_schema: no_input,
    output_schema: schema_of::<ForceFlushOutput>,
    handler: handler!(|service, _, input| service.force_flush(input)),
};

impl EventIngestion {
    /// `eventIngestion.forceFlush`: write everything buffered now.
    async fn force_flush(&self, input: Option<Value>) -> Result<ForceFlushOutput, ApiError> {
        expect_no_input(input)?;
        let report = self.pipeline.force_flush().await?;
        let message = if report.flushed == 0 {
            "Buffer was empty; nothing to flush".to_owned()
        } else {
            format!(
                "Flushed {} events ({} newly persisted)",
                report.flushed, report.persisted
            )
        };
        Ok(ForceFlushOutput {
            flushed: report.remaining == 0,
            message,
            persisted: report.persisted as u64,
        })
    }
}
