//! Feast's JSON shapes for `/get-online-features`, `/push` and `/materialize`: request bodies
//! decoded into the feature store's typed requests, typed answers encoded the way Feast's
//! feature server writes them (`metadata.feature_names`, one `results` entry per column with
//! `values`, `statuses` and `event_timestamps`).

use base64::Engine;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::{Value as Json, json};
use twinloop_core::{Error, Result};
use twinloop_features::materialize::Materialized;
use twinloop_features::repo::DType;
use twinloop_features::serving::{
    FeatureSelection, FeatureStatus, OnlineFeatures, OnlineQuery, PushOutcome, PushTarget, PushTo,
};
use twinloop_features::time::{epoch_seconds_micros, format_micros, parse_timestamp};
use twinloop_features::value::{SentColumn, Value};

/// One column of a request as JSON values, typed on demand: `"1001"` is accepted for an
/// integer, numbers and `"NaN"` for a float, base64 for bytes, RFC 3339 or epoch seconds for a
/// timestamp.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct JsonColumn(pub Vec<Json>);

impl SentColumn for JsonColumn {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn typed(&self, name: &str, dtype: DType) -> Result<Vec<Value>> {
        self.0
            .iter()
            .enumerate()
            .map(|(row, v)| {
                value_from_json(dtype, v).ok_or_else(|| {
                    Error::invalid(format!(
                        "column {name:?} row {row}: {v} is not a valid {dtype} value"
                    ))
                })
            })
            .collect()
    }
}

/// JSON object fields in the order they were sent (Feast answers join keys in request order).
#[derive(Debug, Default)]
pub struct OrderedColumns(pub Vec<(String, JsonColumn)>);

impl<'de> Deserialize<'de> for OrderedColumns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Columns;
        impl<'de> Visitor<'de> for Columns {
            type Value = OrderedColumns;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column name → list of values")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedColumns, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, JsonColumn>()? {
                    out.push((k, v));
                }
                Ok(OrderedColumns(out))
            }
        }
        d.deserialize_map(Columns)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineRequest {
    #[serde(default)]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub feature_service: Option<String>,
    pub entities: OrderedColumns,
    #[serde(default)]
    pub full_feature_names: bool,
    /// Accepted for Feast compatibility; versions are not reported per row.
    #[serde(default)]
    pub include_feature_view_version_metadata: bool,
}

impl OnlineRequest {
    /// Entity rows asked for (the first column's length).
    pub fn rows(&self) -> usize {
        self.entities.0.first().map_or(0, |(_, v)| v.len())
    }

    pub fn into_query(self) -> Result<OnlineQuery<JsonColumn>> {
        let features = match (self.features, self.feature_service) {
            (Some(features), None) => FeatureSelection::Refs(features),
            (None, Some(service)) => FeatureSelection::Service(service),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "send either `features` or `feature_service`, not both",
                ));
            }
            (None, None) => return Err(Error::invalid("send `features` or `feature_service`")),
        };
        Ok(OnlineQuery {
            features,
            entities: self.entities.0,
            full_feature_names: self.full_feature_names,
        })
    }
}

/// Feast's answer: every entity column sent (join keys typed as the views read them, other
/// columns echoed), then the features.
pub fn online_response(query: &OnlineQuery<JsonColumn>, answer: &OnlineFeatures) -> Json {
    let epoch = format_micros(0);
    let rows = answer.rows;
    let mut names: Vec<&str> = Vec::new();
    let mut results = Vec::new();
    for (name, sent) in &query.entities {
        let values: Vec<Json> = match answer.keys.iter().find(|(k, _)| k == name) {
            Some((_, typed)) => typed.iter().map(value_json).collect(),
            None => sent.0.clone(),
        };
        names.push(name);
        results.push(json!({
            "values": values,
            "statuses": vec!["PRESENT"; rows],
            "event_timestamps": vec![epoch.as_str(); rows],
        }));
    }
    for column in &answer.features {
        names.push(&column.name);
        let values: Vec<Json> = column.values.iter().map(value_json).collect();
        let statuses: Vec<&str> = column.statuses.iter().map(|s| status_name(*s)).collect();
        let times: Vec<String> = column.event_ts.iter().map(|t| format_micros(*t)).collect();
        results.push(json!({"values": values, "statuses": statuses, "event_timestamps": times}));
    }
    json!({"metadata": {"feature_names": names}, "results": results})
}

