//! `eventIngestion.getMetrics`: what happened in a time range, from the stored events.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{Access, Kind, ProcedureSpec, handler, schema_of};
use crate::api::EventIngestion;
use crate::api::error::{ApiError, InvalidInput};
use crate::api::types::GetMetricsInput;
use crate::domain::{FilterValue, Goal, Interval, MetricsFilters, MetricsQuery, MetricsReport};
use crate::pipeline::validation::{collect_validator_errors, parse_input};

/// The range when none is given.
pub const DEFAULT_RANGE: Duration = Duration::days(7);
/// The longest range a query may span.
pub const MAX_RANGE_DAYS: i64 = 366;
/// Ranges up to this long get hourly buckets by default, longer ones daily.
const HOURLY_UP_TO: Duration = Duration::days(2);
/// Rows per top list by default.
pub const DEFAULT_LIMIT: usize = 10;

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.getMetrics",
    kind: Kind::Query,
    access: Access::Admin,
    summary: "Totals, a time series and top lists of the stored events in a range (ADMIN).",
    input_required: false,
    input_schema: schema_of::<GetMetricsInput>,
    output_schema: schema_of::<MetricsReport>,
    handler: handler!(|service, _, input| service.get_metrics(input)),
};

impl EventIngestion {
    /// `eventIngestion.getMetrics`: totals, series and top lists for a range.
    async fn get_metrics(&self, input: Option<Value>) -> Result<MetricsReport, ApiError> {
        let query = metrics_query(input, self.pipeline.now()).map_err(ApiError::validation)?;
        self.pipeline
            .store()
            .report(&query)
            .await
            .map_err(|error| super::report_unavailable(&error))
    }
}

/// Checks and defaults a `getMetrics` input received at `now`.
pub fn metrics_query(
    input: Option<Value>,
    now: DateTime<Utc>,
) -> Result<MetricsQuery, InvalidInput> {
    let input: GetMetricsInput = match input {
        None | Some(Value::Null) => GetMetricsInput::default(),
        raw => parse_input(raw)?,
    };
    let mut errors = InvalidInput::default();
    if let Err(derived) = validator::Validate::validate(&input) {
        collect_validator_errors(&derived, "", &mut errors);
    }
    check_filters(input.filters.as_ref(), &mut errors);
    check_goals(input.goals.as_deref().unwrap_or_default(), &mut errors);
    let (from, to) = checked_range(input.from.as_deref(), input.to.as_deref(), now, errors)?;
    let interval = input.interval.unwrap_or(if to - from <= HOURLY_UP_TO {
        Interval::Hour
    } else {
        Interval::Day
    });
    Ok(MetricsQuery {
        from,
        to,
        interval,
        event_type: input.event_type,
        filters: input.filters.unwrap_or_default(),
        limit: input.limit.map_or(DEFAULT_LIMIT, |limit| limit as usize),
        compare: input.compare,
        goals: input.goals.unwrap_or_default(),
    })
}

/// Longest text a filter or a goal may hold, and most values in one `is` or `isNot`.
pub(super) const MAX_TEXT: usize = 255;
const MAX_VALUES: usize = 100;

/// A rule must say something, and within bounds.
pub(super) fn check_filters(filters: Option<&MetricsFilters>, errors: &mut InvalidInput) {
    let Some(filters) = filters else { return };
    let all = [
        &filters.path,
        &filters.utm_source,
        &filters.referrer_host,
        &filters.country,
        &filters.device_type,
        &filters.event_type,
        &filters.browser_name,
    ];
    for filter in all.into_iter().flatten() {
        let problem = match filter {
            FilterValue::Equals(value) => (value.len() > MAX_TEXT).then_some("a value is too long"),
            FilterValue::Rule(rule) => {
                let lists: Vec<&Vec<String>> =
                    [&rule.is, &rule.is_not].into_iter().flatten().collect();
                let mut texts = lists.iter().copied().flatten().chain(&rule.contains);
                if rule.is.is_none() && rule.is_not.is_none() && rule.contains.is_none() {
                    Some("a filter needs is, isNot or contains")
                } else if lists.iter().any(|list| list.len() > MAX_VALUES) {
                    Some("is and isNot take at most 100 values")
                } else if texts.any(|text| text.len() > MAX_TEXT) {
                    Some("a value is too long")
                } else {
                    None
                }
            }
        };
        if let Some(problem) = problem {
            errors.field("filters", problem);
            return;
        }
    }
}

