//! API errors: an HTTP status and a JSON body `{"error": {"code", "message", "field"?}}` whose
//! `code` is stable, so producers can branch on it.

use serde::Serialize;

/// One API error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// The stable machine-readable code (`invalid_destination`, `suppressed`, ...).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The request field it is about, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before trying again (429, 503).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 about `field` (empty for the whole request).
    pub fn bad_request(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code,
            message: message.into(),
            field: (!field.is_empty()).then(|| field.to_owned()),
            retry_after: None,
        }
    }

    /// A required field is missing.
    pub fn missing(field: &str) -> ApiError {
        ApiError::bad_request("missing_field", field, format!("{field} is required"))
    }

    /// A field has the wrong JSON type.
    pub fn invalid_type(field: &str, expected: &str) -> ApiError {
        ApiError::bad_request("invalid_type", field, format!("{field} must be {expected}"))
    }

    /// Any other status.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// With a Retry-After.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// The response body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self })
    }
}
