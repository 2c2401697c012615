//! The `eventIngestion` procedures as plain async Rust: the one implementation that JSON-RPC,
//! tRPC HTTP and library callers all go through. Transports only decode the request into a
//! [`Procedure`], a [`RequestContext`] and an optional JSON input, and encode the result.

pub mod error;
pub mod rate_limit;
pub mod schema;
pub mod types;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::domain::ConsentSubject;
use crate::domain::{Caller, RequestContext};
use crate::identity::Authenticator;
use crate::pipeline::validation::parse_input;
use crate::pipeline::{Pipeline, PipelineError};
use error::{ApiError, ErrorCode, ZodError};
use rate_limit::RateLimits;
use types::{
    BatchItemResult, ForceFlushOutput, ItemError, SetConsentInput, SetConsentOutput, SettledStatus,
    TrackBatchInput, TrackBatchOutput, TrackEventOutput,
};

/// Largest number of events one trackBatch call may carry.
pub const MAX_BATCH_EVENTS: usize = 50;

/// The procedures Sluice serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Procedure {
    Track,
    TrackBatch,
    GetStats,
    ForceFlush,
    SetConsent,
    Diagnostics,
}

impl Procedure {
    pub const ALL: [Self; 6] = [
        Self::Track,
        Self::TrackBatch,
        Self::GetStats,
        Self::ForceFlush,
        Self::SetConsent,
        Self::Diagnostics,
    ];

    /// The method name (JSON-RPC) and path (tRPC).
    pub fn path(self) -> &'static str {
        match self {
            Self::Track => "eventIngestion.track",
            Self::TrackBatch => "eventIngestion.trackBatch",
            Self::GetStats => "eventIngestion.getStats",
            Self::ForceFlush => "eventIngestion.forceFlush",
            Self::SetConsent => "eventIngestion.setConsent",
            Self::Diagnostics => "eventIngestion.diagnostics",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|procedure| procedure.path() == path)
    }

    /// Queries are read-only (tRPC serves them over GET); everything else is a mutation.
    pub fn is_query(self) -> bool {
        matches!(self, Self::GetStats | Self::Diagnostics)
    }
}

/// The procedure implementations over one pipeline.
pub struct EventIngestion {
    pipeline: Arc<Pipeline>,
    auth: Authenticator,
    rate_limits: RateLimits,
}

