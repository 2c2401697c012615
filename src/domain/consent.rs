//! Consent: whom an opt-out or opt-in is about.

use serde::Serialize;

/// Who a consent decision is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "id", rename_all = "lowercase")]
pub enum ConsentSubject {
    Session(String),
    User(String),
}

impl ConsentSubject {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Session(_) => "session",
            Self::User(_) => "user",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Session(id) | Self::User(id) => id,
        }
    }

    /// The subject of a stored consent row (`subject_type`, `subject_id`).
    pub fn from_parts(kind: &str, id: String) -> Option<Self> {
        match kind {
            "session" => Some(Self::Session(id)),
            "user" => Some(Self::User(id)),
            _ => None,
        }
    }
}
