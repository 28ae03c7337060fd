//! The JSON error answer of the HTTP API: `{"error": "<text>"}` with a
//! status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ownership::NotHeld;
use super::worlds::JobFailure;

/// An error answer.
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    pub fn unavailable(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error)
    }

    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({"error": error.into()}),
        }
    }

    /// An answer with a body of its own (`{"error", …}` and more fields).
    pub fn with_body(status: StatusCode, body: Value) -> Self {
        ApiError { status, body }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<JobFailure> for ApiError {
    fn from(f: JobFailure) -> Self {
        let status = match f {
            JobFailure::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            JobFailure::Refused(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // Another instance works the world: send the tick to it, or
            // through NATS.
            JobFailure::NotHeld(NotHeld::Elsewhere { .. }) => StatusCode::MISDIRECTED_REQUEST,
            JobFailure::NotHeld(NotHeld::Restarting { .. }) | JobFailure::Retry(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError::new(status, f.to_string())
    }
}
