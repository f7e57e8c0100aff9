//! `twinloop serve` and `twinloop features serve` bound their clients as `twinloop server` does
//! (browser.rs, security/resources.rs): half-sent request heads are closed after
//! `--header-read-timeout` while other clients are served, a body that stops arriving is
//! answered 408 after as long (`twinloop server` too), and requests past
//! `--max-concurrent-requests` are answered 429 with Retry-After at once, in the listener's own
//! error shape. `twinloop serve`'s gRPC port closes connections that never send HTTP/2's
//! preface, and refuses calls past one bound shared by its connections with
//! RESOURCE_EXHAUSTED while health calls still answer. The `serve` cases need ONNX Runtime
//! (scripts/install-onnxruntime.sh).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;
use crate::support::grpc::{self, infer_request, input, named, raw_output_contents};

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

/// A client that opens a connection per request. The server closes an idle keep-alive
/// connection once `--header-read-timeout` passes, which is exactly how long these tests wait,
/// so a pooled one could be closed under the second request.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Fifty connections that never finish their head (or say nothing at all) are closed by the
/// server once the timeout passes, and a request sent meanwhile is answered.
async fn half_sent_heads_are_closed(listener: &Listener) {
    let http = fresh_connections();
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

/// The message of a listener's error body, whichever its shape.
fn message_of(body: &Value) -> &str {
    body.get("error")
        .or_else(|| body.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no message in {body}"))
}

/// Requests that announce 1,000 bytes of body and send 10 are answered 408 in the listener's
/// error shape once the timeout passes, and the connection is closed; a request sent meanwhile
/// is answered.
async fn stalled_bodies_are_answered_408(listener: &Listener) {
    let http = fresh_connections();
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", listener.port))
            .await
            .unwrap();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"inputs\":",
            listener.path
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        stalled.push(tcp);
    }
    let answer = listener.ask(&http).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    let answered = stalled.into_iter().map(|mut tcp| async move {
        let mut reply = Vec::new();
        // Bounds the test, not the server: it must answer well before.
        tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut reply))
            .await
            .expect("the server answers a stalled body and closes")
            .unwrap();
        String::from_utf8(reply).unwrap()
    });
    for reply in futures::future::join_all(answered).await {
        assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
        let (_, body) = reply.split_once("\r\n\r\n").unwrap();
        let body: Value = serde_json::from_str(body).unwrap();
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, listener.error_keys, "{body}");
        assert!(message_of(&body).contains("timed out"), "{body}");
    }
    let answer = listener.ask(&http).await;
    assert_eq!(answer.status(), 200);
}

