//! `eventIngestion.trackBatch`: 1 to 50 events, each accepted or rejected on its own.

use serde_json::Value;

use super::{Access, Kind, ProcedureSpec, handler, rate_limit_key, schema_of, session_of};
use crate::api::EventIngestion;
use crate::api::error::ApiError;
use crate::api::error::InvalidInput;
use crate::api::types::{BatchItemResult, SettledStatus, TrackBatchInput, TrackBatchOutput};
use crate::domain::RequestContext;
use crate::pipeline::validation::parse_input;

/// Largest number of events one trackBatch call may carry.
pub const MAX_BATCH_EVENTS: usize = 50;

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.trackBatch",
    kind: Kind::Mutation,
    access: Access::Anyone,
    summary: "Track 1 to 50 events; each item settles on its own.",
    input_required: true,
    input_schema: schema_of::<TrackBatchInput>,
    output_schema: schema_of::<TrackBatchOutput>,
    handler: handler!(|service, context, input| service.track_batch(context, input)),
};

impl EventIngestion {
    /// `eventIngestion.trackBatch`: each item is validated and accepted on its own.
    pub async fn track_batch(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<TrackBatchOutput, ApiError> {
        let caller = self.auth.authenticate(context)?;
        let batch: TrackBatchInput = parse_input(input).map_err(ApiError::validation)?;
        if !(1..=MAX_BATCH_EVENTS).contains(&batch.events.len()) {
            let mut errors = InvalidInput::default();
            errors.field(
                "events",
                format!(
                    "must contain 1 to {MAX_BATCH_EVENTS} events (got {})",
                    batch.events.len()
                ),
            );
            return Err(ApiError::validation(errors));
        }
        let session = batch.events.first().and_then(session_of);
        self.rate_limits.check(
            &rate_limit_key(&caller, session, context),
            batch.events.len(),
        )?;
        // Nothing fits: the whole batch is refused at once, as a rate limit refuses it, with
        // a small reply rather than fifty item errors.
        self.pipeline.wait_for_room().await?;
        let received_at = self.pipeline.now();
        // Items are accepted concurrently, so that in durable mode they share one commit;
        // each one is started in order, so index 0 wins a duplicate within the batch.
        let outcomes = futures_util::future::join_all(batch.events.into_iter().map(|raw| {
            let validated = self.pipeline.validate(Some(raw), received_at, &caller);
            let caller = &caller;
            async move {
                match validated {
                    Ok(valid) => self
                        .pipeline
                        .accept(valid, caller, context)
                        .await
                        .map_err(ApiError::from),
                    Err(errors) => Err(ApiError::validation(errors)),
                }
            }
        }))
        .await;
        let results: Vec<BatchItemResult> = outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| match outcome {
                Ok(data) => BatchItemResult {
                    index,
                    status: SettledStatus::Fulfilled,
                    data: Some(data),
                    error: None,
                },
                Err(error) => BatchItemResult {
                    index,
                    status: SettledStatus::Rejected,
                    data: None,
                    error: Some(error.wire(PROCEDURE.path)),
                },
            })
            .collect();
        let successful = results
            .iter()
            .filter(|result| result.status == SettledStatus::Fulfilled)
            .count();
        Ok(TrackBatchOutput {
            total: results.len(),
            successful,
            failed: results.len() - successful,
            results,
        })
    }
}
