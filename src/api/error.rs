//! The one error model of Sluice, shaped like tRPC's so that JSON-RPC and tRPC callers see the
//! same thing: `{code, message, data: {code: "<TRPC_KEY>", httpStatus, path, zodError?}}`.
//!
//! Every failure a caller can see is an [`ApiError`]. Lower layers have their own error enums
//! (validation, buffer, storage); each is mapped here once. Server-side details go to the logs,
//! never into the message a client reads.

use serde_json::{Value, json};

pub use crate::domain::InvalidInput;

/// The tRPC error keys with their JSON-RPC numbers and HTTP statuses (README "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotSupported,
    Timeout,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    InternalServerError,
    ServiceUnavailable,
}

impl ErrorCode {
    /// Every code, in the order of the contract.
    pub const ALL: [Self; 13] = [
        Self::ParseError,
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotSupported,
        Self::Timeout,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::TooManyRequests,
        Self::InternalServerError,
        Self::ServiceUnavailable,
    ];

    /// The tRPC key, e.g. `BAD_REQUEST`; stable, also used as the metrics/log tag.
    pub fn key(self) -> &'static str {
        match self {
            Self::ParseError => "PARSE_ERROR",
            Self::BadRequest => "BAD_REQUEST",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotSupported => "METHOD_NOT_SUPPORTED",
            Self::Timeout => "TIMEOUT",
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// The JSON-RPC error number tRPC uses for this key.
    pub fn json_rpc_code(self) -> i32 {
        match self {
            Self::ParseError => -32700,
            Self::BadRequest => -32600,
            Self::Unauthorized => -32001,
            Self::Forbidden => -32003,
            Self::NotFound => -32004,
            Self::MethodNotSupported => -32005,
            Self::Timeout => -32008,
            Self::Conflict => -32009,
            Self::PayloadTooLarge => -32013,
            Self::UnsupportedMediaType => -32015,
            Self::TooManyRequests => -32029,
            Self::InternalServerError | Self::ServiceUnavailable => -32603,
        }
    }

    /// The HTTP status tRPC's HTTP adapter answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::ParseError | Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotSupported => 405,
            Self::Timeout => 408,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyRequests => 429,
            Self::InternalServerError => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    /// Whether the caller caused it (logged at warn) or the server did (logged at error).
    pub fn is_client_error(self) -> bool {
        self.http_status() < 500
    }
}

impl From<crate::api::rate_limit::RateLimited> for ApiError {
    fn from(error: crate::api::rate_limit::RateLimited) -> Self {
        use crate::api::rate_limit::RateLimited;
        let retry_after_secs = match error {
            RateLimited::Exceeded { retry_after_secs } => Some(retry_after_secs),
            RateLimited::OverBurst { .. } => None,
        };
        Self {
            retry_after_secs,
            ..Self::new(ErrorCode::TooManyRequests, error.to_string())
        }
    }
}

impl From<crate::identity::AuthError> for ApiError {
    fn from(error: crate::identity::AuthError) -> Self {
        use crate::identity::AuthError;
        match error {
            AuthError::Unauthenticated(message) => Self::unauthorized(message),
            AuthError::Forbidden(message) => Self::forbidden(message),
        }
    }
}

/// An error as the caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub zod_error: Option<InvalidInput>,
    /// Seconds after which a retry may succeed (rate limits, full buffer).
    pub retry_after_secs: Option<u64>,
    /// Backpressure logged where it arises (a full buffer says so once per episode), so
    /// that an overload does not also write a log line for every refused request.
    pub logged_at_source: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            zod_error: None,
            retry_after_secs: None,
            logged_at_source: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A validation failure: BAD_REQUEST carrying the field errors.
    pub fn validation(zod_error: InvalidInput) -> Self {
        Self {
            message: zod_error.summary(),
            zod_error: Some(zod_error),
            ..Self::new(ErrorCode::BadRequest, "")
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(ErrorCode::ServiceUnavailable, message)
        }
    }

    /// The one wire form of an error, `{code, message, data}`: JSON-RPC's error object,
    /// tRPC's error shape and a rejected trackBatch item all carry exactly this.
    pub fn wire(&self, path: &str) -> crate::api::types::ItemError {
        crate::api::types::ItemError {
            code: self.code.json_rpc_code(),
            message: self.message.clone(),
            data: self.data(path),
        }
    }

    /// The `data` object of the wire error, for the procedure at `path`.
    pub fn data(&self, path: &str) -> Value {
        let mut data = json!({
            "code": self.code.key(),
            "httpStatus": self.code.http_status(),
            "path": path,
        });
        if let Some(zod_error) = &self.zod_error {
            data["zodError"] = json!(zod_error);
        }
        if let Some(secs) = self.retry_after_secs {
            data["retryAfterSeconds"] = json!(secs);
        }
        data
    }

    /// Logs the error once at the level its class deserves: warn for 4xx, error for 5xx.
    ///
    /// Validation messages can quote what the client sent (which may be personal data), so
    /// for those only the names of the failing fields are logged.
    pub fn log(&self, path: &str) {
        if self.logged_at_source {
            tracing::debug!(path, code = self.code.key(), message = %self.message, "request refused");
        } else if let Some(zod) = &self.zod_error {
            let fields: Vec<&str> = zod.field_errors.keys().map(String::as_str).collect();
            tracing::warn!(
                path,
                code = self.code.key(),
                ?fields,
                form_errors = zod.form_errors.len(),
                "request rejected"
            );
        } else if self.code.is_client_error() {
            tracing::warn!(path, code = self.code.key(), message = %self.message, "request rejected");
        } else {
            tracing::error!(path, code = self.code.key(), message = %self.message, "request failed");
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.key(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_numbers_of_the_contract() {
        let table = [
            (ErrorCode::ParseError, -32700, 400),
            (ErrorCode::BadRequest, -32600, 400),
            (ErrorCode::Unauthorized, -32001, 401),
            (ErrorCode::Forbidden, -32003, 403),
            (ErrorCode::NotFound, -32004, 404),
            (ErrorCode::MethodNotSupported, -32005, 405),
            (ErrorCode::Timeout, -32008, 408),
            (ErrorCode::Conflict, -32009, 409),
            (ErrorCode::PayloadTooLarge, -32013, 413),
            (ErrorCode::UnsupportedMediaType, -32015, 415),
            (ErrorCode::TooManyRequests, -32029, 429),
            (ErrorCode::InternalServerError, -32603, 500),
            (ErrorCode::ServiceUnavailable, -32603, 503),
        ];
        for (code, number, status) in table {
            assert_eq!(code.json_rpc_code(), number, "{}", code.key());
            assert_eq!(code.http_status(), status, "{}", code.key());
        }
    }

    #[test]
    fn validation_errors_carry_zod_error_and_a_readable_message() {
        let mut zod = InvalidInput::default();
        zod.field("eventType", "Required");
        let error = ApiError::validation(zod);
        let data = error.data("eventIngestion.track");
        assert_eq!(data["code"], "BAD_REQUEST");
        assert_eq!(data["httpStatus"], 400);
        assert_eq!(data["path"], "eventIngestion.track");
        assert_eq!(data["zodError"]["fieldErrors"]["eventType"][0], "Required");
        assert_eq!(error.message, "eventType: Required");
    }
}
