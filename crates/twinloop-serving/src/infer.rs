//! One inference as the engine takes and answers it, whichever front it came through.

use serde_json::{Map, Value};

use crate::tensor::Tensor;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    /// The request's parameters. The protocol leaves their values free-form, and deployments
    /// read them by name (a sticky key, feature enrichment's `entities`), so they stay values.
    pub parameters: Map<String, Value>,
    pub inputs: Vec<Tensor>,
    /// The outputs asked for, in order; empty means every output.
    pub outputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: Option<String>,
    pub id: Option<String>,
    pub outputs: Vec<Tensor>,
}
