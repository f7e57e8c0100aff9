//! The HTTP surface of the real binary: MLflow error shapes, hostile input, artifacts, shutdown.

use serde_json::{Value, json};

use crate::support::{TestServer, post_json};

#[tokio::test]
async fn health_version_and_unknown_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{}/health", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "OK"
    );
    let v = c
        .get(format!("{}/version", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(v.starts_with("3."), "{v}");
    let resp = c.get(server.api("nope/nothing")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let info: Value = c
        .get(format!("{}/api/3.0/mlflow/server-info", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["multipart_uploads_enabled"], json!(false));
}

#[tokio::test]
async fn bad_input_gets_mlflow_shaped_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();

    let resp = c
        .post(server.api("runs/create"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");

    let cases = [
        (
            "runs/create",
            json!({"experiment_id": [1]}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/create",
            json!({"experiment_id": "424242"}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "runs/create",
            json!({"experiment_id": "abc"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-metric",
            json!({"run_id": "0123456789abcdef0123456789abcdef", "key": "m", "value": 1, "timestamp": 1}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "runs/log-metric",
            json!({"run_id": "x", "key": "m", "value": "lots", "timestamp": 1}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-metric",
            json!({"key": "m", "value": 1, "timestamp": 1}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "experiments/create",
            json!({}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "experiments/create",
            json!({"name": 7}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "experiments/search",
            json!({"filter": "name = "}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "experiments/search",
            json!({"max_results": 99999999}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/search",
            json!({"experiment_ids": ["0"], "filter": "metrics.x > 1 OR metrics.y > 2"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/search",
            json!({"experiment_ids": ["0"], "page_token": "%%%"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/search",
            json!({"experiment_ids": ["0"], "run_view_type": "SOME"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, reply) = post_json(&c, &server.api(path), body.clone()).await;
        assert_eq!(
            (got, reply["error_code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {reply}"
        );
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let (status, _) = post_json(
        &c,
        &server.api("experiments/create"),
        json!({"name": "dup"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, reply) = post_json(
        &c,
        &server.api("experiments/create"),
        json!({"name": "dup"}),
    )
    .await;
    assert_eq!(
        (status, reply["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );

    let resp = c
        .get(server.api("experiments/get-by-name?experiment_name=missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = c.get(server.api("experiments/get")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // A body announced far over the limit is refused before it is read.
    let reply = server.raw(&format!(
        "POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"name\": \"xxxx",
        64 * 1024 * 1024
    ));
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("\"error_code\":\"INVALID_PARAMETER_VALUE\""),
        "{reply}"
    );

    // The server is still healthy after all of that.
    assert_eq!(
        c.get(format!("{}/health", server.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn artifact_paths_cannot_escape_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let base = format!("{}/api/2.0/mlflow-artifacts/artifacts", server.url);

    let put = c
        .put(format!("{base}/0/run/artifacts/a%20b.txt"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    assert_eq!(
        c.get(format!("{base}/0/run/artifacts/a%20b.txt"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "hello"
    );
    let listing: Value = c
        .get(format!("{base}?path=0/run/artifacts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listing,
        json!({"files": [{"path": "a b.txt", "is_dir": false, "file_size": 5}]})
    );
    let empty: Value = c
        .get(format!("{base}?path=0/run/artifacts/a%20b.txt"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({}));
    let missing = c
        .get(format!("{base}/0/run/artifacts/none.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    let escapes = [
        "PUT /api/2.0/mlflow-artifacts/artifacts/../../escaped.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
        "PUT /api/2.0/mlflow-artifacts/artifacts/%2e%2e/%2e%2e/escaped.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
        "PUT /api/2.0/mlflow-artifacts/artifacts/%2Fetc%2Fescaped.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
        "PUT /api/2.0/mlflow-artifacts/artifacts/a/..%5C..%5Cescaped.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
        "GET /api/2.0/mlflow-artifacts/artifacts/../../../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /api/2.0/mlflow-artifacts/artifacts?path=../../etc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /api/2.0/mlflow-artifacts/artifacts?path=/etc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "DELETE /api/2.0/mlflow-artifacts/artifacts/%2e%2e HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        // the tracking routes' artifact views check the path before looking up its owner
        "GET /get-artifact?run_id=r&path=../../../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /model-versions/get-artifact?name=m&version=1&path=%2Fetc%2Fpasswd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /api/2.0/mlflow/artifacts/list?run_id=r&path=..%2F.. HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /ajax-api/2.0/mlflow/logged-models/m-1/artifacts/files?artifact_file_path=../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /api/2.0/mlflow/logged-models/m-1/artifacts/directories?artifact_directory_path=/etc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ];
    for request in escapes {
        let reply = server.raw(request);
        let status: u16 = reply.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!((400..500).contains(&status), "{request}\n=> {reply}");
        assert!(!reply.contains("root:"), "leaked /etc/passwd");
    }
    for leaked in [
        dir.path().join("escaped.txt"),
        dir.path().parent().unwrap().join("escaped.txt"),
        "/etc/escaped.txt".into(),
    ] {
        assert!(!leaked.exists(), "{} was written", leaked.display());
    }

    let del = c
        .delete(format!("{base}/0/run/artifacts/a%20b.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 200);
    let after: Value = c
        .get(format!("{base}?path=0/run/artifacts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after, json!({}));
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_sqlite(dir.path());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn bad_flags_fail_with_a_hint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "server",
            "--backend-store-uri",
            "mysql://nope/x",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("postgresql://"), "{stderr}");
}
