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

/// `twinloop serve --auth` checks the tracking server's users and tokens, on its REST and gRPC
/// ports alike: predictions need an `infer` token or a caller who may read; model metadata needs
/// a caller who may read (not an `infer` token); health stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_auth_checks_the_stores_tokens_over_rest_and_grpc() {
    use support::grpc;
    let dir = tempfile::tempdir().unwrap();
    let tracking = support::TestServer::start_sqlite_auth(dir.path(), "serve-admin-pw");
    // A user without the admin's reach: with NO_PERMISSIONS as the default level, their `read`
    // token may read nothing, and so may not predict either (it is no `infer` token).
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/api/2.0/mlflow/users/create", tracking.url))
        .basic_auth("admin", Some("serve-admin-pw"))
        .json(&json!({"username": "carol", "password": "carol-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let token = |user: &str, scope: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(["auth", "--backend-store-uri", &tracking.backend_uri])
            .args(["token", "create", "--user", user, "--scope", scope])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let bearer = |token: String| format!("Bearer {token}");
    let infer_token = bearer(token("admin", "infer"));
    let read_token = bearer(token("admin", "read"));
    let carols_read_token = bearer(token("carol", "read"));
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../twinloop-serving/tests/models/feature_sum");
    let (port, grpc_port) = (support::free_port(), support::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["serve", "--auth", "--port", &port.to_string()])
        .args(["--grpc-port", &grpc_port.to_string()])
        .args(["--backend-store-uri", &tracking.backend_uri])
        .args(["--default-permission", "NO_PERMISSIONS"])
        .arg("--model")
        .arg(format!("sum={}", model.display()))
        .env("TWINLOOP_LOG", "warn")
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    support::wait_v2_ready(&http, &base).await;
    let body = json!({"inputs": [
        {"name": "conv_rate", "shape": [1, 1], "datatype": "FP32", "data": [0.5]},
        {"name": "acc_rate", "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
    ]});
    let rpc = grpc::client(std::time::Duration::from_secs(30));
    let method =
        |name: &str| format!("http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/{name}");
    let grpc_infer = grpc::infer_request(
        &[
            grpc::input("conv_rate", "FP32", &[1, 1], None),
            grpc::input("acc_rate", "FP32", &[1, 1], None),
        ],
        &[&0.5f32.to_le_bytes(), &1.0f32.to_le_bytes()],
    );
    let bad_password = basic("admin", "wrong");
    let admin = basic("admin", "serve-admin-pw");
    // (who, authorization, REST status, gRPC code): 401 is UNAUTHENTICATED (16), 403
    // PERMISSION_DENIED (7).
    let infer_cases = [
        ("anonymous", None, 401, 16),
        ("a wrong password", Some(bad_password.as_str()), 401, 16),
        ("a forged token", Some("Bearer tlp_forged"), 401, 16),
        (
            "a read token that may read nothing",
            Some(carols_read_token.as_str()),
            403,
            7,
        ),
        ("an infer token", Some(infer_token.as_str()), 200, 0),
        ("a read token", Some(read_token.as_str()), 200, 0),
        ("the admin's password", Some(admin.as_str()), 200, 0),
    ];
    for (who, authorization, rest_status, grpc_code) in infer_cases {
        let mut request = http.post(format!("{base}/v2/models/sum/infer")).json(&body);
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert_eq!(status, rest_status, "REST infer as {who}");
        let (code, message, reply) =
            grpc::call(&rpc, &method("ModelInfer"), &grpc_infer, authorization).await;
        assert_eq!(code, grpc_code, "gRPC ModelInfer as {who}: {message}");
        match code {
            0 => assert_eq!(
                grpc::raw_output_contents(&reply),
                vec![1.5f32.to_le_bytes().to_vec()],
                "{who}"
            ),
            16 => assert!(message.contains("not authenticated"), "{message}"),
            _ => assert_eq!(message, "Permission denied"),
        }
    }
    let metadata_cases = [
        ("an infer token", infer_token.as_str(), 403, 7),
        ("a read token", read_token.as_str(), 200, 0),
    ];
    for (who, authorization, rest_status, grpc_code) in metadata_cases {
        let status = http
            .get(format!("{base}/v2/models/sum"))
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, rest_status, "REST metadata as {who}");
        let (code, message, _) = grpc::call(
            &rpc,
            &method("ModelMetadata"),
            &grpc::named("sum"),
            Some(authorization),
        )
        .await;
        assert_eq!(code, grpc_code, "gRPC ModelMetadata as {who}: {message}");
    }
    let live = http
        .get(format!("{base}/v2/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);
    let (code, message, _) = grpc::call(&rpc, &method("ServerLive"), &[], None).await;
    assert_eq!(code, 0, "{message}");
    let _ = child.kill();
    let _ = child.wait();
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}
