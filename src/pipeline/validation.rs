//! Validation of track inputs: the derive rules of [`TrackEventInput`], then the business rules
//! (required props per event type, the `occurred_at` window, entityId ⇒ entityType, props size,
//! no NUL characters). Failures come back as one [`InvalidInput`] keyed by camelCase wire names.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::domain::{InvalidInput, Props, TrackEventInput};

/// The configurable business rules, with the defaults the README's "API" section lists.
#[derive(Debug, Clone)]
pub struct BusinessRules {
    /// How far in the future `props.occurred_at` may be (clock skew allowance).
    pub max_future_skew: Duration,
    /// How old `props.occurred_at` may be.
    pub max_event_age: Duration,
    /// Largest serialized `props` object, in bytes.
    pub max_props_bytes: usize,
    /// Props each event type must carry.
    pub required_props: BTreeMap<String, Vec<String>>,
}

/// Largest serialized props object by default, in bytes.
pub const DEFAULT_MAX_PROPS_BYTES: usize = 32 * 1024;
/// How far in the future `props.occurred_at` may be by default, in seconds.
pub const DEFAULT_MAX_FUTURE_SKEW_SECONDS: u64 = 300;
/// How old `props.occurred_at` may be by default, in days.
pub const DEFAULT_MAX_EVENT_AGE_DAYS: u64 = 30;

