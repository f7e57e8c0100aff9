//! Single feature values: read out of Arrow columns, stored online, and built back into columns
//! from what clients send (a front decodes its wire format into a [`SentColumn`]).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};
use twinloop_core::{Error, Result};

use crate::repo::DType;

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

    /// Whether the value can stand in a column of `dtype` (null fits every column).
    fn fits(&self, dtype: DType) -> bool {
        matches!(
            (self, dtype),
            (Value::Null, _)
                | (Value::Bool(_), DType::Bool)
                | (Value::Int32(_), DType::Int32)
                | (Value::Int64(_), DType::Int64)
                | (Value::Float32(_), DType::Float32)
                | (Value::Float64(_), DType::Float64)
                | (Value::String(_), DType::String)
                | (Value::Bytes(_), DType::Bytes)
                | (Value::Timestamp(_), DType::Timestamp)
        )
    }
}

/// A column of values as a client sent them (entity keys, pushed rows), in whatever wire format
/// its front decoded. Only the library knows each column's type (from the view's source), so it
/// asks the column for its values once it does, and the front keeps its own coercion rules.
pub trait SentColumn {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as `dtype`; the error names the column `name` and the row that is not one.
    fn typed(&self, name: &str, dtype: DType) -> Result<Vec<Value>>;
}

/// Typed values sent by Rust callers: each must already be of the column's type (or null).
impl SentColumn for Vec<Value> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn typed(&self, name: &str, dtype: DType) -> Result<Vec<Value>> {
        if let Some((row, v)) = self.iter().enumerate().find(|(_, v)| !v.fits(dtype)) {
            return Err(Error::invalid(format!(
                "column {name:?} row {row}: {v:?} is not a valid {dtype} value"
            )));
        }
        Ok(self.clone())
    }
}

/// An Arrow column of `dtype` from values of that type (nulls allowed).
pub fn array_from_values(name: &str, dtype: DType, values: &[Value]) -> Result<ArrayRef> {
    let bad = |row: usize, v: &Value| {
        Error::internal(format!(
            "column {name:?} row {row}: {v:?} is not a {dtype} value"
        ))
    };
    // Copy payloads are matched out of `*v`, the others by reference.
    macro_rules! build {
        ($builder:expr, $variant:ident, copy) => {
            build!($builder, $variant, *)
        };
        ($builder:expr, $variant:ident, ref) => {
            build!($builder, $variant,)
        };
        ($builder:expr, $variant:ident, $($deref:tt)?) => {{
            let mut builder = $builder;
            for (row, v) in values.iter().enumerate() {
                match $($deref)? v {
                    Value::Null => builder.append_null(),
                    Value::$variant(x) => builder.append_value(x),
                    _ => return Err(bad(row, v)),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    Ok(match dtype {
        DType::Bool => build!(BooleanBuilder::new(), Bool, copy),
        DType::Int32 => build!(Int32Builder::new(), Int32, copy),
        DType::Int64 => build!(Int64Builder::new(), Int64, copy),
        DType::Float32 => build!(Float32Builder::new(), Float32, copy),
        DType::Float64 => build!(Float64Builder::new(), Float64, copy),
        DType::String => build!(StringBuilder::new(), String, ref),
        DType::Bytes => build!(BinaryBuilder::new(), Bytes, ref),
        DType::Timestamp => build!(
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            Timestamp,
            copy
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_build_columns_and_name_bad_rows() {
        let sent = vec![Value::Int64(1001), Value::Null];
        let values = sent.typed("driver_id", DType::Int64).unwrap();
        let column = array_from_values("driver_id", DType::Int64, &values).unwrap();
        assert_eq!(column.as_primitive::<Int64Type>().value(0), 1001);
        assert!(column.is_null(1));
        let err = vec![Value::Int64(1), Value::String("x".into())]
            .typed("driver_id", DType::Int64)
            .unwrap_err();
        assert!(
            err.message.contains("\"driver_id\" row 1"),
            "{}",
            err.message
        );
        let ts = array_from_values("t", DType::Timestamp, &[Value::Timestamp(5)]).unwrap();
        assert_eq!(
            Value::from_array(&ts, 0, DType::Timestamp),
            Value::Timestamp(5)
        );
    }
}
