//! MLflow's proto3-JSON request messages, read as leniently as the real server reads them:
//! int64 as number or string, NaN and infinities as strings, ids as string or number. Replies
//! are encoded in `mlflow::json`.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use twinloop_core::tracking::*;

use crate::error::ApiError;
use crate::extract::missing;

/// A proto int64: JSON number or decimal string.
pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// A proto double: JSON number, or one of the strings proto3 JSON uses for non-finite values.
pub fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => match s.as_str() {
            "NaN" | "nan" => Ok(Some(f64::NAN)),
            "Infinity" | "inf" => Ok(Some(f64::INFINITY)),
            "-Infinity" | "-inf" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("expected a number, got {other:?}"))),
        },
        Some(other) => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

/// An id that the client sends as a string but older clients and curl users send as a number.
pub fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(D::Error::custom(format!(
            "expected a string id, got {other}"
        ))),
    }
}

pub fn de_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(D::Error::custom(format!(
                    "expected a string id, got {other}"
                ))),
            })
            .collect(),
        Some(other) => Err(D::Error::custom(format!(
            "expected a list of ids, got {other}"
        ))),
    }
}

/// An enum field sent by name (`"ACTIVE_ONLY"`) or by number.
pub fn de_opt_enum<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_opt_id(d)
}

pub fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| missing(field))
}

pub fn required_str(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing(field))
}

#[derive(Debug, Deserialize)]
pub struct WireTag {
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

impl WireTag {
    pub fn into_tag(self, what: &str) -> Result<Tag, ApiError> {
        Ok(Tag::new(
            required_str(self.key, &format!("{what}.key"))?,
            self.value.unwrap_or_default(),
        ))
    }
}

/// A missing key is named by its place in the request, as MLflow names it: `tags[2].key`.
pub fn into_tags(tags: Vec<WireTag>, what: &str) -> Result<Vec<Tag>, ApiError> {
    tags.into_iter()
        .enumerate()
        .map(|(i, t)| t.into_tag(&format!("{what}[{i}]")))
        .collect()
}

/// A metric; also `log-metric`'s whole body, which adds the run it goes to. (Not a struct that
/// flattens this one: serde loses the path of a field inside a flattened struct, and with it the
/// parameter an error message must name.)
#[derive(Debug, Deserialize)]
pub struct WireMetric {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub value: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub step: Option<i64>,
    pub model_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

impl WireMetric {
    /// The metric, or the error naming its first missing field. `at` gives where the metric
    /// sits in the request: empty for `log-metric`'s top-level fields (`key`), `metrics[3].` in a
    /// batch (`metrics[3].key`); it is called only for the error, so good metrics format nothing.
    pub fn into_metric(self, at: impl Fn() -> String) -> Result<Metric, ApiError> {
        let (key, value, timestamp) = match (self.key, self.value, self.timestamp) {
            (Some(key), Some(value), Some(timestamp)) if !key.is_empty() => (key, value, timestamp),
            (key, value, _) => {
                let field = if key.is_none_or(|k| k.is_empty()) {
                    "key"
                } else if value.is_none() {
                    "value"
                } else {
                    "timestamp"
                };
                return Err(missing(&format!("{}{field}", at())));
            }
        };
        let mut m = Metric::new(key, value, timestamp, self.step.unwrap_or(0));
        m.model_id = self.model_id.filter(|s| !s.is_empty());
        m.dataset_name = self.dataset_name.filter(|s| !s.is_empty());
        m.dataset_digest = self.dataset_digest.filter(|s| !s.is_empty());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "de_opt_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "de_opt_f64")]
        x: Option<f64>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn int64_as_number_or_string() {
        assert_eq!(
            probe(r#"{"n": 1700000000000}"#).unwrap().n,
            Some(1_700_000_000_000)
        );
        assert_eq!(
            probe(r#"{"n": "1700000000000"}"#).unwrap().n,
            Some(1_700_000_000_000)
        );
        assert!(probe(r#"{"n": "soon"}"#).is_err());
        assert!(probe(r#"{"n": [1]}"#).is_err());
        assert_eq!(probe("{}").unwrap().n, None);
    }

    #[test]
    fn doubles_with_non_finite_strings() {
        assert!(probe(r#"{"x": "NaN"}"#).unwrap().x.unwrap().is_nan());
        assert_eq!(
            probe(r#"{"x": "-Infinity"}"#).unwrap().x,
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(probe(r#"{"x": 0.25}"#).unwrap().x, Some(0.25));
        assert!(probe(r#"{"x": "big"}"#).is_err());
    }
}
