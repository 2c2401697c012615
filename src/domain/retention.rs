//! `eventIngestion.getRetention` (docs/live-and-metrics.md "Retention cohorts"): do visitors
//! come back? Visitors grouped by the period of their first event in range, and how many of
//! each group had an event in each later period.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::report::{Interval, MetricsFilters, MetricsQuery};

/// The length of a retention period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// UTC days.
    Day,
    /// Weeks from Monday 00:00 UTC.
    #[default]
    Week,
}

/// A checked retention query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: Period,
    pub filters: MetricsFilters,
}

impl RetentionQuery {
    /// The range as a report query whose buckets are the periods.
    pub fn as_metrics_query(&self) -> MetricsQuery {
        let interval = match self.period {
            Period::Day => Interval::Day,
            Period::Week => Interval::Week,
        };
        MetricsQuery::over(self.from, self.to, interval, self.filters.clone())
    }
}

/// The visitors who first came in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cohort {
    /// The period's start, RFC 3339 UTC.
    #[schemars(with = "String")]
    pub start: DateTime<Utc>,
    pub visitors: u64,
    /// `retained[i]`: the cohort's visitors with an event in the `i`-th period from its own
    /// (so `retained[0] = visitors`), up to the last period of the range.
    pub retained: Vec<u64>,
}

/// The answer of `getRetention`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    #[schemars(with = "String")]
    pub from: DateTime<Utc>,
    #[schemars(with = "String")]
    pub to: DateTime<Utc>,
    pub period: Period,
    /// One per period of the range, oldest first, empty ones included.
    pub cohorts: Vec<Cohort>,
}
