//! Decoding an infer request: JSON (flat or nested data) or JSON + binary tensors.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::binary::{binary_size, flag};
use super::tensor::element_count;
use super::{Datatype, ProtocolError, Result, Tensor, TensorData};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<RawInput>,
    #[serde(default)]
    outputs: Option<Vec<RawOutput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// `parameters.binary_data` when the client set it.
    pub binary: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub parameters: Map<String, Value>,
    pub inputs: Vec<Tensor>,
    /// Empty means every output.
    pub outputs: Vec<RequestedOutput>,
}

impl InferRequest {
    /// Whether output `name` goes back as binary data: its own flag, else the request's
    /// `binary_data_output`, else JSON.
    pub fn wants_binary(&self, name: &str) -> bool {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.binary)
            .or_else(|| flag(Some(&self.parameters), "binary_data_output"))
            .unwrap_or(false)
    }
}

/// Decodes a request body. With `header_length` (the `Inference-Header-Content-Length` header)
/// the JSON is that many bytes and binary tensors follow, in input order.
pub fn decode_request(body: &[u8], header_length: Option<usize>) -> Result<InferRequest> {
    let (json, mut binary) = match header_length {
        Some(n) if n > body.len() => {
            return Err(ProtocolError::new(format!(
                "{} is {n} but the body has only {} bytes",
                super::HEADER_LENGTH,
                body.len()
            )));
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let raw: RawRequest = serde_json::from_slice(json)
        .map_err(|e| ProtocolError::new(format!("invalid inference request JSON: {e}")))?;
    let mut inputs = Vec::with_capacity(raw.inputs.len());
    for input in raw.inputs {
        let datatype = Datatype::parse(&input.datatype)
            .map_err(|e| ProtocolError::new(format!("input {:?}: {}", input.name, e.0)))?;
        let count = element_count(&input.name, &input.shape)?;
        let data = match (binary_size(input.parameters.as_ref()), input.data) {
            (Some(size), None) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > binary.len() {
                    return Err(ProtocolError::new(format!(
                        "input {:?}: binary_data_size is {size} but only {} bytes of binary data remain",
                        input.name,
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                TensorData::from_le_bytes(&input.name, datatype, count, mine)?
            }
            (None, Some(data)) => {
                let mut flat = Vec::with_capacity(count);
                flatten(data, &mut flat);
                if flat.len() != count {
                    return Err(ProtocolError::new(format!(
                        "input {:?}: shape {:?} needs {count} elements, data has {}",
                        input.name,
                        input.shape,
                        flat.len()
                    )));
                }
                TensorData::from_json(&input.name, datatype, &flat)?
            }
            (Some(_), Some(_)) => {
                return Err(ProtocolError::new(format!(
                    "input {:?}: has both data and binary_data_size",
                    input.name
                )));
            }
            (None, None) => {
                return Err(ProtocolError::new(format!(
                    "input {:?}: no data",
                    input.name
                )));
            }
        };
        inputs.push(Tensor {
            name: input.name,
            shape: input.shape,
            data,
        });
    }
    if !binary.is_empty() {
        return Err(ProtocolError::new(format!(
            "{} bytes of binary data follow the inputs' binary_data_size",
            binary.len()
        )));
    }
    Ok(InferRequest {
        id: raw.id,
        parameters: raw.parameters.unwrap_or_default(),
        inputs,
        outputs: raw
            .outputs
            .unwrap_or_default()
            .into_iter()
            .map(|o| RequestedOutput {
                binary: flag(o.parameters.as_ref(), "binary_data"),
                name: o.name,
            })
            .collect(),
    })
}

/// Row-major elements of data given flat or nested in the tensor's shape.
fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Array(items) => {
            for item in items {
                flatten(item, out);
            }
        }
        scalar => out.push(scalar),
    }
}

#[cfg(test)]
mod tests;
