//! The ONNX runtime: finding ONNX Runtime's shared library, loading models into a pool of
//! sessions, and running V2 tensors through them.

mod convert;
mod library;
mod model;

pub use library::{RuntimeError, environment, library_candidates};
pub use model::{InferError, OnnxModel, OutputKind, TensorSpec};
