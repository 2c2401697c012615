//! Why an input was refused, field by field: what validation (the derive rules and the
//! configured business rules) reports, in the shape zod's `error.flatten()` gives it.

use std::collections::BTreeMap;

use serde::Serialize;

/// Field-level validation failures, flattened the way zod's `error.flatten()` reports them
/// (on the wire it is the error's `zodError`, the name tRPC clients read).
///
/// Keys are camelCase wire names; nested fields use a dotted path (`attribution.utmSource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidInput {
    pub field_errors: BTreeMap<String, Vec<String>>,
    pub form_errors: Vec<String>,
}

impl InvalidInput {
    pub fn is_empty(&self) -> bool {
        self.field_errors.is_empty() && self.form_errors.is_empty()
    }

    pub fn field(&mut self, name: impl Into<String>, message: impl Into<String>) {
        self.field_errors
            .entry(name.into())
            .or_default()
            .push(message.into());
    }

    pub fn form(&mut self, message: impl Into<String>) {
        self.form_errors.push(message.into());
    }

    /// One human-readable line naming every failure, used as the error `message`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .field_errors
            .iter()
            .map(|(field, messages)| format!("{field}: {}", messages.join(", ")))
            .collect();
        parts.extend(self.form_errors.iter().cloned());
        if parts.is_empty() {
            "Invalid input".to_owned()
        } else {
            parts.join("; ")
        }
    }
}
