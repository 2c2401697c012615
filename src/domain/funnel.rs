//! `eventIngestion.getFunnel` (docs/live-and-metrics.md "Funnels"): of the visitors who did
//! the first step, how many then did the second, the third, …, in time order, inside one
//! session or anywhere in the range.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::report::{self, Interval, MetricsFilters, MetricsQuery};

/// One step: events of a type, or page views of a path (`*` at the end: a prefix), or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunnelStep {
    pub event_type: Option<String>,
    pub path: Option<String>,
}

impl FunnelStep {
    /// Whether the step's event type, if it names one, is `event_type`.
    pub fn wants_type(&self, event_type: &str) -> bool {
        report::wants_type(self.event_type.as_deref(), event_type)
    }

    /// Whether the step's path, if it names one, matches `path`.
    pub fn wants_path(&self, path: Option<&str>) -> bool {
        report::wants_path(self.path.as_deref(), path)
    }
}

/// Where the steps must follow each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Within {
    /// Inside one session.
    #[default]
    Session,
    /// Anywhere in the range, across the visitor's sessions.
    Visitor,
}

/// The steps and where they must follow each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
    pub within: Within,
}

/// A checked funnel query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub funnel: Funnel,
    pub filters: MetricsFilters,
}

impl FunnelQuery {
    /// The range as a report query (one bucket per day; the funnel needs none).
    pub fn as_metrics_query(&self) -> MetricsQuery {
        MetricsQuery::over(self.from, self.to, Interval::Day, self.filters.clone())
    }
}

/// How many reached one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// From 1.
    pub index: usize,
    pub event_type: Option<String>,
    pub path: Option<String>,
    pub visitors: u64,
    /// This step's visitors over the first step's (0 when nobody did the first).
    pub conversion_rate: f64,
    /// The previous step's visitors less this one's (0 for the first step).
    pub drop_off: u64,
}

/// The answer of `getFunnel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelReport {
    #[schemars(with = "String")]
    pub from: DateTime<Utc>,
    #[schemars(with = "String")]
    pub to: DateTime<Utc>,
    pub steps: Vec<StepReport>,
    /// The last step's visitors over the first step's.
    pub conversion_rate: f64,
}