pub fn status_name(status: FeatureStatus) -> &'static str {
    match status {
        FeatureStatus::Present => "PRESENT",
        FeatureStatus::NotFound => "NOT_FOUND",
        FeatureStatus::NullValue => "NULL_VALUE",
        FeatureStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    #[serde(default)]
    pub push_source_name: Option<String>,
    /// twinloop's extension: push to one view instead of every view of a source.
    #[serde(default)]
    pub feature_view: Option<String>,
    pub df: OrderedColumns,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub allow_registry_cache: Option<bool>,
}

impl PushRequest {
    pub fn into_request(self) -> Result<twinloop_features::serving::PushRequest<JsonColumn>> {
        let to = match self.to.as_deref().unwrap_or("online") {
            "online" => PushTo::Online,
            "offline" => PushTo::Offline,
            "online_and_offline" => PushTo::OnlineAndOffline,
            other => {
                return Err(Error::invalid(format!(
                    "`to` must be online, offline or online_and_offline, not {other:?}"
                )));
            }
        };
        let target = match (self.feature_view, self.push_source_name) {
            (Some(view), _) => PushTarget::View(view),
            (None, Some(source)) => PushTarget::Source(source),
            (None, None) => {
                return Err(Error::invalid(
                    "send `push_source_name` (a source) or `feature_view`",
                ));
            }
        };
        Ok(twinloop_features::serving::PushRequest {
            target,
            to,
            df: self.df.0,
        })
    }
}

pub fn push_response(outcome: &PushOutcome) -> Json {
    json!({"rows": outcome.rows, "written": outcome.written, "feature_views": outcome.views})
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterializeRequest {
    #[serde(default)]
    pub start_ts: Option<String>,
    pub end_ts: String,
    #[serde(default)]
    pub feature_views: Vec<String>,
}

pub fn materialize_response(done: &[Materialized]) -> Json {
    json!({
        "materialized": done.iter().map(|m| json!({
            "feature_view": m.view, "source_rows": m.source_rows, "entities": m.entities,
            "written": m.written, "seconds": m.seconds,
        })).collect::<Vec<_>>()
    })
}

/// Feast's JSON of a value: numbers as numbers (float32 widened), NaN/±inf as strings, bytes in
/// base64, timestamps in RFC 3339.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int32(v) => Json::from(*v),
        Value::Int64(v) => Json::from(*v),
        Value::Float32(v) => float_json(f64::from(*v)),
        Value::Float64(v) => float_json(*v),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Timestamp(t) => Json::String(format_micros(*t)),
    }
}

fn float_json(v: f64) -> Json {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "Infinity".into()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        Json::from(v)
    }
}

/// A sent JSON value as `dtype`; `None` when it is not one.
fn value_from_json(dtype: DType, v: &Json) -> Option<Value> {
    if v.is_null() {
        return Some(Value::Null);
    }
    Some(match dtype {
        DType::Bool => Value::Bool(v.as_bool()?),
        DType::Int32 => Value::Int32(i32::try_from(json_i64(v)?).ok()?),
        DType::Int64 => Value::Int64(json_i64(v)?),
        DType::Float32 => Value::Float32(json_f64(v)? as f32),
        DType::Float64 => Value::Float64(json_f64(v)?),
        DType::String => Value::String(v.as_str()?.to_string()),
        DType::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str()?)
                .ok()?,
        ),
        DType::Timestamp => Value::Timestamp(json_timestamp(v)?),
    })
}

fn json_i64(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.trim().parse().ok(),
        },
        _ => None,
    }
}

