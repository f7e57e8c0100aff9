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

    // A body sent past the limit: the server answers 413 from its Content-Length and may close
    // the connection while the client is still writing, which the client sees as a failed send.
    let huge = vec![b' '; 65 * 1024 * 1024];
    if let Ok(r) = http.post(&infer).body(huge).send().await {
        assert_eq!(r.status().as_u16(), 413);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("MiB"), "{body}");
    }

    // A body announced past the limit is refused from its Content-Length, before any of it
    // arrives: the client here never sends it.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    std::io::Write::write_all(
        &mut raw,
        b"POST /v2/models/sum/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1099511627776\r\n\r\n{",
    )
    .unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut raw, &mut head).expect("an answer within 5 s");
    assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head));
    // The rest of the answer, until the error names the limit or the server closes.
    let mut rest = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&rest).contains("MiB") {
        match std::io::Read::read(&mut raw, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
        }
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("MiB"),
        "a JSON error naming the limit: {rest}"
    );

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

/// `twinloop serve --auth` checks the tracking server's users and tokens: predictions need an
/// `infer` token or a caller who may read; model metadata needs a caller who may read (not an
/// `infer` token); health stays open; gRPC, which checks nothing yet, must be off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_auth_checks_the_stores_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tracking = support::TestServer::start_sqlite_auth(dir.path(), "serve-admin-pw");
    let token = |scope: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(["auth", "--backend-store-uri", &tracking.backend_uri])
            .args(["token", "create", "--user", "admin", "--scope", scope])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (infer_token, read_token) = (token("infer"), token("read"));
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../twinloop-serving/tests/models/feature_sum");
    let serve = |grpc_port: &str| {
        let port = support::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(["serve", "--auth", "--port", &port.to_string()])
            .args(["--grpc-port", grpc_port])
            .args(["--backend-store-uri", &tracking.backend_uri])
            .arg("--model")
            .arg(format!("sum={}", model.display()))
            .env("TWINLOOP_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (port, child)
    };
    let (_, refused) = serve("8081");
    let refused = refused.wait_with_output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--grpc-port 0"),
        "{refused:?}"
    );

    let (port, mut child) = serve("0");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    support::wait_v2_ready(&http, &base).await;
    let body = json!({"inputs": [
        {"name": "conv_rate", "shape": [1, 1], "datatype": "FP32", "data": [0.5]},
        {"name": "acc_rate", "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
    ]});
    let infer = format!("{base}/v2/models/sum/infer");
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    assert_eq!(status(http.post(&infer).json(&body)).await, 401);
    assert_eq!(
        status(http.post(&infer).json(&body).bearer_auth("tlp_forged")).await,
        401
    );
    assert_eq!(
        status(http.post(&infer).json(&body).bearer_auth(&infer_token)).await,
        200
    );
    assert_eq!(
        status(http.post(&infer).json(&body).bearer_auth(&read_token)).await,
        200
    );
    assert_eq!(
        status(
            http.post(&infer)
                .json(&body)
                .basic_auth("admin", Some("serve-admin-pw"))
        )
        .await,
        200
    );
    let metadata = format!("{base}/v2/models/sum");
    assert_eq!(
        status(http.get(&metadata).bearer_auth(&infer_token)).await,
        403
    );
    assert_eq!(
        status(http.get(&metadata).bearer_auth(&read_token)).await,
        200
    );
    assert_eq!(
        status(http.get(format!("{base}/v2/health/live"))).await,
        200
    );
    let _ = child.kill();
    let _ = child.wait();
}
