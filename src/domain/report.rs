//! Admin metrics (docs/live-and-metrics.md "Metrics and the dashboard"): what `eventIngestion.getMetrics` is asked, once its
//! input is checked, and what it answers. Storage computes a [`MetricsReport`] for a
//! [`MetricsQuery`]; the procedure only validates and defaults the input.

use chrono::{DateTime, Datelike, Duration, DurationRound, Months, NaiveDate, NaiveTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The width of one bucket of the series. Every bucket starts on a UTC hour, so an hour of
/// events always falls in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Hour,
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// A calendar month, UTC.
    Month,
}

impl Interval {
    /// The start of the bucket holding `at` (UTC).
    pub fn bucket_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let midnight = |date: NaiveDate| date.and_time(NaiveTime::MIN).and_utc();
        match self {
            // Truncating a UTC time to whole hours or days cannot overflow.
            Self::Hour => at.duration_trunc(Duration::hours(1)).unwrap_or(at),
            Self::Day => midnight(at.date_naive()),
            Self::Week => {
                let date = at.date_naive();
                midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday())))
            }
            Self::Month => midnight(at.date_naive().with_day(1).unwrap_or(at.date_naive())),
        }
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Hour => start + Duration::hours(1),
            Self::Day => start + Duration::days(1),
            Self::Week => start + Duration::weeks(1),
            Self::Month => start
                .checked_add_months(Months::new(1))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// Dimensions a query narrows to; every filter given must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsFilters {
    /// The page path, as in live analytics (`props.path`, else `props.page`, else the
    /// landing page's path).
    pub path: Option<String>,
    pub utm_source: Option<String>,
    pub referrer_host: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub device_type: Option<String>,
}

/// A checked metrics query: `from` inclusive, `to` exclusive, at most 366 days apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
    pub event_type: Option<String>,
    pub filters: MetricsFilters,
    /// Rows per top list.
    pub limit: usize,
}

impl MetricsQuery {
    /// The start of every bucket of the series: from the bucket holding `from` up to the one
    /// holding the last instant before `to`.
    pub fn buckets(&self) -> Vec<DateTime<Utc>> {
        let last = self.interval.bucket_of(self.to - Duration::nanoseconds(1));
        let mut buckets = Vec::new();
        let mut at = self.interval.bucket_of(self.from);
        while at <= last {
            buckets.push(at);
            at = self.interval.next(at);
        }
        buckets
    }
}

/// What the range held.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsTotals {
    pub events: u64,
    /// `page_viewed` events.
    pub pageviews: u64,
    /// Distinct visitors: a signed-in user, else a session (as live analytics counts them).
    pub visitors: u64,
    /// Distinct session ids.
    pub sessions: u64,
    /// Events in range and filters from bots and tools, left out of every other figure
    /// (docs/live-and-metrics.md, who counts as a visitor). Counted from this version on:
    /// bots stored before are not in the reports' segments.
    pub bot_events: u64,
    /// Share of the sessions whose only event in range is a page view (0 without sessions).
    pub bounce_rate: f64,
    /// Page views per session (0 without sessions).
    pub views_per_visit: f64,
    /// Mean over sessions of the time from their first to their last event in range; a
    /// session of one event counts 0.
    pub visit_duration_seconds: f64,
}

/// One bucket of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// The bucket's start, RFC 3339 UTC.
    #[schemars(with = "String")]
    pub t: DateTime<Utc>,
    pub events: u64,
    pub visitors: u64,
}

/// One row of a top list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopItem {
    pub value: String,
    pub events: u64,
    pub visitors: u64,
}

/// One row of the entry or exit pages: sessions that began (or ended) there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionPage {
    pub value: String,
    pub sessions: u64,
    pub visitors: u64,
}

/// The answer of `getMetrics`. Every figure is exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReport {
    #[schemars(with = "String")]
    pub from: DateTime<Utc>,
    #[schemars(with = "String")]
    pub to: DateTime<Utc>,
    pub interval: Interval,
    pub totals: MetricsTotals,
    /// Every bucket of the range, zeros included, oldest first.
    pub series: Vec<SeriesPoint>,
    pub top_pages: Vec<TopItem>,
    pub top_referrers: Vec<TopItem>,
    pub top_utm_sources: Vec<TopItem>,
    pub top_countries: Vec<TopItem>,
    pub devices: Vec<TopItem>,
    pub browsers: Vec<TopItem>,
    pub event_types: Vec<TopItem>,
    /// Each session's first page view in range, by path; most sessions first.
    pub entry_pages: Vec<SessionPage>,
    /// Each session's last page view in range, by path; most sessions first.
    pub exit_pages: Vec<SessionPage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    fn query(from: &str, to: &str, interval: Interval) -> MetricsQuery {
        MetricsQuery {
            from: at(from),
            to: at(to),
            interval,
            event_type: None,
            filters: MetricsFilters::default(),
            limit: 10,
        }
    }

    #[test]
    fn buckets_run_from_the_one_holding_from_to_the_one_before_to() {
        let hours = query(
            "2026-11-01T10:30:00Z",
            "2026-11-01T13:00:00Z",
            Interval::Hour,
        );
        assert_eq!(
            hours.buckets(),
            vec![
                at("2026-11-01T10:00:00Z"),
                at("2026-11-01T11:00:00Z"),
                at("2026-11-01T12:00:00Z")
            ]
        );
        let days = query(
            "2026-11-01T10:30:00Z",
            "2026-11-03T00:00:01Z",
            Interval::Day,
        );
        assert_eq!(
            days.buckets(),
            vec![
                at("2026-11-01T00:00:00Z"),
                at("2026-11-02T00:00:00Z"),
                at("2026-11-03T00:00:00Z")
            ]
        );
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-11-01 is a Sunday.
        let weeks = query(
            "2026-11-01T10:30:00Z",
            "2026-11-17T00:00:00Z",
            Interval::Week,
        );
        assert_eq!(
            weeks.buckets(),
            vec![
                at("2026-10-26T00:00:00Z"),
                at("2026-11-02T00:00:00Z"),
                at("2026-11-09T00:00:00Z"),
                at("2026-11-16T00:00:00Z")
            ]
        );
        let months = query(
            "2026-01-31T23:00:00Z",
            "2026-04-01T00:00:00Z",
            Interval::Month,
        );
        assert_eq!(
            months.buckets(),
            vec![
                at("2026-01-01T00:00:00Z"),
                at("2026-02-01T00:00:00Z"),
                at("2026-03-01T00:00:00Z")
            ]
        );
    }
}