/// RFC 3339 text (no zone = UTC) or epoch seconds.
fn json_timestamp(v: &Json) -> Option<i64> {
    match v {
        Json::String(s) => parse_timestamp(s).ok(),
        Json::Number(n) => n.as_f64().and_then(epoch_seconds_micros),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinloop_features::serving::FeatureColumn;

    #[test]
    fn json_matches_feast() {
        assert_eq!(value_json(&Value::Float32(264.6)), json!(264.6000061035156));
        assert_eq!(value_json(&Value::Float64(f64::NAN)), json!("NaN"));
        assert_eq!(value_json(&Value::Int64(22)), json!(22));
        assert_eq!(value_json(&Value::Bytes(b"hi".to_vec())), json!("aGk="));
        assert_eq!(
            value_json(&Value::Timestamp(1_704_668_400_000_000)),
            json!("2024-01-07T23:00:00Z")
        );
    }

    #[test]
    fn json_columns_accept_numeric_strings_and_name_bad_rows() {
        let column = JsonColumn(vec![json!("1001"), json!(5), Json::Null]);
        assert_eq!(
            column.typed("driver_id", DType::Int64).unwrap(),
            [Value::Int64(1001), Value::Int64(5), Value::Null]
        );
        let err = JsonColumn(vec![json!(1), json!("x")])
            .typed("driver_id", DType::Int64)
            .unwrap_err();
        assert!(
            err.message.contains("\"driver_id\" row 1"),
            "{}",
            err.message
        );
        let floats = JsonColumn(vec![json!("NaN"), json!(2)]);
        let typed = floats.typed("v", DType::Float64).unwrap();
        assert!(matches!(typed[0], Value::Float64(v) if v.is_nan()));
        assert_eq!(
            JsonColumn(vec![json!("aGk="), json!(0)])
                .typed("b", DType::Bytes)
                .unwrap_err()
                .message,
            "column \"b\" row 1: 0 is not a valid bytes value"
        );
    }

    #[test]
    fn answers_echo_entities_in_request_order_then_features() {
        let request: OnlineRequest = serde_json::from_value(json!({
            "features": ["v:x"],
            "entities": {"driver_id": ["1", 2], "note": ["a", null]},
        }))
        .unwrap();
        let query = request.into_query().unwrap();
        let answer = OnlineFeatures {
            rows: 2,
            keys: vec![("driver_id".into(), vec![Value::Int64(1), Value::Int64(2)])],
            features: vec![FeatureColumn {
                name: "x".into(),
                values: vec![Value::Float64(1.5), Value::Null],
                statuses: vec![FeatureStatus::Present, FeatureStatus::NotFound],
                event_ts: vec![1_704_668_400_000_000, 0],
            }],
        };
        assert_eq!(
            online_response(&query, &answer),
            json!({
                "metadata": {"feature_names": ["driver_id", "note", "x"]},
                "results": [
                    {"values": [1, 2], "statuses": ["PRESENT", "PRESENT"],
                     "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
                    {"values": ["a", null], "statuses": ["PRESENT", "PRESENT"],
                     "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
                    {"values": [1.5, null], "statuses": ["PRESENT", "NOT_FOUND"],
                     "event_timestamps": ["2024-01-07T23:00:00Z", "1970-01-01T00:00:00Z"]},
                ],
            })
        );
    }

    #[test]
    fn requests_name_one_selection_and_a_known_destination() {
        let online = |body: Json| {
            serde_json::from_value::<OnlineRequest>(body)
                .unwrap()
                .into_query()
                .unwrap_err()
                .message
        };
        assert!(online(json!({"entities": {}})).contains("send `features`"));
        assert!(
            online(json!({"features": [], "feature_service": "s", "entities": {}}))
                .contains("not both")
        );
        let push = |body: Json| {
            serde_json::from_value::<PushRequest>(body)
                .unwrap()
                .into_request()
                .map(|r| (r.target, r.to))
        };
        assert_eq!(
            push(json!({"feature_view": "v", "push_source_name": "s", "df": {}})).unwrap(),
            (PushTarget::View("v".into()), PushTo::Online)
        );
        assert!(
            push(json!({"push_source_name": "s", "df": {}, "to": "disk"}))
                .unwrap_err()
                .message
                .contains("not \"disk\"")
        );
        assert!(push(json!({"df": {}})).is_err());
    }
}
