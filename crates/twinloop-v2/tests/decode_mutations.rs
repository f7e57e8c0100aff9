//! Mutated infer bodies thrown at the three request decoders (REST JSON, REST with the binary
//! extension, gRPC). Each must answer Ok or Err, never panic; an Ok must hold exactly the
//! elements its shapes declare; and no single allocation may outgrow what the body could back,
//! which is what a shape trusted before its data breaks (the 128 GB abort). Seeded, so a failure
//! reproduces here without nightly; `cargo +nightly fuzz` over fuzz/ explores the same decoders
//! further.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use twinloop_serving::infer::InferRequest;
use twinloop_serving::tensor::{MAX_ELEMENTS, TensorData};
use twinloop_v2::grpc::decode_infer_request;
use twinloop_v2::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use twinloop_v2::grpc::proto::{InferTensorContents, ModelInferRequest};
use twinloop_v2::{ElementCodec, ProtocolError, element_count};

/// The REST decoder's request, as the engine would get it.
fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<InferRequest, ProtocolError> {
    twinloop_v2::decode_request(body, header_length).map(|r| r.infer)
}

/// Records the largest allocation each thread asks for, so a test can bound what one decode
/// reserves (tests run on threads of their own, so they do not see each other's).
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is passed on to the system allocator unchanged.
#[expect(unsafe_code, reason = "GlobalAlloc is an unsafe trait")]
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The most one decode may reserve at once for a body of `len` bytes. The decoders' own
/// expansion is bounded by the encodings: a parsed JSON value costs 32 bytes per element of at
/// least 2 body bytes, a BYTES element 24 bytes per 4 body bytes, a packed varint 8 bytes per
/// byte; doubling growth makes it up to twice that.
fn allowance(len: usize) -> usize {
    64 * len + 64 * 1024
}

/// Decodes `body` with `decode`, failing with the input when it panics, yields a tensor that
/// its shape does not account for, or reserves more than the body could back.
fn check(what: &str, body: &[u8], decode: impl FnOnce() -> Result<InferRequest, ProtocolError>) {
    LARGEST.with(|l| l.set(0));
    let result = catch_unwind(AssertUnwindSafe(decode));
    let largest = LARGEST.with(Cell::get);
    let shown = String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned();
    let Ok(result) = result else {
        panic!("the {what} decoder panicked on {shown:?}");
    };
    assert!(
        largest <= allowance(body.len()),
        "the {what} decoder reserved {largest} bytes for a {}-byte body: {shown:?}",
        body.len()
    );
    if let Ok(request) = result {
        for t in &request.inputs {
            let count = element_count(&t.name, &t.shape);
            assert_eq!(
                count,
                Ok(t.data.len()),
                "{what}: input {:?} of shape {:?} decoded with {} elements from {shown:?}",
                t.name,
                t.shape,
                t.data.len()
            );
            assert!(t.data.len() <= MAX_ELEMENTS);
        }
    }
}

/// Tokens a hostile client would try: sizes at and past every limit, and JSON structure.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"1",
    b"-1",
    b"4",
    b"1000000000",
    b"1000000000000",
    b"67108864",
    b"67108865",
    b"2147483648",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"1e300",
    b"1.5",
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"[]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"\"BYTES\"",
    b"\"FP32\"",
    b"\"UINT8\"",
    b"\"FP16\"",
    b"\"binary_data_size\"",
    b"\"shape\"",
    b"\"data\"",
    b"\"parameters\"",
    b"\xff\xff\xff\xff",
    b"\0\0\0\0",
];

/// One random edit of `body`.
fn mutate(rng: &mut StdRng, body: &mut Vec<u8>) {
    let at = |rng: &mut StdRng, len: usize| rng.random_range(0..=len);
    match rng.random_range(0..8) {
        0 if !body.is_empty() => {
            let i = rng.random_range(0..body.len());
            body[i] ^= 1 << rng.random_range(0..8);
        }
        1 if !body.is_empty() => {
            let i = rng.random_range(0..body.len());
            body[i] = rng.random();
        }
        2 => {
            let i = at(rng, body.len());
            let token = TOKENS[rng.random_range(0..TOKENS.len())];
            body.splice(i..i, token.iter().copied());
        }
        3 => {
            // Replaces a run of digits (a dimension, a size, a value) with a token.
            let digits: Vec<usize> = (0..body.len())
                .filter(|&i| body[i].is_ascii_digit())
                .collect();
            if let Some(&start) = digits.get(rng.random_range(0..digits.len().max(1))) {
                let end = (start..body.len())
                    .find(|&i| !body[i].is_ascii_digit())
                    .unwrap_or(body.len());
                let token = TOKENS[rng.random_range(0..12)];
                body.splice(start..end, token.iter().copied());
            }
        }
        4 if !body.is_empty() => {
            let start = rng.random_range(0..body.len());
            let end = rng.random_range(start..=body.len().min(start + 16));
            body.drain(start..end);
        }
        5 if !body.is_empty() => {
            let start = rng.random_range(0..body.len());
            let end = rng.random_range(start..=body.len().min(start + 32));
            let copy = body[start..end].to_vec();
            let i = at(rng, body.len());
            body.splice(i..i, copy);
        }
        6 => {
            let len = at(rng, body.len());
            body.truncate(len);
        }
        _ => {
            let i = at(rng, body.len());
            let extra: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
            body.splice(i..i, extra);
        }
    }
}

