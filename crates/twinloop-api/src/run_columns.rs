//! Wire types of the runs table's columns: metric summaries (`GET /metrics/summaries`) and an
//! experiment's keys (`GET /experiments/{id}/keys`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A metric value. JSON numbers cannot be NaN or infinite, so those travel as the strings
/// `"NaN"`, `"Infinity"` and `"-Infinity"` (which JavaScript's `Number()` reads back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue(pub f64);

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for MetricValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MetricValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MetricValue, E> {
                Ok(MetricValue(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MetricValue, E> {
                Ok(MetricValue(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MetricValue, E> {
                Ok(MetricValue(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MetricValue, E> {
                match v {
                    "NaN" => Ok(MetricValue(f64::NAN)),
                    "Infinity" => Ok(MetricValue(f64::INFINITY)),
                    "-Infinity" => Ok(MetricValue(f64::NEG_INFINITY)),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One metric of one run: `min` and `max` over its non-NaN points (null while every point is
/// NaN), `count` of all points, and the latest point (`last`, MLflow's latest value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub count: i64,
    pub key: String,
    pub last: MetricValue,
    pub last_step: i64,
    pub last_timestamp: i64,
    pub max: Option<MetricValue>,
    pub min: Option<MetricValue>,
}

/// A run's summaries, by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummaries {
    pub metrics: Vec<MetricSummary>,
    pub run_id: String,
}

/// The answer of `GET /metrics/summaries`: each run asked for once, in the order asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummaries {
    pub runs: Vec<RunSummaries>,
}

/// A key and how many of the experiment's runs have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub key: String,
    pub runs: i64,
}

/// The answer of `GET /experiments/{id}/keys`: most used first, and how many matched in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentKeys {
    pub keys: Vec<KeyCount>,
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn summaries_round_trip_with_non_finite_values() {
        round_trips::<MetricSummaries>(
            r#"{"runs":[{"metrics":[{"count":3,"key":"loss","last":0.25,"last_step":2,"last_timestamp":1764300000000,"max":"Infinity","min":-1.5},{"count":1,"key":"nan","last":"NaN","last_step":0,"last_timestamp":1,"max":null,"min":null}],"run_id":"0123456789abcdef0123456789abcdef"},{"metrics":[],"run_id":"ffffffffffffffffffffffffffffffff"}]}"#,
        );
        let v: MetricValue = serde_json::from_str("\"-Infinity\"").unwrap();
        assert_eq!(v.0, f64::NEG_INFINITY);
        assert!(serde_json::from_str::<MetricValue>("\"inf\"").is_err());
    }

    #[test]
    fn keys_round_trip() {
        round_trips::<ExperimentKeys>(
            r#"{"keys":[{"key":"loss","runs":12},{"key":"val/acc","runs":3}],"total":40}"#,
        );
    }
}
