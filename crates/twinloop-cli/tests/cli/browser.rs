//! Browser safety and resource limits on the real binary: a foreign Host is refused (DNS
//! rebinding) while /health answers probes; a cross-origin HTML form POST is refused while the
//! JSON client works; every answer carries the security headers; half-sent and idle connections
//! are closed; a search filter past the cost limit is a 400.

use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn foreign_host_is_refused_and_probes_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let search = format!(
        "{}/api/2.0/mlflow/experiments/search?max_results=1",
        server.url
    );

    let ok = c.get(&search).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert_eq!(ok.headers()["x-frame-options"], "DENY");
    assert!(ok.headers().get("access-control-allow-origin").is_none());

    let rebound = c
        .get(&search)
        .header("host", "attacker.example:5000")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 403);
    assert!(
        rebound
            .text()
            .await
            .unwrap()
            .contains("Invalid Host header")
    );

    let health = c
        .get(format!("{}/health", server.url))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn allowed_hosts_and_origins_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_with(
        dir.path(),
        &[
            "--allowed-hosts",
            "mlflow.example.com,127.0.0.1:*",
            "--cors-allowed-origins",
            "https://ui.example.com",
        ],
    );
    let c = reqwest::Client::new();
    let url = format!("{}/api/2.0/mlflow/experiments/create", server.url);
    let named = c
        .post(&url)
        .header("host", "mlflow.example.com")
        .header("origin", "https://ui.example.com")
        .json(&json!({"name": "from-ui"}))
        .send()
        .await
        .unwrap();
    assert_eq!(named.status().as_u16(), 200);
    assert_eq!(
        named.headers()["access-control-allow-origin"],
        "https://ui.example.com"
    );
    let localhost = c
        .get(format!(
            "{}/version",
            server.url.replace("127.0.0.1", "localhost")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(localhost.status().as_u16(), 200, "probes answer any host");
    let other = c
        .post(&url)
        .header("host", "localhost")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status().as_u16(),
        403,
        "the list replaces the default"
    );
}

#[tokio::test]
async fn cross_origin_form_post_is_refused_while_the_json_client_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let url = format!("{}/api/2.0/mlflow/experiments/create", server.url);

    let form = c
        .post(&url)
        .header("origin", "https://attacker.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=pwned")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 403);
    assert_eq!(form.text().await.unwrap(), "Cross-origin request blocked");

    // Without an Origin (a browser that omits it), the form's type alone is refused.
    for ty in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=b",
    ] {
        let resp = c
            .post(&url)
            .header("content-type", ty)
            .body(r#"{"name": "pwned"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{ty}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE", "{ty}");
    }

    let same_origin = c
        .post(&url)
        .header("origin", &server.url)
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status().as_u16(), 200);
    let client = c
        .post(&url)
        .json(&json!({"name": "client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(client.status().as_u16(), 200);

    let found: serde_json::Value = c
        .get(format!(
            "{}/api/2.0/mlflow/experiments/get-by-name?experiment_name=pwned",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["error_code"], "RESOURCE_DOES_NOT_EXIST");

    // Artifact uploads are bytes, not JSON.
    let put = c
        .put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/a.bin",
            server.url
        ))
        .header("content-type", "application/octet-stream")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
}

#[tokio::test]
async fn half_sent_and_idle_connections_are_closed() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_with(dir.path(), &["--header-read-timeout", "1"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let closed = |first: &[u8]| {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        // Bounds the test, not the server: it must close well before.
        conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        conn.write_all(first).unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest)
            .expect("the server closes the connection");
    };
    closed(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    closed(b"");
    let health = reqwest::get(format!("{}/health", server.url))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn a_filter_past_the_cost_limit_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let url = format!("{}/api/2.0/mlflow/runs/search", server.url);
    let filter = vec!["metrics.m > 0"; 300].join(" AND ");
    let resp = c
        .post(&url)
        .json(&json!({"experiment_ids": ["0"], "filter": filter}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    assert!(
        body["message"].as_str().unwrap().contains("clauses"),
        "{body}"
    );
    let ok = c
        .post(&url)
        .json(&json!({"experiment_ids": ["0"], "filter": "metrics.m > 0 AND params.p = 'a'"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}
