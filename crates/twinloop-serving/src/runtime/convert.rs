//! Tensors to ONNX Runtime values and back.

use ort::value::{DynMapValueType, DynValue, Tensor as OrtTensor, TensorElementType, ValueType};

use super::signature::{InferError, OutputKind};
use crate::tensor::{MAX_ELEMENTS, Tensor, TensorData};

/// Refuses an output larger than a request may be: a model can compute a tensor of any size from
/// a small input, and the response multiplies it again (JSON text, or a copy into the body).
fn check_size(name: &str, elements: usize) -> Result<(), InferError> {
    if elements > MAX_ELEMENTS {
        return Err(InferError::Failed(format!(
            "output {name:?} holds {elements} elements, more than the {MAX_ELEMENTS} a response may carry"
        )));
    }
    Ok(())
}

fn ort_err(name: &str) -> impl Fn(ort::Error) -> InferError + '_ {
    move |e| InferError::Invalid(format!("input {name:?}: {e}"))
}

/// Moves a request tensor into an ORT value (BYTES must be UTF-8: ONNX strings are text).
pub fn to_value(tensor: Tensor) -> Result<DynValue, InferError> {
    let Tensor { name, shape, data } = tensor;
    let err = ort_err(&name);
    macro_rules! owned {
        ($v:expr) => {
            OrtTensor::from_array((shape, $v))
                .map(|t| t.into_dyn())
                .map_err(&err)
        };
    }
    match data {
        TensorData::Bool(v) => owned!(v),
        TensorData::Uint8(v) => owned!(v),
        TensorData::Uint16(v) => owned!(v),
        TensorData::Uint32(v) => owned!(v),
        TensorData::Uint64(v) => owned!(v),
        TensorData::Int8(v) => owned!(v),
        TensorData::Int16(v) => owned!(v),
        TensorData::Int32(v) => owned!(v),
        TensorData::Int64(v) => owned!(v),
        TensorData::Fp32(v) => owned!(v),
        TensorData::Fp64(v) => owned!(v),
        TensorData::Fp16(_) => Err(InferError::Invalid(format!(
            "input {name:?}: FP16 inputs are not served"
        ))),
        TensorData::Bytes(items) => {
            let mut strings = Vec::with_capacity(items.len());
            for (i, b) in items.into_iter().enumerate() {
                strings.push(String::from_utf8(b).map_err(|_| {
                    InferError::Invalid(format!(
                        "input {name:?}: element {i} is not UTF-8 text, which an ONNX string tensor needs"
                    ))
                })?);
            }
            OrtTensor::from_string_array((shape, &strings[..]))
                .map(|t| t.into_dyn())
                .map_err(&err)
        }
    }
}

/// Reads an output value as a V2 tensor; a ZipMap's sequence of maps becomes FP32 `[N, classes]`
/// in the maps' key order (the class order: ORT keeps map keys sorted, as are sklearn's classes).
pub fn from_value(name: &str, kind: OutputKind, value: &DynValue) -> Result<Tensor, InferError> {
    let fail = |e: ort::Error| InferError::Failed(format!("output {name:?}: {e}"));
    if let OutputKind::ZipMap { string_keys } = kind {
        let maps = value
            .try_extract_sequence::<DynMapValueType>()
            .map_err(fail)?;
        let mut data = Vec::new();
        let mut classes = None;
        for map in &maps {
            let values: Vec<f32> = if string_keys {
                let kv = map.try_extract_key_values::<String, f32>().map_err(fail)?;
                kv.into_iter().map(|(_, v)| v).collect()
            } else {
                let kv = map.try_extract_key_values::<i64, f32>().map_err(fail)?;
                kv.into_iter().map(|(_, v)| v).collect()
            };
            // Rows of differing widths would not make the [N, classes] the shape claims.
            if *classes.get_or_insert(values.len()) != values.len() {
                return Err(InferError::Failed(format!(
                    "output {name:?}: ZipMap rows have {} and {} classes",
                    classes.unwrap_or_default(),
                    values.len()
                )));
            }
            check_size(name, data.len().saturating_add(values.len()))?;
            data.extend(values);
        }
        let classes = classes.unwrap_or(0);
        return Ok(Tensor {
            name: name.to_string(),
            shape: vec![maps.len() as i64, classes as i64],
            data: TensorData::Fp32(data),
        });
    }
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(InferError::Failed(format!(
            "output {name:?} is not a tensor"
        )));
    };
    macro_rules! copy {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = value.try_extract_tensor::<$t>().map_err(fail)?;
            check_size(name, data.len())?;
            (shape.to_vec(), TensorData::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Float32 => copy!(f32, Fp32),
        TensorElementType::Float64 => copy!(f64, Fp64),
        TensorElementType::Int8 => copy!(i8, Int8),
        TensorElementType::Int16 => copy!(i16, Int16),
        TensorElementType::Int32 => copy!(i32, Int32),
        TensorElementType::Int64 => copy!(i64, Int64),
        TensorElementType::Uint8 => copy!(u8, Uint8),
        TensorElementType::Uint16 => copy!(u16, Uint16),
        TensorElementType::Uint32 => copy!(u32, Uint32),
        TensorElementType::Uint64 => copy!(u64, Uint64),
        TensorElementType::Bool => copy!(bool, Bool),
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings().map_err(fail)?;
            check_size(name, strings.len())?;
            (
                shape.to_vec(),
                TensorData::Bytes(strings.into_iter().map(String::into_bytes).collect()),
            )
        }
        other => {
            return Err(InferError::Failed(format!(
                "output {name:?} has element type {other:?}, which V2 cannot carry"
            )));
        }
    };
    Ok(Tensor {
        name: name.to_string(),
        shape,
        data,
    })
}
