//! Hostile infer requests against the real `twinloop serve`: shapes that declare far more than
//! is sent (once enough to make the process reserve 128 GB and abort), negative and overflowing
//! dimensions, sizes and length prefixes past the body, over REST JSON, REST binary and gRPC.
//! Each must be answered 400 / INVALID_ARGUMENT naming the problem, and the server must go on
//! answering. Needs ONNX Runtime (scripts/install-onnxruntime.sh).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support;
use crate::support::grpc::{self, fp32_contents, infer_request, input, raw_output_contents};

struct Serve {
    child: Child,
    http: reqwest::Client,
    grpc: reqwest::Client,
    infer: String,
    grpc_infer: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start() -> Serve {
        let model = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../twinloop-serving/tests/models/feature_sum");
        let (port, grpc_port) = (support::free_port(), support::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(["serve", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--grpc-port", &grpc_port.to_string()])
            .arg("--model")
            .arg(format!("sum={}", model.display()))
            .env("TWINLOOP_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // A generous bound so that a server that stops answering fails the test, not hangs it.
        let timeout = Duration::from_secs(60);
        let serve = Serve {
            child,
            http: reqwest::Client::builder().timeout(timeout).build().unwrap(),
            grpc: grpc::client(timeout),
            infer: format!("http://127.0.0.1:{port}/v2/models/sum/infer"),
            grpc_infer: format!(
                "http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer"
            ),
        };
        let ready = format!("http://127.0.0.1:{port}/v2/health/ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !serve
            .http
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        serve
    }

    /// The status and the JSON body of a REST infer call; `header_length` sends the binary
    /// extension's header.
    async fn rest(&self, body: Vec<u8>, header_length: Option<usize>) -> (u16, Value) {
        let mut request = self.http.post(&self.infer).body(body);
        if let Some(n) = header_length {
            request = request.header("Inference-Header-Content-Length", n);
        }
        let response = request.send().await.expect("serve answers REST");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// The gRPC status code and message of a `ModelInfer` call, and the response message.
    async fn grpc(&self, message: &[u8]) -> (u32, String, Vec<u8>) {
        grpc::call(&self.grpc, &self.grpc_infer, message, None).await
    }

    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "serve exited after a hostile request"
        );
    }

    /// A good request over each transport is still answered, with the model's sum.
    async fn assert_answers(&mut self) {
        self.assert_alive();
        let good = json!({"inputs": [
            {"name": "conv_rate", "shape": [1, 1], "datatype": "FP32", "data": [[0.5]]},
            {"name": "acc_rate", "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
        ]});
        let (status, body) = self.rest(good.to_string().into_bytes(), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outputs"][0]["data"], json!([1.5]), "{body}");

        let (header, binary) = binary_inputs(&[("conv_rate", 0.5), ("acc_rate", 1.0)]);
        let (status, body) = self
            .rest([header.as_bytes(), &binary].concat(), Some(header.len()))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outputs"][0]["data"], json!([1.5]), "{body}");

        let message = infer_request(
            &[
                input("conv_rate", "FP32", &[1, 1], None),
                input("acc_rate", "FP32", &[1, 1], None),
            ],
            &[&0.5f32.to_le_bytes(), &1.0f32.to_le_bytes()],
        );
        let (code, message, reply) = self.grpc(&message).await;
        assert_eq!(code, 0, "{message}");
        assert_eq!(
            raw_output_contents(&reply),
            [1.5f32.to_le_bytes().to_vec()],
            "{reply:?}"
        );
        self.assert_alive();
    }
}

/// A binary-extension header for FP32 `[1, 1]` inputs, and the bytes that follow it.
fn binary_inputs(inputs: &[(&str, f32)]) -> (String, Vec<u8>) {
    let header = json!({"inputs": inputs
        .iter()
        .map(|(name, _)| json!({"name": name, "shape": [1, 1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}))
        .collect::<Vec<_>>()});
    let binary = inputs.iter().flat_map(|(_, v)| v.to_le_bytes()).collect();
    (header.to_string(), binary)
}

fn bytes_element(declared_len: u32, bytes: &[u8]) -> Vec<u8> {
    [&declared_len.to_le_bytes()[..], bytes].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_shapes_and_sizes_are_refused_and_the_server_stays_up() {
    let mut serve = Serve::start().await;
    serve.assert_answers().await;

    let fp32 = |shape: Value, data: Value| json!({"inputs": [{"name": "X", "shape": shape, "datatype": "FP32", "data": data}]});
    let rest_json = [
        // The reported request.
        (
            fp32(json!([1_000_000_000, 4]), json!([1, 2, 3, 4])),
            "is too large",
        ),
        (
            json!({"inputs": [{"name": "X", "shape": [1_000_000_000_000u64], "datatype": "BYTES", "data": ["a"]}]}),
            "is too large",
        ),
        (fp32(json!([-1, 1]), json!([1])), "negative dimension"),
        (
            fp32(json!([i64::MAX, i64::MAX]), json!([1])),
            "is too large",
        ),
        // 2^32 * 2^32 overflows a 64-bit usize.
        (
            fp32(json!([1u64 << 32, 1u64 << 32]), json!([1])),
            "is too large",
        ),
        (
            fp32(json!([67_108_864]), json!([1])),
            "needs 67108864 elements, data has 1",
        ),
        (
            fp32(json!([0, 1]), json!([1])),
            "needs 0 elements, data has 1",
        ),
        (
            fp32(json!([2, 1]), json!([[1], [2], [3]])),
            "needs 2 elements, data has 3",
        ),
        (
            fp32(json!([3, 1]), json!([[1], [2]])),
            "needs 3 elements, data has 2",
        ),
    ];
    for (body, needle) in rest_json {
        let (status, answer) = serve.rest(body.to_string().into_bytes(), None).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("input \"X\": ") && error.contains(needle),
            "{body} -> {answer} lacks {needle}"
        );
        serve.assert_answers().await;
    }

    let binary = |datatype: &str, shape: Value, size: Value| json!({"inputs": [{"name": "X", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}]});
    let rest_binary = [
        // The reported request over the binary extension.
        (
            binary("BYTES", json!([1_000_000_000_000u64]), json!(6)),
            bytes_element(2, b"hi"),
            "is too large",
        ),
        (
            binary("FP32", json!([1_000_000_000, 4]), json!(16)),
            vec![0; 16],
            "is too large",
        ),
        (
            binary("FP32", json!([2, 1]), json!(1_000_000_000_000u64)),
            vec![0; 8],
            "binary_data_size is 1000000000000 but only 8 bytes of binary data remain",
        ),
        (
            binary("FP32", json!([2, 1]), json!(-1)),
            vec![0; 8],
            "binary_data_size is -1, not a byte count",
        ),
        (
            binary("FP32", json!([2, 1]), json!(4)),
            vec![0; 4],
            "binary data holds 4 bytes, but 2 FP32 elements need 8",
        ),
        (
            binary("BYTES", json!([1]), json!(6)),
            bytes_element(u32::MAX, b"ab"),
            "its length prefix says 4294967295 bytes, 2 remain",
        ),
        (
            binary("BYTES", json!([4]), json!(8)),
            vec![0; 8],
            "too few for 4 BYTES elements",
        ),
    ];
    for (header, data, needle) in rest_binary {
        let header = header.to_string();
        let (status, answer) = serve
            .rest([header.as_bytes(), &data].concat(), Some(header.len()))
            .await;
        assert_eq!(status, 400, "{header} -> {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("input \"X\": ") && error.contains(needle),
            "{header} -> {answer} lacks {needle}"
        );
        serve.assert_answers().await;
    }
    let (status, answer) = serve
        .rest(b"{\"inputs\": []}".to_vec(), Some(1 << 40))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap_or_default().contains(
            "Inference-Header-Content-Length is 1099511627776 but the body has only 14 bytes"
        ),
        "{answer}"
    );
    serve.assert_answers().await;

    let grpc = [
        // The reported request over gRPC, raw and typed.
        (
            infer_request(
                &[input("X", "FP32", &[1_000_000_000, 4], None)],
                &[&[0; 16]],
            ),
            "is too large",
        ),
        (
            infer_request(
                &[input(
                    "X",
                    "FP32",
                    &[1_000_000_000, 4],
                    Some(fp32_contents(&[1.0, 2.0, 3.0, 4.0])),
                )],
                &[],
            ),
            "is too large",
        ),
        (
            infer_request(
                &[input("X", "BYTES", &[1_000_000_000_000], None)],
                &[&bytes_element(2, b"hi")],
            ),
            "is too large",
        ),
        (
            infer_request(&[input("X", "FP32", &[-1, 1], None)], &[&[0; 4]]),
            "negative dimension",
        ),
        (
            infer_request(&[input("X", "FP32", &[i64::MAX, 2], None)], &[&[0; 8]]),
            "is too large",
        ),
        (
            infer_request(&[input("X", "FP32", &[2, 1], None)], &[&[0; 7]]),
            "binary data holds 7 bytes, but 2 FP32 elements need 8",
        ),
        (
            infer_request(&[input("X", "FP32", &[2, 1], None)], &[&[0; 9]]),
            "binary data holds 9 bytes, but 2 FP32 elements need 8",
        ),
        (
            infer_request(
                &[input("X", "BYTES", &[1], None)],
                &[&bytes_element(u32::MAX, b"ab")],
            ),
            "its length prefix says 4294967295 bytes, 2 remain",
        ),
        (
            infer_request(
                &[input(
                    "X",
                    "FP32",
                    &[3, 1],
                    Some(fp32_contents(&[1.0, 2.0])),
                )],
                &[],
            ),
            "needs 3 elements, fp32_contents has 2",
        ),
    ];
    for (message, needle) in grpc {
        let (code, error, _) = serve.grpc(&message).await;
        assert_eq!(code, 3, "INVALID_ARGUMENT expected: {error}");
        assert!(
            error.starts_with("input \"X\": ") && error.contains(needle),
            "{error} lacks {needle}"
        );
        serve.assert_answers().await;
    }
    let mismatched = infer_request(&[input("X", "FP32", &[1], None)], &[&[0; 4], &[0; 4]]);
    let (code, error, _) = serve.grpc(&mismatched).await;
    assert_eq!(
        (code, error.as_str()),
        (3, "1 inputs but 2 raw_input_contents")
    );
    serve.assert_answers().await;
}
