//! Registry webhooks on the real binary: a local receiver fails the first delivery, the server
//! retries, the body is signed with the secret, and the delivery log shows both attempts; a
//! receiver that always fails gets a bounded number of attempts; `twinloop webhooks` adds, lists
//! and removes them, and examples/webhook_receiver.py checks their signatures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{self, TestServer};

struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

/// A one-route HTTP receiver that answers 500 to the first `failures` requests and 200 after.
fn receiver(failures: usize) -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let fail = {
                let mut log = log.lock().unwrap();
                log.push(Received {
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                log.len() <= failures
            };
            let status = if fail {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let mut stream = reader.into_inner();
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (port, got)
}

async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> (u16, Value) {
    let resp = c.request(method, url).json(&body).send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn alias_moves_reach_a_webhook_signed_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_with(dir.path(), &["--outbound-allow", "127.0.0.1"]);
    let c = reqwest::Client::new();
    let hooks = format!("{}/api/twinloop/v1/registry/webhooks", server.url);
    let (port, received) = receiver(1);
    let secret = "a-long-shared-secret";

    for bad in [
        json!({"url": "ftp://127.0.0.1/x", "secret": secret}),
        json!({"url": "http://127.0.0.1/x", "secret": "short"}),
        json!({"url": "http://127.0.0.1/x", "secret": secret, "events": ["NOT_A_KIND"]}),
        json!({"secret": secret}),
    ] {
        let (status, body) = call(&c, reqwest::Method::POST, hooks.clone(), bad.clone()).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (400, Some("INVALID_PARAMETER_VALUE")),
            "{bad}"
        );
    }
    let (status, created) = call(
        &c,
        reqwest::Method::POST,
        hooks.clone(),
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": secret, "events": ["ALIAS_SET"], "model_name": "fraud"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert!(
        created["webhook"].get("secret").is_none(),
        "the secret is never echoed"
    );
    let id = created["webhook"]["id"].as_i64().unwrap();

    call(
        &c,
        reqwest::Method::POST,
        server.api("registered-models/create"),
        json!({"name": "fraud"}),
    )
    .await;
    call(
        &c,
        reqwest::Method::POST,
        server.api("model-versions/create"),
        json!({"name": "fraud", "source": "mlflow-artifacts:/b/m"}),
    )
    .await;
    let (status, _) = call(
        &c,
        reqwest::Method::POST,
        server.api("registered-models/alias"),
        json!({"name": "fraud", "alias": "champion", "version": "1"}),
    )
    .await;
    assert_eq!(status, 200);

    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = std::mem::take(&mut *received.lock().unwrap());
    assert_eq!(
        got.len(),
        2,
        "one failed attempt, one retry; nothing for other event kinds"
    );
    for r in got.iter() {
        let event: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (
                event["kind"].as_str(),
                event["alias"].as_str(),
                event["after"].as_str()
            ),
            (Some("ALIAS_SET"), Some("champion"), Some("1"))
        );
        let header = |k: &str| {
            r.headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(r.body.as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            header("x-twinloop-signature-256"),
            format!("sha256={expected}")
        );
        assert_eq!(header("x-twinloop-event"), "ALIAS_SET");
    }

    // The second attempt is logged just after its reply arrives: wait for it.
    let mut attempts: Vec<(i64, bool, Option<i64>)> = Vec::new();
    while attempts.len() < 2 && Instant::now() < deadline {
        let log: Value = c
            .get(format!("{hooks}/{id}/deliveries"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        attempts = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["attempt"].as_i64().unwrap(),
                    d["delivered"].as_bool().unwrap(),
                    d["status_code"].as_i64(),
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts, [(2, true, Some(200)), (1, false, Some(500))]);

    let (status, _) = call(
        &c,
        reqwest::Method::DELETE,
        format!("{hooks}/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &c,
        reqwest::Method::DELETE,
        format!("{hooks}/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
}

/// Creates model `name` with one version: a MODEL_CREATED and a VERSION_CREATED event.
async fn model_with_a_version(c: &reqwest::Client, server: &TestServer, name: &str) {
    for (path, body) in [
        ("registered-models/create", json!({"name": name})),
        (
            "model-versions/create",
            json!({"name": name, "source": "mlflow-artifacts:/b/m"}),
        ),
    ] {
        let (status, body) = call(c, reqwest::Method::POST, server.api(path), body).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The delivery log of webhook `id`, newest first: (attempt, delivered).
async fn attempts(c: &reqwest::Client, server: &TestServer, id: i64) -> Vec<(i64, bool)> {
    let url = format!(
        "{}/api/twinloop/v1/registry/webhooks/{id}/deliveries",
        server.url
    );
    let log: Value = c.get(url).send().await.unwrap().json().await.unwrap();
    log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["attempt"].as_i64().unwrap(),
                d["delivered"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_gets_a_bounded_number_of_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_with(dir.path(), &["--outbound-allow", "127.0.0.1"]);
    let c = reqwest::Client::new();
    let (port, received) = receiver(usize::MAX);
    let (status, created) = call(
        &c,
        reqwest::Method::POST,
        format!("{}/api/twinloop/v1/registry/webhooks", server.url),
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": "a-long-shared-secret",
               "events": ["VERSION_CREATED"]}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["webhook"]["id"].as_i64().unwrap();
    model_with_a_version(&c, &server, "fraud").await;

    // Five attempts with backoff (0.5 + 1 + 2 + 4 s between them), then the event is dropped.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    while log.len() < 5 {
        assert!(Instant::now() < deadline, "attempts so far: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        log = attempts(&c, &server, id).await;
    }
    assert_eq!(
        log,
        [(5, false), (4, false), (3, false), (2, false), (1, false)]
    );
    assert_eq!(received.lock().unwrap().len(), 5);
}

/// Runs `twinloop --tracking-uri URL ARGS…`; (success, stdout, stderr).
fn cli(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["--tracking-uri", &server.url])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// examples/webhook_receiver.py on a free port; its stdout lines arrive on the channel.
struct PythonReceiver {
    child: std::process::Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl PythonReceiver {
    fn start(secret: &str) -> PythonReceiver {
        use std::process::{Command, Stdio};
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/webhook_receiver.py");
        let port = support::free_port();
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--secret", secret])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs examples/webhook_receiver.py");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut ready = String::new();
        stderr.read_line(&mut ready).unwrap();
        assert!(ready.contains("listening"), "receiver: {ready:?}");
        // Keep reading, so that the refusals it reports never meet a closed pipe.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        let (send, lines) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        PythonReceiver { child, port, lines }
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_cli_adds_lists_and_removes_webhooks_and_the_example_receiver_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_with(dir.path(), &["--outbound-allow", "127.0.0.1"]);
    let c = reqwest::Client::new();
    let secret = "a-long-shared-secret";
    let receiver = PythonReceiver::start(secret);
    let url = format!("http://127.0.0.1:{}/", receiver.port);

    let (ok, out, err) = cli(&server, &["webhooks", "list"]);
    assert!(ok && out.starts_with("no webhooks"), "{out}{err}");
    let (ok, out, err) = cli(
        &server,
        &[
            "webhooks",
            "add",
            &url,
            "--secret",
            secret,
            "--events",
            "VERSION_CREATED,ALIAS_SET",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("webhook 1 → "), "{out}");
    let (ok, out, err) = cli(&server, &["webhooks", "list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("created (UTC)"), "{out}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[4]),
        ("1", url.as_str(), "VERSION_CREATED,ALIAS_SET"),
        "{out}"
    );

    // A registry event reaches the receiver, which checks the signature and prints the event.
    model_with_a_version(&c, &server, "fraud").await;
    let line = receiver
        .lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the receiver printed the event");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (event["kind"].as_str(), event["model_name"].as_str()),
        (Some("VERSION_CREATED"), Some("fraud")),
        "{line}"
    );
    // A body signed with another secret is refused and not printed.
    let r = c
        .post(&url)
        .header("x-twinloop-signature-256", "sha256=00")
        .body(r#"{"kind": "forged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (ok, _, err) = cli(
        &server,
        &[
            "webhooks", "add", &url, "--secret", secret, "--events", "NOPE",
        ],
    );
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("NOPE"), "{err}");

    let (ok, out, err) = cli(&server, &["webhooks", "rm", "1"]);
    assert!(ok && out.contains("removed webhook 1"), "{out}{err}");
    let (ok, out, _) = cli(&server, &["webhooks", "list"]);
    assert!(ok && out.starts_with("no webhooks"), "{out}");
    let (ok, _, err) = cli(&server, &["webhooks", "rm", "1"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("twinloop webhooks list"), "{err}");
    // Nothing else reached the receiver: the forged body was not printed.
    assert!(receiver.lines.try_recv().is_err());
}