fn mutated(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut body = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        mutate(rng, &mut body);
    }
    body
}

const ROUNDS: usize = 5000;

fn json_seeds() -> Vec<Vec<u8>> {
    [
        json!({"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}], "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}),
        json!({"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "bc"]}, {"name": "b", "shape": [1, 1], "datatype": "BOOL", "data": [true]}]}),
        json!({"inputs": [{"name": "i", "shape": [3], "datatype": "INT64", "data": [1, -2, 3]}, {"name": "u", "shape": [0, 4], "datatype": "UINT8", "data": []}], "parameters": {"binary_data_output": true}}),
        json!({"inputs": [{"name": "X", "shape": [1000000000, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

/// A header and its binary part; the header length travels beside the body.
fn binary_seeds() -> Vec<(Vec<u8>, usize)> {
    let fp32 = TensorData::Fp32(vec![1.0, 2.0]).to_le_bytes();
    let strings = TensorData::Bytes(vec![b"hi".to_vec(), Vec::new()]).to_le_bytes();
    let bools = TensorData::Bool(vec![true, false, true]).to_le_bytes();
    let headers = [
        (
            json!({"inputs": [
                {"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": fp32.len()}},
                {"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": strings.len()}},
            ]}),
            [fp32.as_slice(), &strings].concat(),
        ),
        (
            json!({"inputs": [
                {"name": "b", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": bools.len()}},
                {"name": "j", "shape": [1], "datatype": "INT32", "data": [7]},
            ], "outputs": [{"name": "y"}]}),
            bools.clone(),
        ),
        (
            json!({"inputs": [{"name": "S", "shape": [1000000000000u64], "datatype": "BYTES", "parameters": {"binary_data_size": strings.len()}}]}),
            strings.clone(),
        ),
    ];
    headers
        .into_iter()
        .map(|(header, binary)| {
            let header = header.to_string();
            ([header.as_bytes(), &binary].concat(), header.len())
        })
        .collect()
}

fn grpc_seeds() -> Vec<ModelInferRequest> {
    let input = |name: &str, datatype: &str, shape: &[i64]| InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        ..Default::default()
    };
    vec![
        ModelInferRequest {
            model_name: "m".into(),
            id: "r1".into(),
            inputs: vec![input("x", "FP32", &[1, 2]), input("s", "BYTES", &[1])],
            outputs: vec![InferRequestedOutputTensor {
                name: "y".into(),
                ..Default::default()
            }],
            raw_input_contents: vec![
                TensorData::Fp32(vec![1.0, 2.0]).to_le_bytes(),
                TensorData::Bytes(vec![b"abc".to_vec()]).to_le_bytes(),
            ],
            ..Default::default()
        },
        ModelInferRequest {
            inputs: vec![
                InferInputTensor {
                    contents: Some(InferTensorContents {
                        fp32_contents: vec![0.5, 1.5],
                        ..Default::default()
                    }),
                    ..input("x", "FP32", &[2])
                },
                InferInputTensor {
                    contents: Some(InferTensorContents {
                        int_contents: vec![1, -1, 127],
                        ..Default::default()
                    }),
                    ..input("i", "INT8", &[3, 1])
                },
                InferInputTensor {
                    contents: Some(InferTensorContents {
                        bytes_contents: vec![b"a".to_vec(), b"".to_vec()],
                        ..Default::default()
                    }),
                    ..input("s", "BYTES", &[2])
                },
            ],
            ..Default::default()
        },
    ]
}

#[test]
fn mutated_json_bodies_never_panic_or_overreach() {
    let mut rng = StdRng::seed_from_u64(0x7769_6e6c_6f6f_7001);
    let seeds = json_seeds();
    for seed in &seeds {
        check("REST JSON", seed, || decode_request(seed, None));
    }
    for _ in 0..ROUNDS {
        let body = mutated(&mut rng, &seeds);
        check("REST JSON", &body, || decode_request(&body, None));
    }
}

#[test]
fn mutated_binary_bodies_never_panic_or_overreach() {
    let mut rng = StdRng::seed_from_u64(0x7769_6e6c_6f6f_7002);
    let seeds = binary_seeds();
    let bodies: Vec<Vec<u8>> = seeds.iter().map(|(body, _)| body.clone()).collect();
    for (body, header) in &seeds {
        check("REST binary", body, || decode_request(body, Some(*header)));
    }
    for _ in 0..ROUNDS {
        let (body, header) = &seeds[rng.random_range(0..seeds.len())];
        let mut body = body.clone();
        // Mutations of the binary part keep the header's length meaningful.
        let keep = rng.random_bool(0.5);
        for _ in 0..rng.random_range(1..4) {
            if keep && body.len() > *header {
                let mut tail = body.split_off(*header);
                mutate(&mut rng, &mut tail);
                body.extend(tail);
            } else {
                mutate(&mut rng, &mut body);
            }
        }
        if rng.random_bool(0.05) {
            body = mutated(&mut rng, &bodies);
        }
        let header = match rng.random_range(0..6) {
            0 => rng.random_range(0..=body.len() + 1),
            1 => usize::MAX,
            2 => header.saturating_sub(rng.random_range(1..4)),
            3 => header + rng.random_range(1..4),
            _ => *header,
        };
        check("REST binary", &body, || decode_request(&body, Some(header)));
    }
}

/// One structural edit of a gRPC request: the fields a hostile client controls directly.
fn mutate_grpc(rng: &mut StdRng, request: &mut ModelInferRequest) {
    const DIMS: &[i64] = &[
        0,
        1,
        2,
        3,
        -1,
        1_000_000_000,
        1_000_000_000_000,
        67_108_864,
        67_108_865,
        1 << 32,
        i64::MAX,
        i64::MIN,
    ];
    const DATATYPES: &[&str] = &[
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
        "FP32", "FP64", "BYTES", "FLOAT", "",
    ];
    let n = request.inputs.len().max(1);
    let i = rng.random_range(0..n);
    match rng.random_range(0..7) {
        0 => {
            if let Some(input) = request.inputs.get_mut(i) {
                let dim = DIMS[rng.random_range(0..DIMS.len())];
                match input.shape.len() {
                    0 => input.shape.push(dim),
                    len => input.shape[rng.random_range(0..len)] = dim,
                }
            }
        }
        1 => {
            if let Some(input) = request.inputs.get_mut(i) {
                input.shape.push(DIMS[rng.random_range(0..DIMS.len())]);
            }
        }
        2 => {
            if let Some(input) = request.inputs.get_mut(i) {
                input.datatype = DATATYPES[rng.random_range(0..DATATYPES.len())].into();
            }
        }
        3 => {
            if let Some(raw) = request.raw_input_contents.get_mut(i) {
                mutate(rng, raw);
            }
        }
        4 => {
            if request.raw_input_contents.is_empty() {
                request.raw_input_contents = vec![Vec::new(); request.inputs.len()];
            } else if rng.random_bool(0.5) {
                request.raw_input_contents.pop();
            } else {
                request.raw_input_contents.push(vec![0; 4]);
            }
        }
        5 => {
            if let Some(input) = request.inputs.get_mut(i) {
                let contents = input.contents.get_or_insert_with(Default::default);
                match rng.random_range(0..4) {
                    0 => contents.fp32_contents.push(rng.random()),
                    1 => contents.int_contents.push(rng.random()),
                    2 => contents.bytes_contents.push(vec![rng.random(); 3]),
                    _ => *contents = InferTensorContents::default(),
                }
            }
        }
        _ => {
            if let Some(input) = request.inputs.get(i).cloned() {
                request.inputs.push(input);
            }
        }
    }
}

#[test]
fn mutated_grpc_requests_never_panic_or_overreach() {
    let mut rng = StdRng::seed_from_u64(0x7769_6e6c_6f6f_7003);
    let seeds = grpc_seeds();
    let encoded: Vec<Vec<u8>> = seeds.iter().map(Message::encode_to_vec).collect();
    for _ in 0..ROUNDS {
        let mut request = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(1..5) {
            mutate_grpc(&mut rng, &mut request);
        }
        let body = request.encode_to_vec();
        check("gRPC", &body, || decode_infer_request(request));
        // The same through protobuf bytes, as tonic receives them.
        let body = mutated(&mut rng, &encoded);
        if let Ok(request) = ModelInferRequest::decode(body.as_slice()) {
            check("gRPC", &body, || decode_infer_request(request));
        }
    }
}

#[test]
fn the_reported_requests_reserve_nothing_for_their_shapes() {
    let body =
        br#"{"inputs":[{"name":"X","shape":[1000000000,4],"datatype":"FP32","data":[1,2,3,4]}]}"#;
    check("REST JSON", body, || decode_request(body, None));
    assert!(decode_request(body, None).is_err());

    let header = r#"{"inputs":[{"name":"S","shape":[1000000000000],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}"#;
    let body = [header.as_bytes(), &[2, 0, 0, 0, b'h', b'i']].concat();
    check("REST binary", &body, || {
        decode_request(&body, Some(header.len()))
    });

    // Within the element limit, still backed by nothing: the largest shapes the limit allows.
    for datatype in ["BYTES", "FP64"] {
        let request = ModelInferRequest {
            inputs: vec![InferInputTensor {
                name: "S".into(),
                datatype: datatype.into(),
                shape: vec![MAX_ELEMENTS as i64],
                ..Default::default()
            }],
            raw_input_contents: vec![vec![0; 8]],
            ..Default::default()
        };
        let body = request.encode_to_vec();
        check("gRPC", &body, || decode_infer_request(request));
    }
}
