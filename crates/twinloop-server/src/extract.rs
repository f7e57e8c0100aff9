//! Request decoding that never panics and always answers in MLflow's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use twinloop_core::{Error, ErrorKind};
use twinloop_meta::pyjson::{self, Separators};

use crate::error::ApiError;

/// Largest JSON request body accepted. A full `log-batch` (1,000 metrics, 100 params of 6,000
/// characters, 100 tags of 8,000) is under 2 MB; dataset schemas and profiles need some room.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// A JSON request body decoded into `T`. An empty body reads as `{}` (the client sends DELETEs
/// without one); a body that is not JSON, or has a field of the wrong type, is a 400 naming it
/// in MLflow's words ([`invalid_value`], [`missing`]), which MLflow's own tests match.
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
    // The typed parse builds no `Value` tree (a 1,000-metric log-batch is some 6,000
    // allocations fewer); any body it refuses takes the path below, which says where and why as
    // MLflow does. A body that is not an object is left to that path too: serde would read a
    // JSON array into a struct.
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && let Ok(typed) = serde_json::from_slice(text)
    {
        return Ok(typed);
    }
    parse_through_value(text)
}

/// Reads `text` into a `Value` first, so that a refusal can name the parameter and quote it.
fn parse_through_value<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| ApiError::invalid(format!("Malformed JSON in request body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid("The request body must be a JSON object"));
    }
    serde_path_to_error::deserialize(&value).map_err(|e| decode_error(&value, &e))
}

/// MLflow's sentence after every request-validation message.
pub(crate) const SEE_THE_DOCS: &str =
    " See the API docs for more information about request parameters.";

/// MLflow's message for a parameter of the wrong type (`_validate_param_against_schema`): the
/// value as Python's `json.dumps(…, separators=(",", ":"), sort_keys=True)` writes it, and its
/// Python type.
pub fn invalid_value(param: &str, value: &Value) -> ApiError {
    invalid_value_because(
        param,
        value,
        &format!(" Hint: Value was of type '{}'.", pyjson::type_name(value)),
    )
}

/// MLflow's `invalid_value(path, value, message)`.
fn invalid_value_because(param: &str, value: &Value, why: &str) -> ApiError {
    ApiError::invalid(format!(
        "Invalid value {} for parameter '{param}' supplied: {why}{SEE_THE_DOCS}",
        pyjson::dumps(value, Separators::Compact),
    ))
}

pub fn missing(field: &str) -> ApiError {
    ApiError::invalid(format!(
        "Missing value for required parameter '{field}'.{SEE_THE_DOCS}"
    ))
}

/// Names the parameter serde stopped at (`metrics[0].key`) and quotes the value found there.
fn decode_error(body: &Value, e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_path_to_error::Segment;
    let mut param = String::new();
    let mut value = Some(body);
    for segment in e.path().iter() {
        match segment {
            Segment::Seq { index } => {
                param.push_str(&format!("[{index}]"));
                value = value.and_then(|v| v.get(index));
            }
            Segment::Map { key } => {
                if !param.is_empty() {
                    param.push('.');
                }
                param.push_str(key);
                value = value.and_then(|v| v.get(key));
            }
            Segment::Enum { .. } | Segment::Unknown => value = None,
        }
    }
    let reason = e.inner().to_string();
    if let Some(field) = reason
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return if param.is_empty() {
            missing(field)
        } else {
            missing(&format!("{param}.{field}"))
        };
    }
    match value {
        // A name outside an enum (the native API's): the type is right, the names allowed help.
        Some(value) if reason.starts_with("unknown variant") => {
            invalid_value_because(&param, value, &format!("{reason}."))
        }
        Some(value) => invalid_value(&param, value),
        None => ApiError::invalid(format!(
            "Invalid value for parameter '{param}' supplied: {reason}.{SEE_THE_DOCS}"
        )),
    }
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
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid_value(key, &Value::String(v.to_string())))
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

/// Who made a change, for the registry's event log. With `--auth`, the signed-in user the auth
/// middleware put in the request (a client's own claim is worthless there; the middleware also
/// drops the header), else `anonymous`. Without `--auth` nobody is signed in, so the
/// `X-Twinloop-User` header is the only name there is: a label, not an identity.
pub struct Actor(pub String);

