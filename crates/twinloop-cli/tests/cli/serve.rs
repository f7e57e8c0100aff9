//! `twinloop serve` on a local model directory: readiness, limits that answer with JSON errors,
//! NaN outputs returned and counted, and a prediction log written on a graceful stop.
//! Needs ONNX Runtime (scripts/install-onnxruntime.sh).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_json_errors_and_nan_is_returned_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../twinloop-serving/tests/models/feature_sum");
    let port = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--grpc-port",
            "0",
            "--max-batch-size",
            "2",
        ])
        .arg("--model")
        .arg(format!("sum={}", model.display()))
        .arg("--prediction-log")
        .arg(dir.path().join("log"))
        .env("TWINLOOP_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    support::wait_v2_ready(&http, &base).await;
    let rows = |n: usize, value: Value| {
        json!({"inputs": [
            {"name": "conv_rate", "shape": [n, 1], "datatype": "FP32", "data": vec![value.clone(); n]},
            {"name": "acc_rate", "shape": [n, 1], "datatype": "FP32", "data": vec![1.0; n]},
        ]})
    };
    let infer = format!("{base}/v2/models/sum/infer");

    let r = http
        .post(&infer)
        .json(&rows(1, json!("NaN")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["outputs"][0]["data"], json!(["NaN"]));

    let r = http
        .post(&infer)
        .json(&rows(3, json!(0.5)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("max_batch_size"),
        "{body}"
    );

    let huge = vec![b' '; 65 * 1024 * 1024];
    let r = http.post(&infer).body(huge).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("MiB"), "{body}");

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("twinloop_serving_nan_outputs_total{deployment=\"sum\",version=\"1\"} 1"),
        "{metrics}"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    let logged = support::prediction_log_rows(&dir.path().join("log/predictions/sum"));
    assert_eq!(
        logged.iter().filter(|(role, ..)| role == "primary").count(),
        2,
        "{logged:?}"
    );
}
