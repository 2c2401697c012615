//! Marketing attribution: where a visitor came from, as sent with an event and stored with it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::rules::url_or_empty;

/// Marketing attribution sent with an event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, Validate, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attribution {
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_source: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_medium: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_campaign: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_term: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    pub utm_content: Option<String>,
    /// An absolute URL, or "".
    #[validate(custom(function = "url_or_empty"))]
    pub referrer: Option<String>,
    /// An absolute URL, or "".
    #[validate(custom(function = "url_or_empty"))]
    pub landing_page: Option<String>,
}
