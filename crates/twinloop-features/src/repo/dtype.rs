//! Feature value types and how they map onto Arrow.

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
    Timestamp,
}

impl DType {
    pub fn arrow(self) -> DataType {
        match self {
            DType::Bool => DataType::Boolean,
            DType::Int32 => DataType::Int32,
            DType::Int64 => DataType::Int64,
            DType::Float32 => DataType::Float32,
            DType::Float64 => DataType::Float64,
            DType::String => DataType::Utf8,
            DType::Bytes => DataType::Binary,
            DType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::String => "string",
            DType::Bytes => "bytes",
            DType::Timestamp => "timestamp",
        }
    }

    /// Whether a source column of type `source` can feed this feature without losing
    /// information: the same type, or a lossless widening (int32 → int64, float32 → float64).
    pub fn accepts(self, source: &DataType) -> bool {
        match self {
            DType::Bool => matches!(source, DataType::Boolean),
            DType::Int32 => matches!(source, DataType::Int8 | DataType::Int16 | DataType::Int32),
            DType::Int64 => matches!(
                source,
                DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32
            ),
            DType::Float32 => matches!(source, DataType::Float16 | DataType::Float32),
            DType::Float64 => matches!(
                source,
                DataType::Float16 | DataType::Float32 | DataType::Float64
            ),
            DType::String => matches!(
                source,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            DType::Bytes => matches!(
                source,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            ),
            DType::Timestamp => matches!(source, DataType::Timestamp(_, _) | DataType::Date32),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_accepted_narrowing_is_not() {
        assert!(DType::Int64.accepts(&DataType::Int32));
        assert!(!DType::Int32.accepts(&DataType::Int64));
        assert!(DType::Float64.accepts(&DataType::Float32));
        assert!(!DType::Float32.accepts(&DataType::Float64));
        assert!(!DType::Float32.accepts(&DataType::Utf8));
        assert!(DType::String.accepts(&DataType::Utf8View));
    }
}