/// The header an unauthenticated server takes the actor's name from.
pub const ACTOR_HEADER: &str = "x-twinloop-user";

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<crate::auth::credentials::Caller>() {
            return Ok(Actor(caller.user.username.clone()));
        }
        let user = parts
            .headers
            .get(ACTOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .unwrap_or("anonymous");
        Ok(Actor(user.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::wire::{WireMetric, WireTag, de_opt_i64};

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only decoded, to see the errors")]
    struct Create {
        name: Option<String>,
        artifact_location: Option<String>,
        #[serde(default)]
        tags: Vec<WireTag>,
        #[serde(default, deserialize_with = "de_opt_i64")]
        max_results: Option<i64>,
        required: Option<Vec<Required>>,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only decoded, to see the errors")]
    struct Required {
        key: String,
    }

    /// Whatever the typed parse accepts, the `Value` path reads alike: the fast path changes
    /// nothing a client can see.
    #[test]
    fn the_typed_parse_reads_what_the_value_path_reads() {
        let bodies = [
            r#"{"run_id": "r", "key": "m", "value": 1.5, "timestamp": 59, "step": 3}"#,
            r#"{"run_id": "r", "key": "m", "value": "NaN", "timestamp": "59", "step": "-3"}"#,
            r#"{"run_id": "r", "key": "m", "value": 1e308, "timestamp": 1, "extra": [1, {"a": 2}]}"#,
            r#"{"run_id": "r", "key": "\u00e9", "value": -0.0, "timestamp": 18446744073709551615}"#,
            r#" {"run_id": "r", "key": "m", "value": 12345678901234567890, "timestamp": 1} "#,
        ];
        for body in bodies {
            let typed = parse_json::<WireMetric>(body.as_bytes()).map(|m| format!("{m:?}"));
            let checked =
                parse_through_value::<WireMetric>(body.as_bytes()).map(|m| format!("{m:?}"));
            match (typed, checked) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{body}"),
                (Err(a), Err(b)) => assert_eq!(a.message(), b.message(), "{body}"),
                (a, b) => panic!("{body}: {a:?} against {b:?}"),
            }
        }
        for not_an_object in ["[\"r\", \"m\", 1, 59]", "7", "\"x\""] {
            assert_eq!(
                error_of::<WireMetric>(not_an_object),
                "The request body must be a JSON object"
            );
        }
    }

    fn error_of<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        parse_json::<T>(body.as_bytes())
            .unwrap_err()
            .message()
            .to_string()
    }

    const DOCS: &str = " See the API docs for more information about request parameters.";

    #[test]
    fn wrong_types_are_reported_in_mlflows_words() {
        // The texts MLflow's tests/tracking/test_rest_tracking.py matches.
        let cases = [
            (
                r#"{"run_id": 31, "key": "m", "value": 41, "timestamp": 59}"#,
                "Invalid value 31 for parameter 'run_id' supplied:  Hint: Value was of type 'int'.",
            ),
            (
                r#"{"run_id": "r", "key": 31, "value": 41, "timestamp": 59}"#,
                "Invalid value 31 for parameter 'key' supplied:  Hint: Value was of type 'int'.",
            ),
            (
                r#"{"run_id": "r", "key": "m", "value": 31, "timestamp": 59, "step": "foo"}"#,
                r#"Invalid value "foo" for parameter 'step' supplied:  Hint: Value was of type 'str'."#,
            ),
            (
                r#"{"run_id": "r", "key": "m", "value": 31, "timestamp": "foo"}"#,
                r#"Invalid value "foo" for parameter 'timestamp' supplied:  Hint: Value was of type 'str'."#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                error_of::<WireMetric>(body),
                format!("{want}{DOCS}"),
                "{body}"
            );
        }
        let cases = [
            (
                r#"{"name": 123}"#,
                "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'.",
            ),
            (
                r#"{"name": "e", "artifact_location": 9.0}"#,
                "Invalid value 9.0 for parameter 'artifact_location' supplied:  Hint: Value was of type 'float'.",
            ),
            (
                r#"{"name": "e", "tags": "5"}"#,
                r#"Invalid value "5" for parameter 'tags' supplied:  Hint: Value was of type 'str'."#,
            ),
            (
                r#"{"tags": [{"key": "k", "value": {"b": [1, "é"], "a": null}}]}"#,
                r#"Invalid value {"a":null,"b":[1,"\u00e9"]} for parameter 'tags[0].value' supplied:  Hint: Value was of type 'dict'."#,
            ),
            (
                r#"{"max_results": "ten"}"#,
                r#"Invalid value "ten" for parameter 'max_results' supplied:  Hint: Value was of type 'str'."#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(error_of::<Create>(body), format!("{want}{DOCS}"), "{body}");
        }
    }

    #[test]
    fn an_unknown_enum_name_lists_the_known_ones() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Op {
            Gt,
            Lt,
        }
        #[derive(Debug, Deserialize)]
        #[expect(dead_code, reason = "only decoded, to see the errors")]
        struct Rule {
            op: Op,
        }
        assert_eq!(
            error_of::<Rule>(r#"{"op": "!="}"#),
            format!(
                "Invalid value \"!=\" for parameter 'op' supplied: unknown variant `!=`, expected `gt` or `lt`.{DOCS}"
            )
        );
    }

    #[test]
    fn a_missing_required_field_is_named_with_its_path() {
        assert_eq!(
            error_of::<Create>(r#"{"required": [{"key": "a"}, {}]}"#),
            format!("Missing value for required parameter 'required[1].key'.{DOCS}")
        );
        assert_eq!(
            missing("run_id").message(),
            format!("Missing value for required parameter 'run_id'.{DOCS}")
        );
    }
}
