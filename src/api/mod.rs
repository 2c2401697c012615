//! The `eventIngestion` procedures as plain async Rust: the one implementation that JSON-RPC,
//! tRPC HTTP and library callers all go through. Transports only decode the request into a
//! [`Procedure`], a [`RequestContext`] and an optional JSON input, and encode the result.

pub mod error;
pub mod live;
pub mod procedures;
pub mod rate_limit;
pub mod schema;
pub mod types;

use std::sync::Arc;
use std::time::Instant;

use metrics::Histogram;
use serde_json::Value;

use crate::domain::RequestContext;
use crate::identity::Authenticator;
use crate::pipeline::{Pipeline, PipelineError};
use error::{ApiError, ErrorCode};
use procedures::{Access, Kind, ProcedureSpec};
use rate_limit::RateLimits;

pub use procedures::MAX_BATCH_EVENTS;

/// One of the procedures Sluice serves: a handle on its declaration in [`procedures`].
#[derive(Clone, Copy)]
pub struct Procedure(&'static ProcedureSpec);

impl Procedure {
    /// Every procedure, in the order the schema lists them.
    pub fn all() -> impl Iterator<Item = Self> {
        procedures::ALL.iter().copied().map(Self)
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::all().find(|procedure| procedure.path() == path)
    }

    /// The method name (JSON-RPC) and path (tRPC).
    pub fn path(self) -> &'static str {
        self.0.path
    }

    /// Queries are read-only (tRPC serves them over GET); everything else is a mutation.
    pub fn is_query(self) -> bool {
        self.0.kind == Kind::Query
    }

    /// The whole declaration: access, summary, schemas, handler.
    pub fn spec(self) -> &'static ProcedureSpec {
        self.0
    }
}

impl std::fmt::Debug for Procedure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

impl PartialEq for Procedure {
    fn eq(&self, other: &Self) -> bool {
        self.path() == other.path()
    }
}

impl Eq for Procedure {}

/// The procedure implementations over one pipeline.
pub struct EventIngestion {
    pipeline: Arc<Pipeline>,
    auth: Authenticator,
    rate_limits: RateLimits,
    live_viewers: live::LiveViewers,
    /// How long each procedure's calls take, in [`procedures::ALL`]'s order.
    durations: Vec<Histogram>,
}

impl EventIngestion {
    pub fn new(
        pipeline: Arc<Pipeline>,
        auth: Authenticator,
        rate_limits: RateLimits,
        live: live::LiveSettings,
    ) -> Self {
        let durations = Procedure::all()
            .map(|procedure| {
                pipeline.metrics().histogram(
                    "sluice_procedure_duration_seconds",
                    "Duration of procedure calls, from the decoded request to the result.",
                    &[("procedure", procedure.path())],
                )
            })
            .collect();
        Self {
            pipeline,
            auth,
            rate_limits,
            live_viewers: live::LiveViewers::new(live),
            durations,
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
        let started = Instant::now();
        let allowed = match procedure.spec().access {
            Access::Admin => self.auth.require_admin(context).map(drop),
            Access::Anyone => Ok(()),
        };
        let result = match allowed {
            Ok(()) => (procedure.spec().handler)(self, context, input).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = &result {
            error.log(procedure.path());
        }
        if let Some(duration) = Procedure::all()
            .position(|listed| listed == procedure)
            .and_then(|index| self.durations.get(index))
        {
            duration.record(started.elapsed().as_secs_f64());
        }
        result
    }
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
            // The flusher logged the storage error with its text; the caller learns what it
            // can do.
            PipelineError::FlushFailed(failure) => ApiError {
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
            },
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