impl EventIngestion {
    pub fn new(pipeline: Arc<Pipeline>, auth: Authenticator, rate_limits: RateLimits) -> Self {
        Self {
            pipeline,
            auth,
            rate_limits,
        }
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Runs `procedure` and returns its JSON output; failures are logged once here.
    pub async fn call(
        &self,
        procedure: Procedure,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<Value, ApiError> {
        let result = match procedure {
            Procedure::Track => to_json(self.track(context, input).await),
            Procedure::TrackBatch => to_json(self.track_batch(context, input).await),
            Procedure::GetStats => to_json(self.get_stats(context, input).await),
            Procedure::ForceFlush => to_json(self.force_flush(context, input).await),
            Procedure::SetConsent => to_json(self.set_consent(context, input).await),
            Procedure::Diagnostics => to_json(self.diagnostics(context, input).await),
        };
        if let Err(error) = &result {
            error.log(procedure.path());
        }
        result
    }

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
            .validate(input, self.pipeline.now())
            .map_err(ApiError::validation)?;
        Ok(self.pipeline.accept(valid, &caller, context).await?)
    }

    /// `eventIngestion.trackBatch`: each item is validated and accepted on its own.
    pub async fn track_batch(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<TrackBatchOutput, ApiError> {
        let caller = self.auth.authenticate(context)?;
        let batch: TrackBatchInput = parse_input(input).map_err(ApiError::validation)?;
        if !(1..=MAX_BATCH_EVENTS).contains(&batch.events.len()) {
            let mut errors = ZodError::default();
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
            let validated = self.pipeline.validate(Some(raw), received_at);
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
                    error: Some(ItemError {
                        code: error.code.json_rpc_code(),
                        data: error.data(Procedure::TrackBatch.path()),
                        message: error.message,
                    }),
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

    /// `eventIngestion.getStats` (admin): buffer, counters, rates, health and pool.
    pub async fn get_stats(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<crate::pipeline::stats::StatsReport, ApiError> {
        self.auth.require_admin(context)?;
        expect_no_input(input)?;
        Ok(self.pipeline.stats())
    }

    /// `eventIngestion.diagnostics` (admin): the database (reachability, latency, tables,
    /// migrations, row counts) and the pipeline (buffer, counters, health, pool).
    pub async fn diagnostics(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<types::DiagnosticsReport, ApiError> {
        self.auth.require_admin(context)?;
        expect_no_input(input)?;
        let database = crate::diagnostics::diagnose(self.pipeline.store().as_ref()).await;
        Ok(types::DiagnosticsReport {
            database,
            pipeline: self.pipeline.stats(),
        })
    }

    /// `eventIngestion.forceFlush` (admin): write everything buffered now.
    pub async fn force_flush(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<ForceFlushOutput, ApiError> {
        self.auth.require_admin(context)?;
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

impl EventIngestion {
    /// `eventIngestion.setConsent`: record an opt-in or opt-out for the caller's session and,
    /// when signed in, for the user.
    pub async fn set_consent(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<SetConsentOutput, ApiError> {
        let caller = self.auth.authenticate(context)?;
        let input: SetConsentInput = parse_input(input).map_err(ApiError::validation)?;
        if let Err(errors) = validator::Validate::validate(&input) {
            let mut zod = ZodError::default();
            for field in errors.field_errors().keys() {
                zod.field(
                    if *field == "session_id" {
                        "sessionId"
                    } else {
                        field
                    },
                    "Invalid uuid",
                );
            }
            return Err(ApiError::validation(zod));
        }
        let mut subjects = Vec::new();
        if let Some(user) = caller.user_id() {
            subjects.push(ConsentSubject::User(user.to_owned()));
        }
        if let Some(session) = input.session_id {
            subjects.push(ConsentSubject::Session(session.to_ascii_lowercase()));
        }
        if subjects.is_empty() {
            let mut errors = ZodError::default();
            errors.field("sessionId", "Required when not signed in");
            return Err(ApiError::validation(errors));
        }
        self.pipeline.set_consent(&subjects, input.granted).await?;
        Ok(SetConsentOutput {
            granted: input.granted,
            subjects,
        })
    }
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
            let mut errors = ZodError::default();
            let keys: Vec<String> = fields.keys().map(|key| format!("'{key}'")).collect();
            errors.form(format!(
                "Unrecognized key(s) in object: {}",
                keys.join(", ")
            ));
            Err(ApiError::validation(errors))
        }
        Some(_) => {
            let mut errors = ZodError::default();
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

/// The one mapping from pipeline failures to what callers see.
impl From<PipelineError> for ApiError {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::BufferFull(full) => ApiError {
                logged_at_source: true,
                ..ApiError::unavailable(
                    format!("{full}; the event was not accepted, retry later"),
                    1,
                )
            },
            // The storage error's text is for the logs; the caller learns what it can do.
            PipelineError::FlushFailed(failure) => {
                tracing::warn!(error = %failure, "forceFlush failed");
                ApiError {
                    logged_at_source: true,
                    ..ApiError::unavailable(
                        format!(
                            "Flush failed ({}): {} events written before the failure, {} \
                             still buffered and retried by the flusher",
                            failure.source.tag(),
                            failure.persisted,
                            failure.remaining
                        ),
                        1,
                    )
                }
            }
            PipelineError::KeyCheckFailed(error) => ApiError::unavailable(
                format!(
                    "Could not check the idempotency key ({}); retry with the same key",
                    error.tag()
                ),
                1,
            ),
            PipelineError::ConsentNotSaved(error) => ApiError::unavailable(
                format!(
                    "Could not record the consent decision ({}); retry",
                    error.tag()
                ),
                1,
            ),
            PipelineError::NotYetDurable(waited) => ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "The event was accepted but not committed within {} s; it stays buffered \
                     and will be written (retrying with the same idempotencyKey is safe)",
                    waited.as_secs()
                ),
            ),
            PipelineError::Refused(_) => ApiError::new(
                ErrorCode::InternalServerError,
                "The database refused this event; it was set aside in the dead-letter table",
            ),
            PipelineError::UnknownAckMode(value) => ApiError::bad_request(format!(
                "x-sluice-ack must be buffered or durable, not {value:?}"
            )),
            PipelineError::ShuttingDown => {
                ApiError::unavailable("The server is shutting down; retry on another node", 1)
            }
        }
    }
}

#[cfg(test)]
mod tests;
