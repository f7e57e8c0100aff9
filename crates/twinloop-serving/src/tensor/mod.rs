//! Typed tensors: what the runtime, the engine, the batcher and the prediction log pass around.
//! How a protocol spells them on the wire is the fronts' business (`twinloop-v2`).

mod datatype;

use serde_json::Value;

pub use datatype::{Datatype, UnknownDatatype};

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    /// IEEE half floats, kept as their bits.
    Fp16(Vec<u16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// The most elements one tensor may hold, in a request or in an answer. The fronts take their
/// body limit from it (64 MiB): the densest encoding (BOOL, INT8 or UINT8 as binary data, packed
/// bools in gRPC) spends one byte per element, so no body that is accepted can back more.
pub const MAX_ELEMENTS: usize = 64 * 1024 * 1024;

/// At most this many dimensions are written into an error message: the shape is the client's,
/// and a message should not grow with it.
const SHOWN_DIMENSIONS: usize = 8;

/// `shape` for an error message, cut after [`SHOWN_DIMENSIONS`] dimensions.
pub fn show_shape(shape: &[i64]) -> String {
    if shape.len() <= SHOWN_DIMENSIONS {
        return format!("{shape:?}");
    }
    let head: Vec<String> = shape[..SHOWN_DIMENSIONS]
        .iter()
        .map(ToString::to_string)
        .collect();
    format!("[{}, … ({} dimensions)]", head.join(", "), shape.len())
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Bool(_) => Datatype::Bool,
            TensorData::Uint8(_) => Datatype::Uint8,
            TensorData::Uint16(_) => Datatype::Uint16,
            TensorData::Uint32(_) => Datatype::Uint32,
            TensorData::Uint64(_) => Datatype::Uint64,
            TensorData::Int8(_) => Datatype::Int8,
            TensorData::Int16(_) => Datatype::Int16,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Fp16(_) => Datatype::Fp16,
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Uint8(v) => v.len(),
            TensorData::Uint16(v) | TensorData::Fp16(v) => v.len(),
            TensorData::Uint32(v) => v.len(),
            TensorData::Uint64(v) => v.len(),
            TensorData::Int8(v) => v.len(),
            TensorData::Int16(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as JSON values, flat; non-finite floats as `"NaN"`/`"Infinity"`/
    /// `"-Infinity"`. One form for every reader of elements as values: the prediction log's
    /// `inputs`/`outputs` columns, sticky keys, feature enrichment's entity keys and the V2 JSON
    /// body all spell an element alike.
    pub fn to_json(&self) -> Vec<Value> {
        fn float(f: f64) -> Value {
            if f.is_nan() {
                "NaN".into()
            } else if f.is_infinite() {
                if f > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                }
            } else {
                Value::from(f)
            }
        }
        match self {
            TensorData::Bool(v) => v.iter().map(|&b| Value::Bool(b)).collect(),
            TensorData::Uint8(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Uint16(v) | TensorData::Fp16(v) => {
                v.iter().map(|&x| Value::from(x)).collect()
            }
            TensorData::Uint32(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Uint64(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Int8(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Int16(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Int32(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Int64(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Fp32(v) => v.iter().map(|&x| float(f64::from(x))).collect(),
            TensorData::Fp64(v) => v.iter().map(|&x| float(x)).collect(),
            TensorData::Bytes(v) => v
                .iter()
                .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                .collect(),
        }
    }
}

macro_rules! each_variant {
    ($self:expr, $v:ident => $body:expr) => {
        match $self {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::Uint8($v) => TensorData::Uint8($body),
            TensorData::Uint16($v) => TensorData::Uint16($body),
            TensorData::Uint32($v) => TensorData::Uint32($body),
            TensorData::Uint64($v) => TensorData::Uint64($body),
            TensorData::Int8($v) => TensorData::Int8($body),
            TensorData::Int16($v) => TensorData::Int16($body),
            TensorData::Int32($v) => TensorData::Int32($body),
            TensorData::Int64($v) => TensorData::Int64($body),
            TensorData::Fp16($v) => TensorData::Fp16($body),
            TensorData::Fp32($v) => TensorData::Fp32($body),
            TensorData::Fp64($v) => TensorData::Fp64($body),
            TensorData::Bytes($v) => TensorData::Bytes($body),
        }
    };
}

impl TensorData {
    /// Elements `start..end` as a tensor of the same type.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        each_variant!(self, v => v[start..end].to_vec())
    }

    /// Appends `other`'s elements; false (and nothing appended) when the types differ.
    pub fn append(&mut self, other: TensorData) -> bool {
        macro_rules! join {
            ($($variant:ident),+) => {
                match (self, other) {
                    $((TensorData::$variant(a), TensorData::$variant(b)) => { a.extend(b); true })+
                    _ => false,
                }
            };
        }
        join!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_finite_floats_are_spelled_as_strings() {
        let data = TensorData::Fp32(vec![0.5, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        assert_eq!(
            data.to_json(),
            [
                json!(0.5),
                json!("NaN"),
                json!("Infinity"),
                json!("-Infinity")
            ]
        );
    }

    #[test]
    fn long_shapes_are_cut_short_in_messages() {
        assert_eq!(show_shape(&[1, 2]), "[1, 2]");
        assert_eq!(
            show_shape(&[-1; 1_000_000]),
            "[-1, -1, -1, -1, -1, -1, -1, -1, … (1000000 dimensions)]"
        );
    }

    #[test]
    fn slices_append_back_to_the_whole() {
        let whole = TensorData::Int64(vec![1, 2, 3]);
        let mut head = whole.slice(0, 1);
        assert!(head.append(whole.slice(1, 3)));
        assert_eq!(head, whole);
        assert!(!head.append(TensorData::Bool(vec![true])));
    }
}
