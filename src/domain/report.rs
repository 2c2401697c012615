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

/// What one filter keeps: a value equal to a string, or a rule whose every part holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FilterValue {
    Equals(String),
    Rule(FilterRule),
}

/// By hand rather than `untagged`, so that a rule with a misspelt part is refused with the
/// part's name instead of "did not match any variant".
impl<'de> Deserialize<'de> for FilterValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FilterValue;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string or {is, isNot, contains}")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<FilterValue, E> {
                Ok(FilterValue::Equals(value.to_owned()))
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<FilterValue, M::Error> {
                FilterRule::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(FilterValue::Rule)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A filter's parts; all given parts must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterRule {
    /// The value is one of these.
    pub is: Option<Vec<String>>,
    /// The value is none of these; an event without the field is kept.
    pub is_not: Option<Vec<String>>,
    /// The value contains this text.
    pub contains: Option<String>,
}

impl FilterValue {
    /// Whether an event whose field is `value` (`None`: it has none) is kept.
    pub fn keeps(&self, value: Option<&str>) -> bool {
        match self {
            Self::Equals(wanted) => value == Some(wanted.as_str()),
            Self::Rule(rule) => {
                let is = rule
                    .is
                    .as_ref()
                    .is_none_or(|list| value.is_some_and(|value| list.iter().any(|v| v == value)));
                let is_not = rule
                    .is_not
                    .as_ref()
                    .is_none_or(|list| value.is_none_or(|value| list.iter().all(|v| v != value)));
                let contains = rule
                    .contains
                    .as_ref()
                    .is_none_or(|part| value.is_some_and(|value| value.contains(part.as_str())));
                is && is_not && contains
            }
        }
    }
}

/// Dimensions a query narrows to; every filter given must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsFilters {
    /// The page path, as in live analytics (`props.path`, else `props.page`, else the
    /// landing page's path).
    pub path: Option<FilterValue>,
    pub utm_source: Option<FilterValue>,
    pub referrer_host: Option<FilterValue>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<FilterValue>,
    pub device_type: Option<FilterValue>,
    pub event_type: Option<FilterValue>,
    pub browser_name: Option<FilterValue>,
}

/// The range a report is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Compare {
    /// The range of equal length just before.
    PreviousPeriod,
    /// The same range a year before.
    PreviousYear,
}

/// A conversion goal: events of a type, or page views of a path (`*` at the end: a prefix),
/// or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Goal {
    pub name: String,
    pub event_type: Option<String>,
    pub path: Option<String>,
}

impl Goal {
    /// Whether an event of `event_type` on `path` reaches this goal.
    pub fn reached_by(&self, event_type: &str, path: Option<&str>) -> bool {
        self.wants_type(event_type) && self.wants_path(path)
    }

    /// Whether the goal's event type, if it names one, is `event_type`.
    pub fn wants_type(&self, event_type: &str) -> bool {
        wants_type(self.event_type.as_deref(), event_type)
    }

    /// Whether the goal's path, if it names one, matches `path`.
    pub fn wants_path(&self, path: Option<&str>) -> bool {
        wants_path(self.path.as_deref(), path)
    }
}

/// Whether `event_type` is the `wanted` one, when one is wanted (goals, funnel steps).
pub(crate) fn wants_type(wanted: Option<&str>, event_type: &str) -> bool {
    wanted.is_none_or(|wanted| wanted == event_type)
}

/// Whether `path` is the `wanted` one, or starts with it when it ends in `*`, when one is
/// wanted (goals, funnel steps).
pub(crate) fn wants_path(wanted: Option<&str>, path: Option<&str>) -> bool {
    wanted.is_none_or(|wanted| {
        path.is_some_and(|path| match wanted.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == wanted,
        })
    })
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
    pub compare: Option<Compare>,
    pub goals: Vec<Goal>,
}

