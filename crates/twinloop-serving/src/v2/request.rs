//! Decoding an infer request: JSON (flat or nested data) or JSON + binary tensors.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::binary::{binary_size, flag};
use super::tensor::{element_count, show_shape};
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
///
/// A shape is only a claim: every input's element count is checked against
/// [`MAX_ELEMENTS`](super::MAX_ELEMENTS) and against the data that came with it before anything
/// is sized from it, so a hostile request costs no more memory than its body.
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
        let data = match (
            binary_size(&input.name, input.parameters.as_ref())?,
            input.data,
        ) {
            (Some(size), None) => {
                let Some(size) = usize::try_from(size).ok().filter(|&s| s <= binary.len()) else {
                    return Err(ProtocolError::new(format!(
                        "input {:?}: binary_data_size is {size} but only {} bytes of binary data remain",
                        input.name,
                        binary.len()
                    )));
                };
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                TensorData::from_le_bytes(&input.name, datatype, count, mine)?
            }
            (None, Some(data)) => {
                let scalars = Scalars::new(&data);
                if scalars.len() != count {
                    return Err(ProtocolError::new(format!(
                        "input {:?}: shape {} needs {count} elements, data has {}",
                        input.name,
                        show_shape(&input.shape),
                        scalars.len()
                    )));
                }
                TensorData::from_json(&input.name, datatype, scalars)?
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

/// The row-major scalars of data given flat or nested (to any depth, as Triton reads it),
/// walked in place: copying them out first would double what a large JSON body costs.
struct Scalars<'a> {
    stack: Vec<std::slice::Iter<'a, Value>>,
    remaining: usize,
}

impl<'a> Scalars<'a> {
    fn new(data: &'a Value) -> Scalars<'a> {
        let walk = || Scalars {
            stack: vec![std::slice::from_ref(data).iter()],
            remaining: 0,
        };
        Scalars {
            remaining: walk().count(),
            ..walk()
        }
    }
}

impl<'a> Iterator for Scalars<'a> {
    type Item = &'a Value;

    fn next(&mut self) -> Option<&'a Value> {
        loop {
            match self.stack.last_mut()?.next() {
                None => {
                    self.stack.pop();
                }
                Some(Value::Array(items)) => self.stack.push(items.iter()),
                Some(scalar) => {
                    self.remaining = self.remaining.saturating_sub(1);
                    return Some(scalar);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Scalars<'_> {}

#[cfg(test)]
mod tests;
