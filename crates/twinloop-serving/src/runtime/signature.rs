//! A model's signature as ONNX Runtime reports it: its inputs' and outputs' datatypes and
//! shapes, and the errors of loading and running it. Both the loader (`model.rs`) and the value
//! conversions (`convert.rs`) build on it, so neither needs the other's types.

use ort::value::{TensorElementType, ValueType};

use super::library::RuntimeError;
use crate::tensor::Datatype;

/// How an output leaves the model: a plain tensor, or a ZipMap (`seq(map(K, float))`) that is
/// served as an FP32 `[N, classes]` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Tensor,
    ZipMap { string_keys: bool },
}

/// One input or output as V2 metadata describes it; `-1` marks a variable dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
    pub kind: OutputKind,
}

impl TensorSpec {
    pub(super) fn describe(&self) -> String {
        format!("{} {:?}", self.datatype.name(), self.shape)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferError {
    /// The request does not fit the model: the client's to fix (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The model could not produce or hand back an answer.
    #[error("{0}")]
    Failed(String),
}

fn datatype_of(ty: TensorElementType) -> Option<Datatype> {
    Some(match ty {
        TensorElementType::Float32 => Datatype::Fp32,
        TensorElementType::Float64 => Datatype::Fp64,
        TensorElementType::Int8 => Datatype::Int8,
        TensorElementType::Int16 => Datatype::Int16,
        TensorElementType::Int32 => Datatype::Int32,
        TensorElementType::Int64 => Datatype::Int64,
        TensorElementType::Uint8 => Datatype::Uint8,
        TensorElementType::Uint16 => Datatype::Uint16,
        TensorElementType::Uint32 => Datatype::Uint32,
        TensorElementType::Uint64 => Datatype::Uint64,
        TensorElementType::Bool => Datatype::Bool,
        TensorElementType::String => Datatype::Bytes,
        _ => return None,
    })
}

/// Why a model could not be loaded: each is fit to show as the reason a deployment did not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Library(#[from] RuntimeError),
    #[error("ONNX Runtime cannot load the model: {0}")]
    Session(#[source] ort::Error),
    #[error("{side} {name:?} has element type {element}, which twinloop does not serve")]
    ElementType {
        side: &'static str,
        name: String,
        element: String,
    },
    #[error(
        "output {name:?} is a sequence of {inner}; only ZipMap's map(int64|string, float) is served"
    )]
    Sequence { name: String, inner: String },
    #[error("{side} {name:?} is {value}, which the Open Inference Protocol cannot carry")]
    ValueType {
        side: &'static str,
        name: String,
        value: String,
    },
}

/// The spec of input or output (`side`) `name`, of ONNX type `ty`.
pub fn io_spec(name: &str, ty: &ValueType, side: &'static str) -> Result<TensorSpec, LoadError> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => {
            let datatype = datatype_of(*ty).ok_or_else(|| LoadError::ElementType {
                side,
                name: name.to_string(),
                element: format!("{ty:?}"),
            })?;
            Ok(TensorSpec {
                name: name.to_string(),
                datatype,
                shape: shape.to_vec(),
                kind: OutputKind::Tensor,
            })
        }
        ValueType::Sequence(inner) if side == "output" => match inner.as_ref() {
            ValueType::Map {
                key: key @ (TensorElementType::Int64 | TensorElementType::String),
                value: TensorElementType::Float32,
            } => Ok(TensorSpec {
                name: name.to_string(),
                datatype: Datatype::Fp32,
                shape: vec![-1, -1],
                kind: OutputKind::ZipMap {
                    string_keys: *key == TensorElementType::String,
                },
            }),
            other => Err(LoadError::Sequence {
                name: name.to_string(),
                inner: format!("{other:?}"),
            }),
        },
        other => Err(LoadError::ValueType {
            side,
            name: name.to_string(),
            value: format!("{other:?}"),
        }),
    }
}
