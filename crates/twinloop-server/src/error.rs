//! Errors in MLflow's wire shape ([`ErrorBody`]), and the one place that maps a domain
//! [`ErrorKind`] to MLflow's `error_code` strings and statuses. The native API answers in the same
//! shape; the Feast front (`features/`) keeps MLflow's codes in its bodies but chooses its own
//! statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use twinloop_api::error::ErrorBody;
use twinloop_core::{Error, ErrorKind};

/// MLflow's `error_code` for a kind of failure. MLflow has no code for an oversized request: it
/// calls that an invalid parameter value.
pub fn mlflow_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::TooLarge => "INVALID_PARAMETER_VALUE",
        ErrorKind::NotFound => "RESOURCE_DOES_NOT_EXIST",
        ErrorKind::AlreadyExists => "RESOURCE_ALREADY_EXISTS",
        ErrorKind::Internal => "INTERNAL_ERROR",
        ErrorKind::Unavailable => "TEMPORARILY_UNAVAILABLE",
    }
}

/// The status MLflow's server answers a kind of failure with. A duplicate is a 400 there, not a
/// 409, and the MLflow client retries every 5xx for minutes, so only genuine server faults may
/// map to 500.
fn mlflow_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::AlreadyExists => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// An error in MLflow's wire shape: `{"error_code": "...", "message": "..."}`.
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

    /// A failure of `kind` with MLflow's code and status for it; unlike `From<Error>` it logs
    /// nothing, for callers that have logged or need not.
    pub fn of_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError::with_status(mlflow_status(kind), mlflow_code(kind), message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::invalid(message).into()
    }

    /// Something the request needs is not ready yet (a deployment still loading): worth a retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            message,
        )
    }

    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// No route answers the path.
    pub fn no_endpoint(path: &str) -> Self {
        ApiError::with_status(
            StatusCode::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            format!("No endpoint at {path}"),
        )
    }
}

/// How loudly a failure answered with `kind` is logged, if at all. A refusal of the client's
/// request is the client's business; a store that cannot be reached or is busy past the wait
/// budget is expected under overload and in an outage (the breaker warns once of an outage), so
/// each request shed that way is told at info, not as a fault of ours.
fn log_level(kind: ErrorKind) -> Option<tracing::Level> {
    match kind {
        ErrorKind::Internal => Some(tracing::Level::ERROR),
        ErrorKind::Unavailable => Some(tracing::Level::INFO),
        ErrorKind::InvalidArgument
        | ErrorKind::NotFound
        | ErrorKind::AlreadyExists
        | ErrorKind::TooLarge => None,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match log_level(e.kind) {
            Some(tracing::Level::ERROR) => tracing::error!(message = %e.message, "internal error"),
            Some(_) => {
                tracing::info!(message = %e.message, "request answered 503: unavailable for now")
            }
            None => {}
        }
        ApiError::of_kind(e.kind, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error_code: self.code.to_string(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        // A 503 is worth a retry (the store busy past its wait budget, or unreachable); clients
        // other than MLflow's, which backs off by itself, learn when.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_mlflow_code_and_status() {
        let table = [
            (
                ErrorKind::InvalidArgument,
                "INVALID_PARAMETER_VALUE",
                StatusCode::BAD_REQUEST,
            ),
            (
                ErrorKind::NotFound,
                "RESOURCE_DOES_NOT_EXIST",
                StatusCode::NOT_FOUND,
            ),
            (
                ErrorKind::AlreadyExists,
                "RESOURCE_ALREADY_EXISTS",
                StatusCode::BAD_REQUEST,
            ),
            (
                ErrorKind::TooLarge,
                "INVALID_PARAMETER_VALUE",
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                ErrorKind::Internal,
                "INTERNAL_ERROR",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                ErrorKind::Unavailable,
                "TEMPORARILY_UNAVAILABLE",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (kind, code, status) in table {
            let e = ApiError::from(Error::new(kind, "m"));
            assert_eq!((e.code, e.status), (code, status), "{kind:?}");
        }
    }

    #[tokio::test]
    async fn the_body_is_mlflows_error_shape() {
        let response =
            ApiError::of_kind(ErrorKind::NotFound, "no deployment \"x\"").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no deployment \"x\""}"#
        );
    }

    #[test]
    fn a_503_says_when_to_retry() {
        let response = ApiError::from(Error::unavailable("busy")).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        let response = ApiError::of_kind(ErrorKind::Internal, "m").into_response();
        assert!(
            response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .is_none()
        );
    }

    #[test]
    fn only_a_fault_of_ours_is_logged_as_an_error() {
        assert_eq!(log_level(ErrorKind::Internal), Some(tracing::Level::ERROR));
        // Shed under overload or in an outage: expected, and answered 503 with Retry-After.
        assert_eq!(
            log_level(ErrorKind::Unavailable),
            Some(tracing::Level::INFO)
        );
        for kind in [
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::TooLarge,
        ] {
            assert_eq!(log_level(kind), None, "{kind:?}");
        }
    }

    #[test]
    fn the_message_carries_the_cause_once() {
        let io = std::io::Error::other("disk full");
        let e = ApiError::from(Error::internal_from("cannot write artifact", io));
        assert_eq!(e.message, "cannot write artifact: disk full");
    }
}
