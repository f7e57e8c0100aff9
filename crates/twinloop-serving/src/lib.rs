//! Model serving: ONNX models from the registry answering the Open Inference Protocol.

pub mod runtime;
pub mod source;
pub mod v2;
