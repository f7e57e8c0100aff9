//! Decoding an infer request: JSON (flat or nested data) or JSON + binary tensors.

use serde::Deserialize;
use serde_json::{Map, Value};

use twinloop_serving::infer::InferRequest;
use twinloop_serving::tensor::{Datatype, Tensor, TensorData, show_shape};

use crate::binary::{binary_size, flag};
use crate::elements::{ElementCodec, element_count};
use crate::{ProtocolError, Result};

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

/// A decoded REST request: what the engine runs, and how the answer's outputs go back.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRequest {
    pub infer: InferRequest,
    pub binary: BinaryOutputs,
}

/// Which outputs the client asked to get back as binary data (the binary tensor extension).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BinaryOutputs {
    /// The request's `parameters.binary_data_output`.
    default: Option<bool>,
    /// Each requested output's `parameters.binary_data`, when the client set it.
    outputs: Vec<(String, Option<bool>)>,
}

impl BinaryOutputs {
    /// Whether output `name` goes back as binary data: its own flag, else the request's
    /// `binary_data_output`, else JSON.
    pub fn wants(&self, name: &str) -> bool {
        self.outputs
            .iter()
            .find(|(o, _)| o == name)
            .and_then(|(_, b)| *b)
            .or(self.default)
            .unwrap_or(false)
    }
}

/// Decodes a request body. With `header_length` (the `Inference-Header-Content-Length` header)
/// the JSON is that many bytes and binary tensors follow, in input order.
///
/// A shape is only a claim: every input's element count is checked against
/// [`MAX_ELEMENTS`](twinloop_serving::tensor::MAX_ELEMENTS) and against the data that came with it before anything
/// is sized from it, so a hostile request costs no more memory than its body.
pub fn decode_request(body: &[u8], header_length: Option<usize>) -> Result<RestRequest> {
    let (json, mut binary) = match header_length {
        Some(n) if n > body.len() => {
            return Err(ProtocolError::new(format!(
                "{} is {n} but the body has only {} bytes",
                crate::HEADER_LENGTH,
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
            .map_err(|e| ProtocolError::new(format!("input {:?}: {e}", input.name)))?;
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
    let parameters = raw.parameters.unwrap_or_default();
    let requested = raw.outputs.unwrap_or_default();
    let binary = BinaryOutputs {
        default: flag(Some(&parameters), "binary_data_output"),
        outputs: requested
            .iter()
            .map(|o| (o.name.clone(), flag(o.parameters.as_ref(), "binary_data")))
            .collect(),
    };
    Ok(RestRequest {
        binary,
        infer: InferRequest {
            id: raw.id,
            parameters,
            inputs,
            outputs: requested.into_iter().map(|o| o.name).collect(),
        },
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
