//! Model serving: ONNX models from the registry behind one engine, with deployments and a
//! prediction log. The protocol fronts over [`engine::Engine`] live in `twinloop-v2`.

pub mod batch;
pub mod deploy;
pub mod engine;
pub mod infer;
pub mod predlog;
pub mod runtime;
pub mod served;
pub mod source;
pub mod spec;
pub mod tensor;
