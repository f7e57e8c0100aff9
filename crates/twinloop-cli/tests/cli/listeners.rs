//! `twinloop serve` and `twinloop features serve` bound their clients as `twinloop server` does
//! (browser.rs, security/resources.rs): half-sent request heads are closed after
//! `--header-read-timeout` while other clients are served, and requests past
//! `--max-concurrent-requests` are answered 429 with Retry-After at once, in the listener's own
//! error shape. The `serve` cases need ONNX Runtime (scripts/install-onnxruntime.sh).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;

/// The child process, killed however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a listener is asked for real work, and what it answers.
struct Listener {
    base: String,
    port: u16,
    /// A route that does real work, and a body it answers 200.
    path: &'static str,
    body: Value,
    /// The top-level keys of the listener's error body.
    error_keys: &'static [&'static str],
    /// Health and metrics routes, which a full bound never refuses.
    probes: &'static [&'static str],
}

impl Listener {
    async fn ask(&self, http: &reqwest::Client) -> reqwest::Response {
        http.post(format!("{}{}", self.base, self.path))
            .json(&self.body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("an answer, not a hung or failed request")
    }

    /// A connection that has sent its head and part of a body: the handler has started, so it
    /// holds a permit until the connection goes.
    async fn hold(&self) -> tokio::net::TcpStream {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{",
            self.path
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp
    }
}

/// Fifty connections that never finish their head (or say nothing at all) are closed by the
/// server once the timeout passes, and a request sent meanwhile is answered.
async fn half_sent_heads_are_closed(listener: &Listener) {
    let http = reqwest::Client::new();
    let mut slow = Vec::new();
    for i in 0..50 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", listener.port))
            .await
            .unwrap();
        if i % 5 != 0 {
            tcp.write_all(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(tcp);
    }
    let answer = listener.ask(&http).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    let closed = slow.into_iter().map(|mut tcp| async move {
        let mut rest = Vec::new();
        // Bounds the test, not the server: it must close well before.
        tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut rest))
            .await
            .expect("the server closes a half-sent head")
            .ok();
    });
    futures::future::join_all(closed).await;
    let answer = listener.ask(&http).await;
    assert_eq!(answer.status(), 200);
}

/// With `bound` requests held in flight, every other request is refused at once with 429,
/// Retry-After and the listener's JSON error, while health and metrics still answer; once the
/// held requests go, requests are served again.
async fn requests_past_the_bound_are_refused(listener: &Listener, bound: usize) {
    let http = reqwest::Client::new();
    let mut held = Vec::new();
    for _ in 0..bound {
        held.push(listener.hold().await);
    }
    // The held requests reach their handlers in their own time on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    while listener.ask(&http).await.status() != 429 {
        assert!(Instant::now() < deadline, "the bound was never reached");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let extra = (0..20).map(|_| listener.ask(&http));
    for answer in futures::future::join_all(extra).await {
        assert_eq!(answer.status(), 429);
        assert_eq!(answer.headers()["retry-after"], "1");
        let body: Value = answer.json().await.unwrap();
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, listener.error_keys, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("Too many concurrent"),
            "{body}"
        );
    }
    for probe in listener.probes {
        let answer = http
            .get(format!("{}{probe}", listener.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{probe}");
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    while listener.ask(&http).await.status() != 200 {
        assert!(Instant::now() < deadline, "permits never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `twinloop serve` on the feature_sum fixture, with `extra` flags.
async fn serve(extra: &[&str]) -> (Running, Listener) {
    let port = support::free_port();
    let model = support::serving_fixture("feature_sum");
    let child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["serve", "--port", &port.to_string(), "--grpc-port", "0"])
        .arg("--model")
        .arg(format!("sum={}", model.display()))
        .args(extra)
        .env("TWINLOOP_LOG", "warn")
        .spawn()
        .unwrap();
    let running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    support::wait_v2_ready(&reqwest::Client::new(), &base).await;
    let listener = Listener {
        base,
        port,
        path: "/v2/models/sum/infer",
        body: json!({"inputs": [
            {"name": "conv_rate", "shape": [1, 1], "datatype": "FP32", "data": [0.5]},
            {"name": "acc_rate", "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
        ]}),
        error_keys: &["error"],
        probes: &["/v2/health/live", "/v2/health/ready", "/metrics"],
    };
    (running, listener)
}

/// `twinloop features serve` on a copy of the example repository, with `extra` flags.
async fn features_serve(dir: &std::path::Path, extra: &[&str]) -> (Running, Listener) {
    let repo = crate::features::copy_example(dir);
    let port = support::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["features", "--repo", repo.to_str().unwrap(), "serve"])
        .args(["--port", &port.to_string()])
        .args(extra)
        .env("TWINLOOP_LOG", "warn")
        .spawn()
        .unwrap();
    let running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "the feature server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listener = Listener {
        base,
        port,
        path: "/get-online-features",
        body: json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}),
        error_keys: &["code", "error"],
        probes: &["/health", "/metrics"],
    };
    (running, listener)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_closes_half_sent_heads() {
    let (_running, listener) = serve(&["--header-read-timeout", "1"]).await;
    half_sent_heads_are_closed(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_requests_past_its_bound() {
    let (_running, listener) = serve(&["--max-concurrent-requests", "2"]).await;
    requests_past_the_bound_are_refused(&listener, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_server_closes_half_sent_heads() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, listener) = features_serve(dir.path(), &["--header-read-timeout", "1"]).await;
    half_sent_heads_are_closed(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_server_refuses_requests_past_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, listener) =
        features_serve(dir.path(), &["--max-concurrent-requests", "2"]).await;
    requests_past_the_bound_are_refused(&listener, 2).await;
}
