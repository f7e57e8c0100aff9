//! Tensor data's two wire encodings: JSON elements in, and little-endian bytes (the binary
//! extension, gRPC's raw contents) both ways. Every shape is a client's claim, checked here
//! before anything is sized from it.

use serde_json::Value;
use twinloop_serving::tensor::{Datatype, MAX_ELEMENTS, TensorData, show_shape};

use crate::{ProtocolError, Result};

/// The number of elements `shape` holds. Negative dimensions are refused, and so is a shape
/// whose non-zero dimensions multiply past [`MAX_ELEMENTS`], even when another dimension is 0:
/// the shape travels on to ONNX Runtime, whose own product of it must not overflow either.
pub fn element_count(name: &str, shape: &[i64]) -> Result<usize> {
    let mut product = 1usize;
    let mut empty = false;
    for &d in shape {
        let d = usize::try_from(d).map_err(|_| {
            ProtocolError::new(format!(
                "input {name:?}: shape {} has a negative dimension",
                show_shape(shape)
            ))
        })?;
        if d == 0 {
            empty = true;
            continue;
        }
        product = product
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| {
                ProtocolError::new(format!(
                    "input {name:?}: shape {} is too large: a tensor may hold at most {MAX_ELEMENTS} elements",
                    show_shape(shape)
                ))
            })?;
    }
    Ok(if empty { 0 } else { product })
}

macro_rules! from_numbers {
    ($values:expr, $name:expr, $dt:expr, $variant:ident, $convert:expr) => {{
        let values = $values.into_iter();
        // The lower bound is the count of elements already parsed, never a declared one.
        let mut out = Vec::with_capacity(values.size_hint().0);
        for (i, v) in values.enumerate() {
            let convert = $convert;
            out.push(convert(v).ok_or_else(|| bad_element($name, $dt, i, v))?);
        }
        TensorData::$variant(out)
    }};
}

fn bad_element(name: &str, datatype: Datatype, index: usize, value: &Value) -> ProtocolError {
    ProtocolError::new(format!(
        "input {name:?}: element {index} is {value}, not a valid {datatype} value"
    ))
}

fn int<T: TryFrom<i64>>(v: &Value) -> Option<T> {
    v.as_i64().and_then(|n| T::try_from(n).ok())
}

fn uint<T: TryFrom<u64>>(v: &Value) -> Option<T> {
    v.as_u64().and_then(|n| T::try_from(n).ok())
}

/// JSON floats: numbers, and the strings Triton writes for non-finite values.
fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// The wire encodings of [`TensorData`], which is serving's type: in scope, they read as
/// `TensorData::from_json(…)` and `data.to_le_bytes()`.
pub trait ElementCodec: Sized {
    /// From flattened JSON elements; each must fit the datatype (BYTES elements are strings).
    fn from_json<'a>(
        name: &str,
        datatype: Datatype,
        values: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Self>;

    /// Little-endian, row-major, no padding; BYTES elements as a 4-byte length and the bytes.
    fn to_le_bytes(&self) -> Vec<u8>;

    /// The inverse of [`ElementCodec::to_le_bytes`], for `count` elements; the byte length must
    /// match exactly. Nothing is reserved for `count` until the bytes are known to hold it.
    fn from_le_bytes(name: &str, datatype: Datatype, count: usize, bytes: &[u8]) -> Result<Self>;
}

