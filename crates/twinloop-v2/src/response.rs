//! Encoding an infer response: JSON, or JSON + binary tensors for outputs that asked for it.

use serde_json::{Map, Value, json};
use twinloop_serving::infer::InferResponse;

use crate::elements::ElementCodec;

/// The body, and the JSON header's length when binary data follows it (to send as
/// `Inference-Header-Content-Length`). `binary(name)` says which outputs go as binary.
pub fn encode_response(
    response: &InferResponse,
    binary: impl Fn(&str) -> bool,
) -> (Vec<u8>, Option<usize>) {
    let mut raw = Vec::new();
    let mut any_binary = false;
    let outputs: Vec<Value> = response
        .outputs
        .iter()
        .map(|t| {
            let mut out = Map::new();
            out.insert("name".into(), t.name.clone().into());
            out.insert("datatype".into(), t.data.datatype().name().into());
            out.insert("shape".into(), json!(t.shape));
            if binary(&t.name) {
                let bytes = t.data.to_le_bytes();
                out.insert(
                    "parameters".into(),
                    json!({"binary_data_size": bytes.len()}),
                );
                raw.extend_from_slice(&bytes);
                any_binary = true;
            } else {
                out.insert("data".into(), Value::Array(t.data.to_json()));
            }
            Value::Object(out)
        })
        .collect();
    let mut body = Map::new();
    body.insert("model_name".into(), response.model_name.clone().into());
    if let Some(v) = &response.model_version {
        body.insert("model_version".into(), v.clone().into());
    }
    if let Some(id) = &response.id {
        body.insert("id".into(), id.clone().into());
    }
    body.insert("outputs".into(), Value::Array(outputs));
    let mut bytes = serde_json::to_vec(&Value::Object(body)).expect("JSON values serialise");
    if !any_binary {
        return (bytes, None);
    }
    let header = bytes.len();
    bytes.extend_from_slice(&raw);
    (bytes, Some(header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_request;
    use twinloop_serving::tensor::{Datatype, Tensor, TensorData};

    fn response() -> InferResponse {
        InferResponse {
            model_name: "iris".into(),
            model_version: Some("3".into()),
            id: Some("r1".into()),
            outputs: vec![
                Tensor {
                    name: "label".into(),
                    shape: vec![2],
                    data: TensorData::Int64(vec![0, 2]),
                },
                Tensor {
                    name: "probabilities".into(),
                    shape: vec![2, 2],
                    data: TensorData::Fp32(vec![0.25, 0.75, 1.0, f32::NAN]),
                },
            ],
        }
    }

    #[test]
    fn json_responses_echo_the_id_and_version() {
        let (body, header) = encode_response(&response(), |_| false);
        assert_eq!(header, None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "r1");
        assert_eq!(v["model_version"], "3");
        assert_eq!(v["outputs"][0]["data"], json!([0, 2]));
        assert_eq!(v["outputs"][1]["data"], json!([0.25, 0.75, 1.0, "NaN"]));
    }

    #[test]
    fn binary_outputs_follow_the_header_and_decode_back() {
        let (body, header) = encode_response(&response(), |n| n == "probabilities");
        let header = header.unwrap();
        let v: Value = serde_json::from_slice(&body[..header]).unwrap();
        assert_eq!(v["outputs"][1]["parameters"]["binary_data_size"], 16);
        assert!(v["outputs"][1].get("data").is_none());
        let raw = &body[header..];
        let back = TensorData::from_le_bytes("probabilities", Datatype::Fp32, 4, raw).unwrap();
        let TensorData::Fp32(values) = back else {
            panic!("FP32 expected")
        };
        assert_eq!(&values[..3], &[0.25, 0.75, 1.0]);
        assert!(values[3].is_nan());
        // A request built the same way decodes with the request decoder.
        let request_header = json!({"inputs": [{"name": "p", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}]}).to_string();
        let request = [request_header.as_bytes(), raw].concat();
        assert!(decode_request(&request, Some(request_header.len())).is_ok());
    }
}