impl Default for BusinessRules {
    fn default() -> Self {
        let required = [
            ("asset_viewed", &["view_duration_ms"][..]),
            ("license_signed", &["license_id"]),
            ("payout_completed", &["amount_cents", "payment_method"]),
            ("post_viewed", &["post_id"]),
            ("post_cta_clicked", &["cta_type", "cta_url"]),
        ];
        Self {
            max_future_skew: Duration::from_secs(DEFAULT_MAX_FUTURE_SKEW_SECONDS),
            max_event_age: Duration::from_secs(DEFAULT_MAX_EVENT_AGE_DAYS * 24 * 60 * 60),
            max_props_bytes: DEFAULT_MAX_PROPS_BYTES,
            required_props: required
                .into_iter()
                .map(|(event_type, props)| {
                    (
                        event_type.to_owned(),
                        props.iter().map(|p| (*p).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }
}

/// A track input that passed every rule.
#[derive(Debug, Clone)]
pub struct ValidEvent {
    pub input: TrackEventInput,
    /// The props as they are stored: serialized once, here, where their size is checked.
    pub props: Option<Props>,
    /// `props.occurred_at` when given, else the receive time.
    pub occurred_at: DateTime<Utc>,
    /// When the input was received (the `now` it was validated against).
    pub received_at: DateTime<Utc>,
}

/// Validates one raw track input received at `now`, from a caller who may set `userId`
/// (`may_set_user`) or not.
pub fn validate_track_input(
    raw: Option<Value>,
    rules: &BusinessRules,
    now: DateTime<Utc>,
    may_set_user: bool,
) -> Result<ValidEvent, InvalidInput> {
    let input: TrackEventInput = parse_input(raw)?;
    let mut errors = InvalidInput::default();
    if input.user_id.is_some() && !may_set_user {
        // As serde refuses any other field the caller may not send.
        errors.form("Unrecognized key(s) in object: 'userId'");
        return Err(errors);
    }
    if let Err(derived) = input.validate() {
        collect_validator_errors(&derived, "", &mut errors);
    }
    let props = match input.props.as_ref().map(serde_json::to_string).transpose() {
        Ok(text) => text.map(Props::from_json_text),
        Err(error) => {
            errors.field("props", error.to_string());
            None
        }
    };
    let occurred_at = check_business_rules(&input, props.as_ref(), rules, now, &mut errors);
    if errors.is_empty() {
        Ok(ValidEvent {
            input,
            props,
            occurred_at,
            received_at: now,
        })
    } else {
        Err(errors)
    }
}

/// Deserializes a procedure input strictly: it must be present, an object, free of NUL
/// characters, with no unknown keys and the right types. Serde's errors are turned into field
/// errors at the path where they happened.
pub fn parse_input<T: DeserializeOwned>(raw: Option<Value>) -> Result<T, InvalidInput> {
    let mut errors = InvalidInput::default();
    let Some(raw) = raw else {
        errors.form("Required");
        return Err(errors);
    };
    if !raw.is_object() {
        errors.form(format!("Expected object, received {}", json_type(&raw)));
        return Err(errors);
    }
    if let Value::Object(fields) = &raw {
        for (key, value) in fields {
            if key.contains('\0') || contains_nul(value) {
                errors.field(key.clone(), "must not contain NUL characters");
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_path_to_error::deserialize(raw).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let mut errors = InvalidInput::default();
        if let Some(field) = quoted_name(&message, "missing field `") {
            errors.field(join_path(&path, field), "Required");
        } else if let Some(field) = quoted_name(&message, "unknown field `") {
            // The path ends at the unknown key itself; the error belongs to its parent object.
            let parent = path
                .strip_suffix(field)
                .unwrap_or(&path)
                .trim_end_matches('.')
                .to_owned();
            let message = format!("Unrecognized key(s) in object: '{field}'");
            if parent.is_empty() {
                errors.form(message);
            } else {
                errors.field(parent, message);
            }
        } else if path == "." {
            errors.form(message);
        } else {
            errors.field(path, message);
        }
        errors
    })
}

fn check_business_rules(
    input: &TrackEventInput,
    stored_props: Option<&Props>,
    rules: &BusinessRules,
    now: DateTime<Utc>,
    errors: &mut InvalidInput,
) -> DateTime<Utc> {
    if input.entity_id.is_some() && input.entity_type.is_none() {
        errors.field("entityType", "Required when entityId is given");
    }
    if let Some(stored) = stored_props {
        let size = stored.as_str().len();
        if size > rules.max_props_bytes {
            errors.field(
                "props",
                format!(
                    "must be at most {} bytes serialized (got {size})",
                    rules.max_props_bytes
                ),
            );
        }
    }
    let props = input.props.as_ref();
    if let Some(required) = rules.required_props.get(&input.event_type) {
        for name in required {
            if props.is_none_or(|props| props.get(name).is_none_or(Value::is_null)) {
                errors.field(
                    format!("props.{name}"),
                    format!("Required for event type {}", input.event_type),
                );
            }
        }
    }
    match props.and_then(|props| props.get("occurred_at")) {
        None | Some(Value::Null) => now,
        Some(value) => match occurred_at_within_window(value, rules, now) {
            Ok(occurred_at) => occurred_at,
            Err(message) => {
                errors.field("props.occurred_at", message);
                now
            }
        },
    }
}

fn occurred_at_within_window(
    value: &Value,
    rules: &BusinessRules,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let parsed = value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(|| "must be an RFC 3339 date-time".to_owned())?;
    let skew = chrono::Duration::from_std(rules.max_future_skew).unwrap_or(chrono::Duration::MAX);
    let age = chrono::Duration::from_std(rules.max_event_age).unwrap_or(chrono::Duration::MAX);
    if parsed > now + skew {
        return Err(format!(
            "must not be more than {} seconds in the future",
            rules.max_future_skew.as_secs()
        ));
    }
    if parsed < now - age {
        return Err(format!(
            "must not be older than {} days",
            rules.max_event_age.as_secs() / 86_400
        ));
    }
    Ok(parsed)
}

/// Flattens validator's nested errors into dotted camelCase paths.
pub(crate) fn collect_validator_errors(
    errors: &ValidationErrors,
    prefix: &str,
    out: &mut InvalidInput,
) {
    for (field, kind) in errors.errors() {
        let path = join_path(prefix, &camel_case(field));
        match kind {
            ValidationErrorsKind::Field(failures) => {
                for failure in failures {
                    let message = failure.message.as_ref().map_or_else(
                        || format!("failed rule {}", failure.code),
                        ToString::to_string,
                    );
                    out.field(path.clone(), message);
                }
            }
            ValidationErrorsKind::Struct(nested) => collect_validator_errors(nested, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, nested) in items {
                    collect_validator_errors(nested, &format!("{path}.{index}"), out);
                }
            }
        }
    }
}

/// `event_type` → `eventType`: validator reports Rust field names.
fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() || prefix == "." {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn quoted_name<'a>(message: &'a str, lead: &str) -> Option<&'a str> {
    message.strip_prefix(lead)?.split('`').next()
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn validate(raw: Value) -> Result<ValidEvent, InvalidInput> {
        validate_track_input(Some(raw), &BusinessRules::default(), Utc::now(), false)
    }

    fn field_errors(raw: Value) -> BTreeMap<String, Vec<String>> {
        match validate(raw) {
            Ok(_) => panic!("expected a validation failure"),
            Err(errors) => errors.field_errors,
        }
    }

    #[test]
    fn a_minimal_event_is_valid_and_defaults_to_web() {
        let valid = validate(json!({"eventType": "page_viewed"})).expect("valid");
        assert_eq!(valid.input.source, crate::domain::EventSource::Web);
    }

    #[test]
    fn rust_field_names_become_camel_case_wire_names() {
        assert_eq!(camel_case("event_type"), "eventType");
        assert_eq!(camel_case("utm_source"), "utmSource");
        assert_eq!(camel_case("props"), "props");
        let errors =
            field_errors(json!({"eventType": "", "attribution": {"utmSource": "x".repeat(256)}}));
        assert!(errors.contains_key("eventType"), "{errors:?}");
        assert!(errors.contains_key("attribution.utmSource"), "{errors:?}");
    }

    #[test]
    fn occurred_at_becomes_the_event_time() {
        let when = Utc::now() - chrono::Duration::hours(1);
        let valid =
            validate(json!({"eventType": "x", "props": {"occurred_at": when.to_rfc3339()}}))
                .expect("valid");
        assert_eq!(
            valid.occurred_at.timestamp_millis(),
            when.timestamp_millis()
        );
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let errors = validate(json!({"source": "web"})).expect_err("invalid");
        assert_eq!(errors.field_errors["eventType"], ["Required"]);
        let errors = validate(json!({"eventType": "x", "userId": "u1"})).expect_err("invalid");
        assert_eq!(
            errors.form_errors,
            ["Unrecognized key(s) in object: 'userId'"]
        );
    }
}
