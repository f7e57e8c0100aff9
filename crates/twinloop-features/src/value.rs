//! Single feature values: read out of Arrow columns, stored online, and written as JSON the
//! way Feast's feature server writes them.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use base64::Engine;
use serde::{Deserialize, Serialize};
use twinloop_core::{Error, Result};

use crate::repo::DType;
use crate::time::format_micros;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
}

impl Value {
    /// Reads row `row` of a column already cast to `dtype.arrow()`.
    pub fn from_array(column: &ArrayRef, row: usize, dtype: DType) -> Value {
        if column.is_null(row) {
            return Value::Null;
        }
        match dtype {
            DType::Bool => Value::Bool(column.as_boolean().value(row)),
            DType::Int32 => Value::Int32(column.as_primitive::<Int32Type>().value(row)),
            DType::Int64 => Value::Int64(column.as_primitive::<Int64Type>().value(row)),
            DType::Float32 => Value::Float32(column.as_primitive::<Float32Type>().value(row)),
            DType::Float64 => Value::Float64(column.as_primitive::<Float64Type>().value(row)),
            DType::String => Value::String(column.as_string::<i32>().value(row).to_string()),
            DType::Bytes => Value::Bytes(column.as_binary::<i32>().value(row).to_vec()),
            DType::Timestamp => {
                Value::Timestamp(column.as_primitive::<TimestampMicrosecondType>().value(row))
            }
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Feast's JSON: numbers as numbers (float32 widened), NaN/±inf as strings, bytes in
    /// base64, timestamps in RFC 3339.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int32(v) => J::from(*v),
            Value::Int64(v) => J::from(*v),
            Value::Float32(v) => float_json(f64::from(*v)),
            Value::Float64(v) => float_json(*v),
            Value::String(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Timestamp(t) => J::String(format_micros(*t)),
        }
    }
}

fn float_json(v: f64) -> serde_json::Value {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "Infinity".into()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        serde_json::Value::from(v)
    }
}

/// Builds an Arrow column of `dtype` from JSON values (a pushed column or request keys);
/// `"1001"` is accepted for an integer, numbers and `"NaN"` for a float. Errors name the column
/// and the row.
pub fn array_from_json(name: &str, dtype: DType, values: &[serde_json::Value]) -> Result<ArrayRef> {
    use serde_json::Value as J;
    let bad = |row: usize, v: &J| {
        Error::invalid(format!(
            "column {name:?} row {row}: {v} is not a valid {dtype} value"
        ))
    };
    macro_rules! build {
        ($builder:expr, $convert:expr) => {{
            let mut builder = $builder;
            for (row, v) in values.iter().enumerate() {
                if v.is_null() {
                    builder.append_null();
                } else {
                    let convert = $convert;
                    builder.append_value(convert(v).ok_or_else(|| bad(row, v))?);
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    Ok(match dtype {
        DType::Bool => build!(BooleanBuilder::new(), |v: &J| v.as_bool()),
        DType::Int32 => build!(Int32Builder::new(), |v: &J| json_i64(v)
            .and_then(|n| i32::try_from(n).ok())),
        DType::Int64 => build!(Int64Builder::new(), json_i64),
        DType::Float32 => build!(Float32Builder::new(), |v: &J| json_f64(v).map(|f| f as f32)),
        DType::Float64 => build!(Float64Builder::new(), json_f64),
        DType::String => build!(StringBuilder::new(), |v: &J| v.as_str().map(String::from)),
        DType::Bytes => build!(BinaryBuilder::new(), |v: &J| v
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())),
        DType::Timestamp => {
            let mut builder = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            for (row, v) in values.iter().enumerate() {
                if v.is_null() {
                    builder.append_null();
                } else {
                    builder.append_value(json_timestamp(v).ok_or_else(|| bad(row, v))?);
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }
    })
}

fn json_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_f64(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.trim().parse().ok(),
        },
        _ => None,
    }
}

/// RFC 3339 text (no zone = UTC) or epoch seconds.
fn json_timestamp(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => crate::time::parse_timestamp(s).ok(),
        serde_json::Value::Number(n) => n.as_f64().map(|s| (s * 1e6).round() as i64),
        _ => None,
    }
}

/// Row → values for the columns of a batch, used when writing online rows.
pub fn row_values(columns: &[(ArrayRef, DType)], row: usize) -> Vec<Value> {
    columns
        .iter()
        .map(|(column, dtype)| Value::from_array(column, row, *dtype))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_feast() {
        assert_eq!(
            Value::Float32(264.6).to_json(),
            serde_json::json!(264.6000061035156)
        );
        assert_eq!(Value::Float64(f64::NAN).to_json(), serde_json::json!("NaN"));
        assert_eq!(Value::Int64(22).to_json(), serde_json::json!(22));
        assert_eq!(
            Value::Bytes(b"hi".to_vec()).to_json(),
            serde_json::json!("aGk=")
        );
        assert_eq!(
            Value::Timestamp(1_704_668_400_000_000).to_json(),
            serde_json::json!("2024-01-07T23:00:00Z")
        );
    }

    #[test]
    fn json_columns_accept_numeric_strings_and_name_bad_rows() {
        let column = array_from_json(
            "driver_id",
            DType::Int64,
            &[serde_json::json!("1001"), serde_json::json!(5)],
        )
        .unwrap();
        assert_eq!(column.as_primitive::<Int64Type>().values(), &[1001, 5]);
        let err = array_from_json(
            "driver_id",
            DType::Int64,
            &[serde_json::json!(1), serde_json::json!("x")],
        )
        .unwrap_err();
        assert!(
            err.message.contains("\"driver_id\" row 1"),
            "{}",
            err.message
        );
    }
}
