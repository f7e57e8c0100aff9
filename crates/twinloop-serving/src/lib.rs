//! Model serving: ONNX models from the registry answering the Open Inference Protocol.

pub mod batch;
pub mod deploy;
pub mod engine;
pub mod grpc;
pub mod http;
pub mod predlog;
pub mod runtime;
pub mod served;
pub mod source;
pub mod spec;
pub mod v2;
