use super::*;
use serde_json::json;
use twinloop_serving::tensor::TensorData;

fn decode(body: serde_json::Value) -> Result<RestRequest> {
    decode_request(body.to_string().as_bytes(), None)
}

#[test]
fn flat_and_nested_data_decode_alike() {
    let flat = decode(json!({"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]})).unwrap();
    let nested = decode(json!({"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]})).unwrap();
    assert_eq!(flat, nested);
    assert_eq!(flat.infer.id.as_deref(), Some("r1"));
    assert_eq!(
        flat.infer.inputs[0].data,
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
    assert_eq!(
        request.infer.inputs[0].data,
        TensorData::Fp32(vec![1.0, 2.0])
    );
    assert_eq!(
        request.infer.inputs[1].data,
        TensorData::Bytes(vec![b"hi".to_vec()])
    );
    assert!(request.binary.wants("y"));
    assert!(!request.binary.wants("z"));

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
    assert!(request.binary.wants("anything"));
}

fn error_of(body: serde_json::Value) -> String {
    decode(body).unwrap_err().0
}

fn binary_error(header: serde_json::Value, binary: &[u8]) -> String {
    let header = header.to_string();
    let body = [header.as_bytes(), binary].concat();
    decode_request(&body, Some(header.len())).unwrap_err().0
}

#[test]
fn a_declared_shape_is_refused_before_anything_is_sized_from_it() {
    let limit = twinloop_serving::tensor::MAX_ELEMENTS;
    let cases = [
        // The reported abort: 4e9 elements declared, 4 sent.
        (
            json!([1_000_000_000, 4]),
            json!([1, 2, 3, 4]),
            "is too large",
        ),
        (json!([limit + 1]), json!([1]), "is too large"),
        (json!([i64::MAX, i64::MAX]), json!([1]), "is too large"),
        // 2^32 * 2^32 overflows a 64-bit usize.
        (json!([1u64 << 32, 1u64 << 32]), json!([1]), "is too large"),
        // A zero dimension does not excuse the others: ONNX Runtime multiplies them too.
        (json!([0, i64::MAX, i64::MAX]), json!([]), "is too large"),
        (json!([-1]), json!([]), "negative dimension"),
        (json!([2, -3]), json!([1]), "negative dimension"),
        (json!([i64::MIN]), json!([1]), "negative dimension"),
        // Within the limit, but not backed by the data sent.
        (
            json!([limit]),
            json!([1]),
            "needs 67108864 elements, data has 1",
        ),
        (json!([0, 3]), json!([1]), "needs 0 elements, data has 1"),
        (
            json!([2, 2]),
            json!([[1, 2], [3]]),
            "needs 4 elements, data has 3",
        ),
        (
            json!([2, 2]),
            json!([[[1, 2, 3], [4]], [5]]),
            "needs 4 elements, data has 5",
        ),
    ];
    for (shape, data, needle) in cases {
        let err = error_of(
            json!({"inputs": [{"name": "X", "shape": shape, "datatype": "FP32", "data": data}]}),
        );
        assert!(err.starts_with("input \"X\": shape ["), "{err}");
        assert!(err.contains(needle), "{err} lacks {needle}");
    }
}

#[test]
fn nested_data_is_read_row_major_at_any_depth_and_counted() {
    // Triton flattens nesting without checking it against the shape; so does this decoder,
    // as long as the element count agrees.
    let deeper = decode(json!({"inputs": [{"name": "x", "shape": [4], "datatype": "INT32", "data": [[[1], [2]], [[3, 4]]]}]})).unwrap();
    assert_eq!(
        deeper.infer.inputs[0].data,
        TensorData::Int32(vec![1, 2, 3, 4])
    );
    let empty = decode(json!({"inputs": [{"name": "x", "shape": [0, 3], "datatype": "INT32", "data": [[], [[]]]}]})).unwrap();
    assert_eq!(empty.infer.inputs[0].data, TensorData::Int32(vec![]));
    let scalar =
        decode(json!({"inputs": [{"name": "x", "shape": [], "datatype": "BOOL", "data": true}]}))
            .unwrap();
    assert_eq!(scalar.infer.inputs[0].data, TensorData::Bool(vec![true]));
    // serde_json stops at 128 levels, so a deep body is refused as JSON, not walked.
    let deep = format!(
        r#"{{"inputs": [{{"name": "x", "shape": [1], "datatype": "FP32", "data": {}1{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let err = decode_request(deep.as_bytes(), None).unwrap_err().0;
    assert!(err.contains("recursion limit"), "{err}");
}

#[test]
fn binary_sizes_must_be_backed_by_the_body() {
    let fp32 = |size: serde_json::Value| json!({"inputs": [{"name": "X", "shape": [1_000_000_000, 4], "datatype": "FP32", "parameters": {"binary_data_size": size}}]});
    let err = binary_error(fp32(json!(16)), &[0; 16]);
    assert!(err.contains("is too large"), "{err}");
    let small = |size: serde_json::Value| json!({"inputs": [{"name": "X", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": size}}]});
    for size in [json!(9), json!(1_000_000_000_000u64), json!(u64::MAX)] {
        let err = binary_error(small(size.clone()), &[0; 8]);
        assert!(
            err.contains(&format!("binary_data_size is {size} but only 8 bytes")),
            "{err}"
        );
    }
    for size in [json!(-1), json!(1.5), json!("8")] {
        let err = binary_error(small(size.clone()), &[0; 8]);
        assert!(
            err.contains(&format!("binary_data_size is {size}, not a byte count")),
            "{err}"
        );
    }
    let err = binary_error(small(json!(4)), &[0; 4]);
    assert_eq!(
        err,
        "input \"X\": binary data holds 4 bytes, but 2 FP32 elements need 8"
    );
    let err = binary_error(small(json!(8)), &[0; 12]);
    assert!(err.starts_with("4 bytes of binary data follow"), "{err}");
    // binary_data_size without the header that says where the binary part starts.
    let err = decode(small(json!(8))).unwrap_err().0;
    assert!(err.contains("only 0 bytes of binary data remain"), "{err}");
    let err = decode_request(b"{}", Some(usize::MAX)).unwrap_err().0;
    assert!(err.contains("the body has only 2 bytes"), "{err}");
}

#[test]
fn binary_bytes_elements_are_counted_against_their_length_prefixes() {
    let bytes = |shape: serde_json::Value, binary: &[u8]| {
        binary_error(
            json!({"inputs": [{"name": "S", "shape": shape, "datatype": "BYTES", "parameters": {"binary_data_size": binary.len()}}]}),
            binary,
        )
    };
    // The reported abort over REST binary: 10^12 strings declared, one sent.
    let one = TensorData::Bytes(vec![b"hi".to_vec()]).to_le_bytes();
    let err = bytes(json!([1_000_000_000_000u64]), &one);
    assert!(err.contains("is too large"), "{err}");
    let err = bytes(json!([3]), &one);
    assert!(err.contains("too few for 3 BYTES elements"), "{err}");
    // A length prefix that runs past the end of the body.
    let past = [&u32::MAX.to_le_bytes()[..], b"abcd"].concat();
    let err = bytes(json!([1]), &past);
    assert!(
        err.contains("element 0 is truncated: its length prefix says 4294967295 bytes, 4 remain"),
        "{err}"
    );
    let err = bytes(json!([2]), &[one.as_slice(), &[1, 0]].concat());
    assert!(
        err.contains("element 1 is truncated: 2 bytes left"),
        "{err}"
    );
    let err = bytes(json!([1]), &[one.as_slice(), &[0; 4]].concat());
    assert!(
        err.contains("4 bytes left after the 1 BYTES elements"),
        "{err}"
    );
    let err = bytes(json!([0]), &one);
    assert!(
        err.contains("6 bytes left after the 0 BYTES elements"),
        "{err}"
    );
}