/// With `bound` requests held in flight, every other request is refused at once with 429,
/// Retry-After and the listener's JSON error, while health and metrics still answer; once the
/// held requests go, requests are served again.
async fn requests_past_the_bound_are_refused(listener: &Listener, bound: usize) {
    let http = reqwest::Client::new();
    let mut held = Vec::new();
    while held.len() < bound {
        let tcp = listener.hold().await;
        // A request answered just before may hold its permit until its response is written:
        // a hold refused 429 for that is sent again.
        let mut first = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(200), tcp.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => held.push(tcp),
        }
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
        assert!(message_of(&body).contains("Too many concurrent"), "{body}");
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

/// `twinloop serve` on the feature_sum fixture, with `extra` flags; and its gRPC port.
async fn serve(extra: &[&str]) -> (Running, Listener, u16) {
    let (port, grpc_port) = (support::free_port(), support::free_port());
    let model = support::serving_fixture("feature_sum");
    let child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["serve", "--port", &port.to_string()])
        .args(["--grpc-port", &grpc_port.to_string()])
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
    (running, listener, grpc_port)
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

/// The URL of a method of the inference service on `port`.
fn grpc_url(port: u16, method: &str) -> String {
    format!("http://127.0.0.1:{port}/inference.GRPCInferenceService/{method}")
}

/// A `ModelInfer` call of the `sum` model over `client`: its status code and message, and the
/// sum when it was answered.
async fn grpc_infer(client: &reqwest::Client, port: u16) -> (u32, String, Option<Vec<u8>>) {
    let message = infer_request(
        &[
            input("conv_rate", "FP32", &[1, 1], None),
            input("acc_rate", "FP32", &[1, 1], None),
        ],
        &[&0.5f32.to_le_bytes(), &1.0f32.to_le_bytes()],
    );
    let (code, text, reply) =
        grpc::call(client, &grpc_url(port, "ModelInfer"), &message, None).await;
    let sum = (code == 0).then(|| raw_output_contents(&reply).concat());
    (code, text, sum)
}

/// One HTTP/2 frame.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A `ModelInfer` call on a connection of its own whose message never finishes arriving: the
/// server has started the call (written by hand, as reqwest cannot leave a body unfinished).
async fn held_grpc_call(port: u16) -> tokio::net::TcpStream {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, 4, 0, 0, &[]);
    // HPACK literals without indexing or Huffman coding.
    let mut headers = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/inference.GRPCInferenceService/ModelInfer"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        headers.push(0);
        headers.push(u8::try_from(name.len()).unwrap());
        headers.extend_from_slice(name.as_bytes());
        headers.push(u8::try_from(value.len()).unwrap());
        headers.extend_from_slice(value.as_bytes());
    }
    frame(&mut out, 1, 0x4, 1, &headers);
    // A message announced as 100 bytes, of which 2 come.
    frame(&mut out, 0, 0, 1, &[0, 0, 0, 0, 100, 0x0a, 0x03]);
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(&out).await.unwrap();
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_closes_grpc_connections_that_never_send_the_preface() {
    let (_running, _listener, grpc_port) = serve(&["--header-read-timeout", "1"]).await;
    let mut silent = Vec::new();
    for i in 0..50 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", grpc_port))
            .await
            .unwrap();
        // Most send half the preface; some say nothing at all.
        if i % 5 != 0 {
            tcp.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        silent.push(tcp);
    }
    let client = grpc::client(Duration::from_secs(30));
    let (code, text, sum) = grpc_infer(&client, grpc_port).await;
    assert_eq!(code, 0, "{text}");
    assert_eq!(sum, Some(1.5f32.to_le_bytes().to_vec()));
    let closed = silent.into_iter().map(|mut tcp| async move {
        let mut rest = Vec::new();
        // Bounds the test, not the server: it must close well before.
        tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut rest))
            .await
            .expect("the server closes a connection without a preface")
            .ok();
    });
    futures::future::join_all(closed).await;
    let (code, text, _) = grpc_infer(&grpc::client(Duration::from_secs(30)), grpc_port).await;
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_grpc_calls_past_one_bound_for_all_connections() {
    let (_running, listener, grpc_port) = serve(&["--max-concurrent-requests", "2"]).await;
    // Two connections, one call each: a bound per connection would let a third through.
    let held = vec![
        held_grpc_call(grpc_port).await,
        held_grpc_call(grpc_port).await,
    ];
    let client = grpc::client(Duration::from_secs(30));
    // The held calls reach the server in their own time on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let (code, text, _) = grpc_infer(&client, grpc_port).await;
        if code != 0 {
            break (code, text);
        }
        assert!(Instant::now() < deadline, "the bound was never reached");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // RESOURCE_EXHAUSTED, gRPC's code 8.
    assert_eq!(refused.0, 8, "{}", refused.1);
    assert!(refused.1.contains("Too many concurrent"), "{}", refused.1);
    for method in ["ModelMetadata", "ServerMetadata"] {
        let (code, _, _) =
            grpc::call(&client, &grpc_url(grpc_port, method), &named("sum"), None).await;
        assert_eq!(code, 8, "{method}");
    }
    // Health is never refused.
    let (code, text, reply) =
        grpc::call(&client, &grpc_url(grpc_port, "ServerLive"), &[], None).await;
    assert_eq!((code, reply), (0, vec![0x08, 0x01]), "{text}");
    let (code, text, reply) =
        grpc::call(&client, &grpc_url(grpc_port, "ServerReady"), &[], None).await;
    assert_eq!((code, reply), (0, vec![0x08, 0x01]), "{text}");
    let (code, text, reply) = grpc::call(
        &client,
        &grpc_url(grpc_port, "ModelReady"),
        &named("sum"),
        None,
    )
    .await;
    assert_eq!((code, reply), (0, vec![0x08, 0x01]), "{text}");
    // The REST port has a bound of its own.
    let answer = listener.ask(&reqwest::Client::new()).await;
    assert_eq!(answer.status(), 200);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _, sum) = grpc_infer(&client, grpc_port).await;
        if code == 0 {
            assert_eq!(sum, Some(1.5f32.to_le_bytes().to_vec()));
            break;
        }
        assert!(Instant::now() < deadline, "permits never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracking_server_answers_a_stalled_body_408() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        support::TestServer::start_sqlite_with(dir.path(), &["--header-read-timeout", "1"]);
    let listener = Listener {
        base: server.url.clone(),
        port: server.port,
        path: "/api/2.0/mlflow/experiments/search",
        body: json!({"max_results": 1}),
        error_keys: &["error_code", "message"],
        probes: &["/health"],
    };
    stalled_bodies_are_answered_408(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_closes_half_sent_heads_and_stalled_bodies() {
    let (_running, listener, _) = serve(&["--header-read-timeout", "1"]).await;
    half_sent_heads_are_closed(&listener).await;
    stalled_bodies_are_answered_408(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_requests_past_its_bound() {
    let (_running, listener, _) = serve(&["--max-concurrent-requests", "2"]).await;
    requests_past_the_bound_are_refused(&listener, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_server_closes_half_sent_heads_and_stalled_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, listener) = features_serve(dir.path(), &["--header-read-timeout", "1"]).await;
    half_sent_heads_are_closed(&listener).await;
    stalled_bodies_are_answered_408(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_server_refuses_requests_past_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, listener) =
        features_serve(dir.path(), &["--max-concurrent-requests", "2"]).await;
    requests_past_the_bound_are_refused(&listener, 2).await;
}
