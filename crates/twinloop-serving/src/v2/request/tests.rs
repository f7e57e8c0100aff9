use super::*;
use serde_json::json;

fn decode(body: serde_json::Value) -> Result<InferRequest> {
    decode_request(body.to_string().as_bytes(), None)
}

#[test]
fn flat_and_nested_data_decode_alike() {
    let flat = decode(json!({"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]})).unwrap();
    let nested = decode(json!({"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]})).unwrap();
    assert_eq!(flat, nested);
    assert_eq!(flat.id.as_deref(), Some("r1"));
    assert_eq!(
        flat.inputs[0].data,
        TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0])
    );
}

#[test]
fn binary_inputs_follow_the_json_header() {
    let a = TensorData::Fp32(vec![1.0, 2.0]).to_le_bytes();
    let b = TensorData::Bytes(vec![b"hi".to_vec()]).to_le_bytes();
    let header = json!({
        "inputs": [
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": a.len()}},
            {"name": "b", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": b.len()}},
        ],
        "outputs": [{"name": "y", "parameters": {"binary_data": true}}, {"name": "z"}],
        "parameters": {"binary_data_output": false},
    })
    .to_string();
    let body = [header.as_bytes(), &a, &b].concat();
    let request = decode_request(&body, Some(header.len())).unwrap();
    assert_eq!(request.inputs[0].data, TensorData::Fp32(vec![1.0, 2.0]));
    assert_eq!(
        request.inputs[1].data,
        TensorData::Bytes(vec![b"hi".to_vec()])
    );
    assert!(request.wants_binary("y"));
    assert!(!request.wants_binary("z"));

    let truncated = &body[..body.len() - 1];
    let err = decode_request(truncated, Some(header.len())).unwrap_err();
    assert!(err.0.contains("input \"b\""), "{}", err.0);
    let err = decode_request(&body, Some(body.len() + 1)).unwrap_err();
    assert!(err.0.contains("has only"), "{}", err.0);
}

#[test]
fn bad_requests_name_the_input_and_what_was_expected() {
    let cases = [
        (
            json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}),
            "input \"x\": shape [3] needs 3 elements, data has 2",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": ["a"]}]}),
            "input \"x\": element 0 is \"a\", not a valid INT64 value",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]}),
            "input \"x\": unknown datatype \"FLOAT\"",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}),
            "input \"x\": no data",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": []}]}),
            "negative dimension",
        ),
        (json!({"inputs": "x"}), "invalid inference request JSON"),
    ];
    for (body, needle) in cases {
        let err = decode(body).unwrap_err();
        assert!(err.0.contains(needle), "{} lacks {needle}", err.0);
    }
}

#[test]
fn the_request_default_decides_binary_outputs() {
    let request = decode(json!({
        "inputs": [{"name": "x", "shape": [1], "datatype": "BOOL", "data": [true]}],
        "parameters": {"binary_data_output": true},
    }))
    .unwrap();
    assert!(request.wants_binary("anything"));
}
