//! MLflow's proto3-JSON shapes: request messages (lenient where the real server is — int64 as
//! number or string, NaN and infinities as strings, ids as string or number) and the encoding
//! of domain types into replies (empty fields left out, as the real server does).

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
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

pub fn into_tags(tags: Vec<WireTag>, what: &str) -> Result<Vec<Tag>, ApiError> {
    tags.into_iter().map(|t| t.into_tag(what)).collect()
}

#[derive(Debug, Deserialize)]
pub struct WireMetric {
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
    pub fn into_metric(self) -> Result<Metric, ApiError> {
        let mut m = Metric::new(
            required_str(self.key, "metric.key")?,
            required(self.value, "metric.value")?,
            required(self.timestamp, "metric.timestamp")?,
            self.step.unwrap_or(0),
        );
        m.model_id = self.model_id.filter(|s| !s.is_empty());
        m.dataset_name = self.dataset_name.filter(|s| !s.is_empty());
        m.dataset_digest = self.dataset_digest.filter(|s| !s.is_empty());
        Ok(m)
    }
}

/// A metric value: numbers as numbers, non-finite values as the strings proto3 JSON uses.
pub fn metric_value(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

/// Inserts `key: list` only when the list is non-empty, as proto3 JSON leaves empty fields out.
fn put_list(obj: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        obj.insert(key.to_string(), Value::Array(items));
    }
}

pub fn experiment_json(e: &Experiment) -> Value {
    let mut obj = Map::new();
    obj.insert("experiment_id".into(), json!(e.experiment_id));
    obj.insert("name".into(), json!(e.name));
    obj.insert("artifact_location".into(), json!(e.artifact_location));
    obj.insert("lifecycle_stage".into(), json!(e.lifecycle_stage.as_str()));
    obj.insert("last_update_time".into(), json!(e.last_update_time));
    obj.insert("creation_time".into(), json!(e.creation_time));
    if !e.tags.is_empty() {
        obj.insert("tags".into(), tags_json(&e.tags));
    }
    Value::Object(obj)
}

pub fn run_info_json(info: &RunInfo) -> Value {
    let mut obj = Map::new();
    obj.insert("run_uuid".into(), json!(info.run_id));
    obj.insert("run_id".into(), json!(info.run_id));
    obj.insert("experiment_id".into(), json!(info.experiment_id));
    obj.insert("run_name".into(), json!(info.run_name));
    obj.insert("user_id".into(), json!(info.user_id));
    obj.insert("status".into(), json!(info.status.as_str()));
    if let Some(t) = info.start_time {
        obj.insert("start_time".into(), json!(t));
    }
    if let Some(t) = info.end_time {
        obj.insert("end_time".into(), json!(t));
    }
    obj.insert("artifact_uri".into(), json!(info.artifact_uri));
    obj.insert(
        "lifecycle_stage".into(),
        json!(info.lifecycle_stage.as_str()),
    );
    Value::Object(obj)
}

pub fn metric_json(m: &Metric) -> Value {
    let mut obj = Map::new();
    obj.insert("key".into(), json!(m.key));
    obj.insert("value".into(), metric_value(m.value));
    obj.insert("timestamp".into(), json!(m.timestamp));
    obj.insert("step".into(), json!(m.step));
    for (field, value) in [
        ("model_id", &m.model_id),
        ("run_id", &m.run_id),
        ("dataset_name", &m.dataset_name),
        ("dataset_digest", &m.dataset_digest),
    ] {
        if let Some(v) = value {
            obj.insert(field.into(), json!(v));
        }
    }
    Value::Object(obj)
}

pub fn run_json(run: &Run) -> Value {
    let mut data = Map::new();
    put_list(
        &mut data,
        "metrics",
        run.data.metrics.iter().map(metric_json).collect(),
    );
    put_list(
        &mut data,
        "params",
        run.data
            .params
            .iter()
            .map(|p| json!({"key": p.key, "value": p.value}))
            .collect(),
    );
    put_list(
        &mut data,
        "tags",
        run.data
            .tags
            .iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    );
    let mut inputs = Map::new();
    put_list(
        &mut inputs,
        "dataset_inputs",
        run.inputs
            .iter()
            .map(|input| {
                let d = &input.dataset;
                let mut dataset = Map::new();
                dataset.insert("name".into(), json!(d.name));
                dataset.insert("digest".into(), json!(d.digest));
                dataset.insert("source_type".into(), json!(d.source_type));
                dataset.insert("source".into(), json!(d.source));
                if let Some(s) = &d.schema {
                    dataset.insert("schema".into(), json!(s));
                }
                if let Some(p) = &d.profile {
                    dataset.insert("profile".into(), json!(p));
                }
                let mut obj = Map::new();
                if !input.tags.is_empty() {
                    obj.insert("tags".into(), tags_json(&input.tags));
                }
                obj.insert("dataset".into(), Value::Object(dataset));
                Value::Object(obj)
            })
            .collect(),
    );
    let mut outputs = Map::new();
    put_list(
        &mut outputs,
        "model_outputs",
        run.outputs
            .iter()
            .map(|o| json!({"model_id": o.model_id, "step": o.step}))
            .collect(),
    );
    json!({
        "info": run_info_json(&run.info),
        "data": Value::Object(data),
        "inputs": Value::Object(inputs),
        "outputs": Value::Object(outputs),
    })
}

pub fn logged_model_json(m: &LoggedModel) -> Value {
    let mut info = Map::new();
    info.insert("model_id".into(), json!(m.model_id));
    info.insert("experiment_id".into(), json!(m.experiment_id));
    info.insert("name".into(), json!(m.name));
    info.insert(
        "creation_timestamp_ms".into(),
        json!(m.creation_timestamp_ms),
    );
    info.insert(
        "last_updated_timestamp_ms".into(),
        json!(m.last_updated_timestamp_ms),
    );
    info.insert("artifact_uri".into(), json!(m.artifact_uri));
    info.insert("status".into(), json!(m.status.as_str()));
    info.insert("model_type".into(), json!(m.model_type));
    info.insert("source_run_id".into(), json!(m.source_run_id));
    if !m.tags.is_empty() {
        info.insert("tags".into(), tags_json(&m.tags));
    }
    let mut data = Map::new();
    put_list(
        &mut data,
        "params",
        m.params
            .iter()
            .map(|p| json!({"key": p.key, "value": p.value}))
            .collect(),
    );
    put_list(
        &mut data,
        "metrics",
        m.metrics.iter().map(metric_json).collect(),
    );
    json!({"info": Value::Object(info), "data": Value::Object(data)})
}

/// A listing reply: `{field: [...], next_page_token}` with both left out when empty.
pub fn page_json<T>(field: &str, page: &Page<T>, encode: impl Fn(&T) -> Value) -> Value {
    let mut obj = Map::new();
    put_list(&mut obj, field, page.items.iter().map(encode).collect());
    if let Some(token) = page.next_page_token.as_ref().filter(|t| !t.is_empty()) {
        obj.insert("next_page_token".into(), json!(token));
    }
    Value::Object(obj)
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

    #[test]
    fn non_finite_values_encode_as_strings() {
        assert_eq!(metric_value(f64::NAN), json!("NaN"));
        assert_eq!(metric_value(f64::INFINITY), json!("Infinity"));
        assert_eq!(metric_value(1.5), json!(1.5));
    }
}
