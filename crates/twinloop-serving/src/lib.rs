//! Model serving. So far: [`v2`], the Open Inference Protocol (KServe V2) as it travels over
//! HTTP — JSON tensors, flat or nested, and tritonclient's binary tensor extension — decoded
//! into typed tensors and encoded back, with errors that name the tensor and what was expected.
//! The runtime, the routes and deployments build on it.

pub mod v2;
