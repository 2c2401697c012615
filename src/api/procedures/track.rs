//! `eventIngestion.track`: one event, validated, stamped and buffered.

use serde_json::Value;

use super::{Access, Kind, ProcedureSpec, handler, rate_limit_key, schema_of, session_of};
use crate::api::EventIngestion;
use crate::api::error::ApiError;
use crate::api::types::{TrackEventInput, TrackEventOutput};
use crate::domain::RequestContext;

/// Anyone may track; a JWT, when sent, names the user.
pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.track",
    kind: Kind::Mutation,
    access: Access::Anyone,
    summary: "Track one event (anyone; JWT optional).",
    input_required: true,
    input_schema: schema_of::<TrackEventInput>,
    output_schema: schema_of::<TrackEventOutput>,
    handler: handler!(|service, context, input| service.track(context, input)),
};

impl EventIngestion {
    /// `eventIngestion.track`: validate, stamp and buffer one event.
    pub async fn track(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<TrackEventOutput, ApiError> {
        let caller = self.auth.authenticate(context)?;
        let session = input.as_ref().and_then(session_of);
        self.rate_limits
            .check(&rate_limit_key(&caller, session, context), 1)?;
        self.pipeline.wait_for_room().await?;
        let valid = self
            .pipeline
            .validate(input, self.pipeline.now(), &caller)
            .map_err(ApiError::validation)?;
        Ok(self.pipeline.accept(valid, &caller, context).await?)
    }
}