impl ElementCodec for TensorData {
    fn from_json<'a>(
        name: &str,
        datatype: Datatype,
        values: impl IntoIterator<Item = &'a Value>,
    ) -> Result<TensorData> {
        let dt = datatype;
        Ok(match datatype {
            Datatype::Bool => from_numbers!(values, name, dt, Bool, |v: &Value| v.as_bool()),
            Datatype::Uint8 => from_numbers!(values, name, dt, Uint8, uint::<u8>),
            Datatype::Uint16 => from_numbers!(values, name, dt, Uint16, uint::<u16>),
            Datatype::Uint32 => from_numbers!(values, name, dt, Uint32, uint::<u32>),
            Datatype::Uint64 => from_numbers!(values, name, dt, Uint64, uint::<u64>),
            Datatype::Int8 => from_numbers!(values, name, dt, Int8, int::<i8>),
            Datatype::Int16 => from_numbers!(values, name, dt, Int16, int::<i16>),
            Datatype::Int32 => from_numbers!(values, name, dt, Int32, int::<i32>),
            Datatype::Int64 => from_numbers!(values, name, dt, Int64, int::<i64>),
            Datatype::Fp16 => {
                return Err(ProtocolError::new(format!(
                    "input {name:?}: FP16 travels only as binary data"
                )));
            }
            Datatype::Fp32 => from_numbers!(values, name, dt, Fp32, |v: &Value| float(v)
                .map(|f| f as f32)),
            Datatype::Fp64 => from_numbers!(values, name, dt, Fp64, float),
            Datatype::Bytes => from_numbers!(values, name, dt, Bytes, |v: &Value| v
                .as_str()
                .map(|s| s.as_bytes().to_vec())),
        })
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        macro_rules! le {
            ($v:expr) => {
                $v.iter().flat_map(|x| x.to_le_bytes()).collect()
            };
        }
        match self {
            TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
            TensorData::Uint8(v) => v.clone(),
            TensorData::Uint16(v) | TensorData::Fp16(v) => le!(v),
            TensorData::Uint32(v) => le!(v),
            TensorData::Uint64(v) => le!(v),
            TensorData::Int8(v) => le!(v),
            TensorData::Int16(v) => le!(v),
            TensorData::Int32(v) => le!(v),
            TensorData::Int64(v) => le!(v),
            TensorData::Fp32(v) => le!(v),
            TensorData::Fp64(v) => le!(v),
            TensorData::Bytes(v) => {
                let mut out = Vec::new();
                for b in v {
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(b);
                }
                out
            }
        }
    }

    fn from_le_bytes(
        name: &str,
        datatype: Datatype,
        count: usize,
        bytes: &[u8],
    ) -> Result<TensorData> {
        let Some(size) = datatype.size() else {
            return bytes_elements(name, count, bytes);
        };
        let want = count.checked_mul(size);
        if want != Some(bytes.len()) {
            let want = want.map_or_else(|| "more than fit in memory".into(), |w| w.to_string());
            return Err(ProtocolError::new(format!(
                "input {name:?}: binary data holds {} bytes, but {count} {datatype} elements need {want}",
                bytes.len()
            )));
        }
        macro_rules! le {
            ($variant:ident, $t:ty) => {
                TensorData::$variant(
                    bytes
                        .chunks_exact(std::mem::size_of::<$t>())
                        .filter_map(|c| c.try_into().ok())
                        .map(<$t>::from_le_bytes)
                        .collect(),
                )
            };
        }
        Ok(match datatype {
            Datatype::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
            Datatype::Uint8 => TensorData::Uint8(bytes.to_vec()),
            Datatype::Uint16 => le!(Uint16, u16),
            Datatype::Uint32 => le!(Uint32, u32),
            Datatype::Uint64 => le!(Uint64, u64),
            Datatype::Int8 => le!(Int8, i8),
            Datatype::Int16 => le!(Int16, i16),
            Datatype::Int32 => le!(Int32, i32),
            Datatype::Int64 => le!(Int64, i64),
            Datatype::Fp16 => le!(Fp16, u16),
            Datatype::Fp32 => le!(Fp32, f32),
            Datatype::Fp64 => le!(Fp64, f64),
            Datatype::Bytes => return bytes_elements(name, count, bytes),
        })
    }
}