impl MetricsQuery {
    /// A plain query of `[from, to)` in buckets of `interval`, narrowed by `filters`: what a
    /// funnel or a retention table folds.
    pub fn over(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval: Interval,
        filters: MetricsFilters,
    ) -> Self {
        Self {
            from,
            to,
            interval,
            event_type: None,
            filters,
            limit: 1,
            compare: None,
            goals: Vec::new(),
        }
    }

    /// The query of the range this one is compared with, if it asks for one: the same
    /// filters, without goals or a comparison of its own.
    pub fn compared(&self) -> Option<Self> {
        let (from, to) = match self.compare? {
            Compare::PreviousPeriod => (self.from - (self.to - self.from), self.from),
            Compare::PreviousYear => (
                self.from.checked_sub_months(Months::new(12))?,
                self.to.checked_sub_months(Months::new(12))?,
            ),
        };
        Some(Self {
            from,
            to,
            compare: None,
            goals: Vec::new(),
            ..self.clone()
        })
    }

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

/// How many reached one goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GoalReport {
    pub name: String,
    pub events: u64,
    pub visitors: u64,
    /// The goal's visitors over `totals.visitors` (0 when there are none).
    pub conversion_rate: f64,
}

/// The figures of the range a report is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    #[schemars(with = "String")]
    pub from: DateTime<Utc>,
    #[schemars(with = "String")]
    pub to: DateTime<Utc>,
    pub totals: MetricsTotals,
    pub series: Vec<SeriesPoint>,
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
    /// The goals asked for, in their order; absent when none were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goals: Option<Vec<GoalReport>>,
    /// The compared range, when `compare` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
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
            compare: None,
            goals: Vec::new(),
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

    #[test]
    fn filter_rules_and_goals_match_as_documented() {
        let rule = |json: &str| serde_json::from_str::<FilterValue>(json).expect("filter");
        assert!(rule(r#""DE""#).keeps(Some("DE")));
        assert!(!rule(r#""DE""#).keeps(None));
        let not_de = rule(r#"{"isNot": ["DE"]}"#);
        assert!(not_de.keeps(None) && not_de.keeps(Some("FR")) && !not_de.keeps(Some("DE")));
        let both = rule(r#"{"is": ["/a", "/ab"], "contains": "b"}"#);
        assert!(both.keeps(Some("/ab")) && !both.keeps(Some("/a")) && !both.keeps(None));
        let error = serde_json::from_str::<FilterValue>(r#"{"isnt": ["DE"]}"#).expect_err("typo");
        assert!(error.to_string().contains("isnt"), "{error}");

        let goal = |event_type: Option<&str>, path: Option<&str>| Goal {
            name: "g".into(),
            event_type: event_type.map(Into::into),
            path: path.map(Into::into),
        };
        assert!(goal(None, Some("/docs*")).reached_by("page_viewed", Some("/docs/api")));
        assert!(!goal(None, Some("/docs*")).reached_by("page_viewed", None));
        assert!(!goal(None, Some("/docs")).reached_by("page_viewed", Some("/docs/api")));
        assert!(goal(Some("signup"), None).reached_by("signup", None));
        assert!(!goal(Some("signup"), Some("/")).reached_by("signup", Some("/x")));
    }

    #[test]
    fn a_comparison_is_the_period_before_or_the_year_before() {
        let mut query = query(
            "2026-03-01T00:00:00Z",
            "2026-03-08T00:00:00Z",
            Interval::Day,
        );
        assert_eq!(query.compared(), None);
        query.compare = Some(Compare::PreviousPeriod);
        let before = query.compared().expect("compared");
        assert_eq!(
            (before.from, before.to),
            (at("2026-02-22T00:00:00Z"), query.from)
        );
        assert_eq!(
            (before.compare, before.filters),
            (None, query.filters.clone())
        );
        query.compare = Some(Compare::PreviousYear);
        let year = query.compared().expect("compared");
        assert_eq!(
            (year.from, year.to),
            (at("2025-03-01T00:00:00Z"), at("2025-03-08T00:00:00Z"))
        );
    }
}
