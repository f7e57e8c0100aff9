use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use twinloop_core::{Error, ErrorCode};

/// An error in MLflow's wire shape: `{"error_code": "...", "message": "..."}`. The MLflow client
/// retries every 5xx for minutes, so only genuine server faults may map to 500.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::invalid(message).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.code {
            ErrorCode::InvalidParameterValue | ErrorCode::ResourceAlreadyExists => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::ResourceDoesNotExist => StatusCode::NOT_FOUND,
            ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(message = %e.message, "internal error");
        }
        ApiError {
            status,
            code: e.code.as_str(),
            message: e.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error_code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