/// BYTES elements in binary: each a 4-byte little-endian length and that many bytes.
fn bytes_elements(name: &str, count: usize, bytes: &[u8]) -> Result<TensorData> {
    // Every element spends at least its length prefix, so the bytes received bound the count
    // before anything is reserved for it.
    if count > bytes.len() / 4 {
        return Err(ProtocolError::new(format!(
            "input {name:?}: binary data holds {} bytes, too few for {count} BYTES elements \
             (each has a 4-byte length prefix)",
            bytes.len()
        )));
    }
    let mut out = Vec::with_capacity(count);
    let mut rest = bytes;
    while out.len() < count {
        let i = out.len();
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            return Err(ProtocolError::new(format!(
                "input {name:?}: binary BYTES element {i} is truncated: {} bytes left where its \
                 4-byte length prefix belongs",
                rest.len()
            )));
        };
        let len = usize::try_from(u32::from_le_bytes(*prefix)).unwrap_or(usize::MAX);
        let Some(element) = tail.get(..len) else {
            return Err(ProtocolError::new(format!(
                "input {name:?}: binary BYTES element {i} is truncated: its length prefix says \
                 {len} bytes, {} remain",
                tail.len()
            )));
        };
        out.push(element.to_vec());
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err(ProtocolError::new(format!(
            "input {name:?}: binary data has {} bytes left after the {count} BYTES elements the \
             shape holds",
            rest.len()
        )));
    }
    Ok(TensorData::Bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_elements_are_checked_against_the_datatype() {
        let ok = TensorData::from_json("x", Datatype::Int32, &[json!(1), json!(-2)]).unwrap();
        assert_eq!(ok, TensorData::Int32(vec![1, -2]));
        let err = TensorData::from_json("x", Datatype::Int32, &[json!(1), json!(3_000_000_000i64)])
            .unwrap_err();
        assert_eq!(
            err.0,
            "input \"x\": element 1 is 3000000000, not a valid INT32 value"
        );
        let err = TensorData::from_json("x", Datatype::Fp32, &[json!("abc")]).unwrap_err();
        assert!(err.0.contains("not a valid FP32 value"), "{}", err.0);
        let nan = TensorData::from_json("x", Datatype::Fp64, &[json!("NaN")]).unwrap();
        assert!(matches!(nan, TensorData::Fp64(ref v) if v[0].is_nan()));
        assert_eq!(nan.to_json(), [json!("NaN")]);
    }

    #[test]
    fn binary_round_trips_every_datatype() {
        let cases = [
            TensorData::Bool(vec![true, false]),
            TensorData::Uint16(vec![1, 65535]),
            TensorData::Int64(vec![-1, i64::MAX]),
            TensorData::Fp32(vec![1.5, -0.25]),
            TensorData::Fp64(vec![f64::MIN_POSITIVE]),
            TensorData::Bytes(vec![b"ab".to_vec(), Vec::new(), b"xyz".to_vec()]),
        ];
        for data in cases {
            let bytes = data.to_le_bytes();
            let back = TensorData::from_le_bytes("x", data.datatype(), data.len(), &bytes).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn truncated_binary_data_is_refused() {
        let err = TensorData::from_le_bytes("x", Datatype::Fp32, 3, &[0; 8]).unwrap_err();
        assert_eq!(
            err.0,
            "input \"x\": binary data holds 8 bytes, but 3 FP32 elements need 12"
        );
        let mut bytes = TensorData::Bytes(vec![b"abcd".to_vec()]).to_le_bytes();
        bytes.pop();
        let err = TensorData::from_le_bytes("x", Datatype::Bytes, 1, &bytes).unwrap_err();
        assert!(err.0.contains("truncated"), "{}", err.0);
    }

    #[test]
    fn shapes_must_be_non_negative_and_sane() {
        assert_eq!(element_count("x", &[2, 3]).unwrap(), 6);
        assert_eq!(element_count("x", &[]).unwrap(), 1);
        assert_eq!(element_count("x", &[4, 0, 1000]).unwrap(), 0);
        let limit = MAX_ELEMENTS as i64;
        assert_eq!(element_count("x", &[limit]).unwrap(), MAX_ELEMENTS);
        assert_eq!(element_count("x", &[1, limit, 1]).unwrap(), MAX_ELEMENTS);
        let err = element_count("x", &[-1, 3]).unwrap_err();
        assert_eq!(err.0, "input \"x\": shape [-1, 3] has a negative dimension");
        for shape in [
            vec![limit + 1],
            vec![limit, 2],
            vec![1_000_000_000, 4],
            vec![i64::MAX, i64::MAX],
            vec![1 << 32, 1 << 32],
            vec![0, 1 << 40, 1 << 40],
        ] {
            let err = element_count("x", &shape).unwrap_err();
            assert_eq!(
                err.0,
                format!(
                    "input \"x\": shape {shape:?} is too large: a tensor may hold at most {MAX_ELEMENTS} elements"
                )
            );
        }
    }

    #[test]
    fn long_shapes_are_cut_short_in_messages() {
        let long = vec![-1; 1_000_000];
        let err = element_count("x", &long).unwrap_err();
        assert_eq!(
            err.0,
            "input \"x\": shape [-1, -1, -1, -1, -1, -1, -1, -1, … (1000000 dimensions)] has a negative dimension"
        );
    }

    #[test]
    fn a_count_is_never_trusted_past_the_bytes() {
        // A caller's count that no byte length could back is an error, not an overflow.
        let err = TensorData::from_le_bytes("x", Datatype::Fp64, usize::MAX, &[0; 8]).unwrap_err();
        assert!(
            err.0
                .ends_with("FP64 elements need more than fit in memory"),
            "{}",
            err.0
        );
        let err = TensorData::from_le_bytes("x", Datatype::Bytes, usize::MAX, &[0; 8]).unwrap_err();
        assert!(err.0.contains("too few for"), "{}", err.0);
        let err = TensorData::from_le_bytes("x", Datatype::Uint8, 0, &[0]).unwrap_err();
        assert!(err.0.contains("but 0 UINT8 elements need 0"), "{}", err.0);
        let empty = TensorData::from_le_bytes("x", Datatype::Bytes, 2, &[0; 8]).unwrap();
        assert_eq!(empty, TensorData::Bytes(vec![Vec::new(), Vec::new()]));
    }
}
