//! The wire types of the `eventIngestion` procedures (camelCase JSON), with their derive rules.
//!
//! Inputs are validated in two steps: these derive rules (shape and formats), then the
//! configurable business rules in [`crate::pipeline::validation`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use crate::domain::rules::uuid;
pub use crate::domain::{
    Attribution, EntityType, EventSource, TrackEventInput, TrackEventOutput, TrackStatus,
};

/// The input of `eventIngestion.trackBatch`.
//
// Items stay raw JSON here so that each one is validated on its own and a bad item cannot
// fail the others; the published schema describes them as TrackEventInput.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackBatchInput {
    #[schemars(with = "Vec<TrackEventInput>", length(min = 1, max = 50))]
    pub events: Vec<Value>,
}

/// Whether one batch item was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SettledStatus {
    Fulfilled,
    Rejected,
}

/// The error of a rejected batch item: the same shape as a procedure error.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ItemError {
    pub code: i32,
    pub message: String,
    pub data: Value,
}

/// The outcome of one batch item, in input order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct BatchItemResult {
    pub index: usize,
    pub status: SettledStatus,
    pub data: Option<TrackEventOutput>,
    pub error: Option<ItemError>,
}

/// The output of `eventIngestion.trackBatch`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct TrackBatchOutput {
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub results: Vec<BatchItemResult>,
}

/// The input of `eventIngestion.setConsent`: the caller's session (and, when signed in, the
/// user) opts in or out of analytics.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Validate, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetConsentInput {
    #[validate(custom(function = "uuid"))]
    #[schemars(extend("format" = "uuid"))]
    pub session_id: Option<String>,
    /// true: analytics allowed; false: opted out, later events are not stored.
    pub granted: bool,
}

/// The output of `eventIngestion.setConsent`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SetConsentOutput {
    pub granted: bool,
    /// Whom the decision was recorded for.
    pub subjects: Vec<crate::domain::ConsentSubject>,
}

/// The output of `eventIngestion.diagnostics`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DiagnosticsReport {
    pub database: crate::diagnostics::DatabaseDiagnosis,
    /// Buffer, counters, rates, health and pool, as getStats reports them.
    pub pipeline: crate::pipeline::stats::StatsReport,
}

/// The output of `eventIngestion.forceFlush`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ForceFlushOutput {
    /// True when the buffer was emptied into the database.
    pub flushed: bool,
    pub message: String,
    /// Events written by this flush.
    pub persisted: u64,
}

/// The input of `eventIngestion.getFunnel` (docs/live-and-metrics.md "Funnels").
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetFunnelInput {
    /// RFC 3339, inclusive; default `to` minus 7 days.
    pub from: Option<String>,
    /// RFC 3339, exclusive; default now. At most 366 days after `from`.
    pub to: Option<String>,
    /// 2 to 8 steps, each naming an event type, a path (`*` at the end: a prefix) or both.
    #[validate(length(min = 2, max = 8))]
    #[schemars(length(min = 2, max = 8))]
    pub steps: Vec<crate::domain::FunnelStep>,
    /// Default `session`.
    pub within: Option<crate::domain::Within>,
    pub filters: Option<crate::domain::MetricsFilters>,
}

/// The input of `eventIngestion.getRetention` (docs/live-and-metrics.md "Retention cohorts");
/// every field optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetRetentionInput {
    /// RFC 3339, inclusive; default `to` minus 7 days.
    pub from: Option<String>,
    /// RFC 3339, exclusive; default now. At most 366 days after `from`.
    pub to: Option<String>,
    /// Default `week`.
    pub period: Option<crate::domain::Period>,
    pub filters: Option<crate::domain::MetricsFilters>,
}

/// The input of `eventIngestion.getMetrics` (docs/live-and-metrics.md "Metrics and the dashboard"); every field optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetMetricsInput {
    /// RFC 3339, inclusive; default `to` minus 7 days.
    pub from: Option<String>,
    /// RFC 3339, exclusive; default now. At most 366 days after `from`.
    pub to: Option<String>,
    /// Default: `hour` for ranges up to 2 days, else `day`.
    pub interval: Option<crate::domain::Interval>,
    #[validate(length(min = 1, max = 100))]
    pub event_type: Option<String>,
    pub filters: Option<crate::domain::MetricsFilters>,
    /// Rows per top list, 1..=100 (default 10).
    #[validate(range(min = 1, max = 100))]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// Also report the range of equal length just before, or a year before.
    pub compare: Option<crate::domain::Compare>,
    /// Up to 20 goals, each naming an event type, a path (`*` at the end: a prefix) or both.
    #[validate(length(max = 20))]
    #[schemars(length(max = 20))]
    pub goals: Option<Vec<crate::domain::Goal>>,
}
