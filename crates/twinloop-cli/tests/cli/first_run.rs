//! What a new user meets first: mlflow's server flags, the page at `/`, logs in a file, a port
//! already taken, an https tracking URI, output piped into `head`.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, TestServer, free_port};

fn twinloop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
}

/// Waits until `GET /health` answers, or the child exits.
fn wait_healthy(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("twinloop server exited early: {status}");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = stream.write_all(b"GET /health HTTP/1.0\r\n\r\n");
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            if reply.ends_with("OK") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("twinloop server did not answer on port {port}");
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test]
async fn mlflow_server_flags_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("artifact-root");
    let destination = dir.path().join("destination");
    let port = free_port();
    let mut child = twinloop()
        .args(["server", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg("--backend-store-uri")
        .arg(format!(
            "sqlite:///{}",
            dir.path().join("db.sqlite").display()
        ))
        .arg("--default-artifact-root")
        .arg(&root)
        .arg("--serve-artifacts")
        .arg("--artifacts-destination")
        .arg(&destination)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(&mut child, port);
    let put = reqwest::Client::new()
        .put(format!(
            "http://127.0.0.1:{port}/api/2.0/mlflow-artifacts/artifacts/0/notes.txt"
        ))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let default: serde_json::Value = reqwest::get(format!(
        "http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id=0"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    stop(child);
    assert_eq!(
        std::fs::read_to_string(destination.join("0/notes.txt")).unwrap(),
        "hello",
        "--artifacts-destination is where proxied artifacts are stored"
    );
    assert_eq!(
        default["experiment"]["artifact_location"],
        format!("{}/0", root.display()),
        "--default-artifact-root is where new experiments' artifacts go, as in mlflow"
    );

    let help = twinloop().args(["server", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    assert!(text.contains("-h, --host"), "{text}");
    assert!(
        !text.contains("--tracking-uri"),
        "server ignores it: {text}"
    );
}

#[test]
fn a_taken_port_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = twinloop()
        .args(["server", "--port", &port.to_string()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("try --port"), "{stderr}");
    assert!(
        !dir.path().join("twinloop-data").exists(),
        "a server that cannot listen must not create its data directory"
    );
}

#[test]
fn logs_written_to_a_file_are_plain_and_name_a_clickable_url() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let mut child = twinloop()
        .args(["server", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env_remove("TWINLOOP_LOG")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_healthy(&mut child, port);
    stop(child);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI colours in a file: {log:?}"
    );
    assert!(
        log.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{log}"
    );
}

#[test]
fn tracking_uri_goes_before_or_after_the_command_and_may_be_https() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    for args in [
        vec!["--tracking-uri", &server.url, "models", "list"],
        vec!["models", "list", "--tracking-uri", &server.url],
    ] {
        let out = twinloop()
            .args(&args)
            .env_remove("MLFLOW_TRACKING_URI")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let https = format!("https://127.0.0.1:{}", free_port());
    let out = twinloop()
        .args(["models", "list", "--tracking-uri", &https])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach"),
        "https is a URL we try: {stderr}"
    );

    let help = twinloop().args(["features", "--help"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--tracking-uri"));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/feature_repo/data/driver_hourly_stats.parquet");
    // The reader is gone before the child writes, as with `| head -1` once head has its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = twinloop()
        .args(["monitor", "drift", "--json", "-", "--reference"])
        .arg(&data)
        .arg("--current")
        .arg(&data)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status}: {stderr}");
}

#[tokio::test]
async fn serve_listens_on_ipv6_and_answers_in_flight_requests_before_stopping() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../twinloop-serving/tests/models/feature_sum");
    let port = free_port();
    let mut child = twinloop()
        .args(["serve", "--host", "::1", "--grpc-port", "0"])
        .args(["--port", &port.to_string()])
        .arg("--model")
        .arg(format!("sum={}", model.display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://[::1]:{port}");
    let http = reqwest::Client::new();
    support::wait_v2_ready(&http, &base).await;
    let body = serde_json::json!({"inputs": [
        {"name": "conv_rate", "shape": [1, 1], "datatype": "FP32", "data": [0.5]},
        {"name": "acc_rate", "shape": [1, 1], "datatype": "FP32", "data": [0.25]},
    ]});
    let answer = http
        .post(format!("{base}/v2/models/sum/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "a graceful stop exits 0: {status}");
}
