//! Learning without Python: the built-in trainers (`model.train-linear`) and their ONNX export,
//! the metrics a model is judged by, and the evaluation gate's threshold semantics and paired
//! bootstrap. Pure library: typed values in and out, no I/O beyond reading a dataset file.

pub mod bootstrap;
pub mod dataset;
pub mod gate;
pub mod linear;
pub mod metrics;
pub mod onnx;
pub mod train;
pub mod trees;