/// Each goal has a name and names an event type, a path, or both.
fn check_goals(goals: &[Goal], errors: &mut InvalidInput) {
    for goal in goals {
        let problem = if goal.name.is_empty() || goal.name.len() > 100 {
            Some("a goal's name has 1 to 100 characters")
        } else if goal.event_type.is_none() && goal.path.is_none() {
            Some("a goal names an eventType, a path, or both")
        } else if [&goal.event_type, &goal.path]
            .into_iter()
            .flatten()
            .any(|text| text.is_empty() || text.len() > MAX_TEXT)
        {
            Some("a goal's eventType and path have 1 to 255 characters")
        } else {
            None
        };
        if let Some(problem) = problem {
            errors.field("goals", problem);
            return;
        }
    }
}

/// The range of a report's input received at `now`: `to` defaults to now, `from` to 7 days
/// before `to`; `from` must come first and at most 366 days before. Fails with `errors` and
/// the range's own.
pub(super) fn checked_range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
    mut errors: InvalidInput,
) -> Result<(DateTime<Utc>, DateTime<Utc>), InvalidInput> {
    let from = parse_time(from, "from", &mut errors);
    let to = parse_time(to, "to", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - DEFAULT_RANGE);
    if from >= to {
        errors.field("from", "Must be before to");
    } else if to - from > Duration::days(MAX_RANGE_DAYS) {
        errors.field(
            "to",
            format!("The range may span at most {MAX_RANGE_DAYS} days"),
        );
    }
    if errors.is_empty() {
        Ok((from, to))
    } else {
        Err(errors)
    }
}

fn parse_time(text: Option<&str>, field: &str, errors: &mut InvalidInput) -> Option<DateTime<Utc>> {
    let text = text?;
    match DateTime::parse_from_rfc3339(text) {
        Ok(time) => Some(time.with_timezone(&Utc)),
        Err(_) => {
            errors.field(field, "Invalid datetime (expected RFC 3339)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-20T12:34:56Z".parse().expect("time")
    }

    fn field_errors(input: Value) -> Vec<String> {
        let errors = metrics_query(Some(input), now()).expect_err("invalid");
        let json = serde_json::to_value(&errors).expect("json");
        let mut fields: Vec<String> = json["fieldErrors"]
            .as_object()
            .map(|fields| fields.keys().cloned().collect())
            .unwrap_or_default();
        if json["formErrors"]
            .as_array()
            .is_some_and(|form| !form.is_empty())
        {
            fields.push("(form)".to_owned());
        }
        fields
    }

    #[test]
    fn no_input_means_the_last_seven_days_by_day() {
        let query = metrics_query(None, now()).expect("valid");
        assert_eq!(query.to, now());
        assert_eq!(query.from, now() - Duration::days(7));
        assert_eq!(query.interval, Interval::Day);
        assert_eq!(query.limit, DEFAULT_LIMIT);
        let short = metrics_query(Some(json!({"from": "2026-11-19T12:34:56Z"})), now());
        assert_eq!(short.expect("valid").interval, Interval::Hour);
    }

    #[test]
    fn bad_inputs_name_their_field() {
        assert_eq!(field_errors(json!({"from": "yesterday"})), ["from"]);
        assert_eq!(
            field_errors(json!({"from": "2026-11-20T00:00:00Z", "to": "2026-11-19T00:00:00Z"})),
            ["from"]
        );
        assert_eq!(
            field_errors(json!({"from": "2025-01-01T00:00:00Z", "to": "2026-11-19T00:00:00Z"})),
            ["to"]
        );
        assert_eq!(field_errors(json!({"interval": "minute"})), ["interval"]);
        assert_eq!(field_errors(json!({"limit": 0})), ["limit"]);
        assert_eq!(field_errors(json!({"limit": 101})), ["limit"]);
        assert_eq!(
            field_errors(json!({"filters": {"city": "Paris"}})),
            ["filters"]
        );
        assert_eq!(field_errors(json!({"groupBy": "path"})), ["(form)"]);
    }
}
