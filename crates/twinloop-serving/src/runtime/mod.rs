//! The ONNX runtime: finding ONNX Runtime's shared library, loading models into a pool of
//! sessions, and running tensors through them.

mod convert;
mod library;
mod model;
mod signature;

pub use library::{RuntimeError, environment, library_candidates};
pub use model::OnnxModel;
pub use signature::{InferError, LoadError, OutputKind, TensorSpec};
