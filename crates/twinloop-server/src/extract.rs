//! Request decoding that never panics and always answers in MLflow's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use twinloop_core::{Error, ErrorKind};

use crate::error::ApiError;

/// Largest JSON request body accepted. A full `log-batch` (1,000 metrics, 100 params of 6,000
/// characters, 100 tags of 8,000) is under 2 MB; dataset schemas and profiles need some room.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// A JSON request body decoded into `T`. An empty body reads as `{}` (the client sends DELETEs
/// without one); a body that is not JSON, or has a field of the wrong type, is a 400 naming it.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let too_large = || {
            ApiError::from(Error::new(
                ErrorKind::TooLarge,
                format!("Request body is larger than the limit of {MAX_JSON_BODY} bytes"),
            ))
        };
        // Refuse an announced oversize body before reading any of it.
        let announced = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_JSON_BODY as u64) {
            return Err(too_large());
        }
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::invalid(format!("Could not read the request body: {e}"))
            }
        })?;
        // MLflow refuses bodies of any other type; so do we, rather than guess at form data.
        if !is_json && !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(
                "Bad Request. Content-Type must be one of ['application/json'].",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        bytes
    };
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| ApiError::invalid(format!("Malformed JSON in request body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid("The request body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(format!("Invalid value for field '{path}': {}", e.inner()))
    })
}

/// Query-string parameters, keeping repeated keys (`order_by=a&order_by=b`) as the MLflow
/// client sends them.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(key))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::invalid(format!(
                        "Invalid value {v:?} for parameter '{key}': expected an integer"
                    ))
                })
            })
            .transpose()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "True" | "1"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryParams(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

pub fn missing(field: &str) -> ApiError {
    ApiError::invalid(format!("Missing value for required parameter '{field}'"))
}

/// Who made a change, for the registry's event log: the `X-Twinloop-User` header, else
/// `anonymous` (the MLflow protocol carries no identity of its own).
pub struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user = parts
            .headers
            .get("x-twinloop-user")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .unwrap_or("anonymous");
        Ok(Actor(user.to_string()))
    }
}
