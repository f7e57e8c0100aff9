//! The prediction log under steady traffic on the real binary: segments are written at least
//! every `--prediction-log-flush-ms` while requests keep coming (not only once traffic pauses), a
//! monitor's row windows close during the traffic, and a graceful stop (SIGTERM or Ctrl-C) writes
//! every prediction that was answered. Needs ONNX Runtime (scripts/install-onnxruntime.sh).

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support;

/// Feature `j` of request `i`: spread over [-2, 2) so the monitor's drift tests have variance.
fn feature(i: usize, j: usize) -> f64 {
    ((i * 37 + j * 11) % 100) as f64 / 25.0 - 2.0
}

fn infer_body(id: &str, i: usize) -> Value {
    let row: Vec<f64> = (0..4).map(|j| feature(i, j)).collect();
    json!({"id": id, "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row}]})
}

/// Request ids of the primary rows in the finished segments under `dir`.
fn logged_ids(dir: &Path) -> HashSet<String> {
    support::prediction_log_rows(dir)
        .into_iter()
        .filter(|(role, ..)| role == "primary")
        .map(|(.., id)| id)
        .collect()
}

/// Sends `signal` (`TERM`, `INT`) and waits for the process to end on its own.
fn stop_with(child: &mut Child, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "SIG{signal}: exited with {status}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registers the logreg fixture as `fraud` v1, deploys it as `fraud`, and waits for one answer.
async fn deploy_fraud(http: &reqwest::Client, base: &str) {
    support::register_model(
        http,
        base,
        "fraud",
        &support::serving_fixture("logreg"),
        "src/v1",
        None,
    )
    .await;
    support::post_ok(
        http,
        &format!("{base}/api/twinloop/v1/deployments"),
        &json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http
            .post(format!("{base}/v2/models/fraud/infer"))
            .json(&infer_body("warm-up", 0))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            return;
        }
        assert!(Instant::now() < deadline, "deployment never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `n` requests with ids `<tag>-<i>`; returns the ids answered with 200.
async fn answered(http: &reqwest::Client, base: &str, tag: &str, n: usize) -> Vec<String> {
    let mut ok = Vec::new();
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let r = http
            .post(format!("{base}/v2/models/fraud/infer"))
            .json(&infer_body(&id, i))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            ok.push(id);
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_is_logged_and_monitored_while_it_lasts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        support::TestServer::start_sqlite_with(dir.path(), &["--prediction-log-flush-ms", "500"]);
    let base = server.url.clone();
    let http = reqwest::Client::new();
    deploy_fraud(&http, &base).await;

    let reference = dir.path().join("reference.csv");
    let mut csv = String::from("f0,f1,f2,f3\n");
    for i in 0..500 {
        let row: Vec<String> = (0..4).map(|j| feature(i, j).to_string()).collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    std::fs::write(&reference, csv).unwrap();
    support::post_ok(
        &http,
        &format!("{base}/api/twinloop/v1/monitors"),
        &json!({"name": "steady", "deployment": "fraud", "reference": reference,
                "window": {"rows": 50}, "features": {"X": ["f0", "f1", "f2", "f3"]}}),
    )
    .await;

    // 50 requests a second, one after another, until told to stop: the writer is never idle for
    // the flush interval, so only a deadline per segment writes anything while this runs.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(20));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ok = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let id = format!("steady-{i}");
                let r = http
                    .post(format!("{base}/v2/models/fraud/infer"))
                    .json(&infer_body(&id, i))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    ok.push(id);
                }
                i += 1;
            }
            ok
        }
    });

    let predictions = dir.path().join("artifacts/predictions/fraud");
    // Only bounds a broken server; the traffic above goes on the whole time.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s: Value = http
            .get(format!("{base}/api/twinloop/v1/monitors/steady"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let written = support::prediction_log_segments(&predictions).len();
        if written >= 2 && s["state"]["windows"].as_u64() >= Some(2) {
            break s;
        }
        assert!(
            !traffic.is_finished() && Instant::now() < deadline,
            "during steady traffic: {written} segments, monitor {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!traffic.is_finished(), "the traffic stopped early");
    assert!(status["state"]["error"].is_null(), "{status:#}");
    assert_eq!(status["state"]["last"]["rows"], 50.0, "{status:#}");

    stop.store(true, Ordering::Relaxed);
    let acknowledged = traffic.await.unwrap();
    stop_with(&mut server.child, "TERM");
    let logged = logged_ids(&predictions);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !logged.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests are not in the log: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
}

/// A flush interval of an hour: only the graceful stop can write these rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twinloop_server_writes_its_log_on_sigterm_and_ctrl_c() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = support::TestServer::start_sqlite_with(
            dir.path(),
            &["--prediction-log-flush-ms", "3600000"],
        );
        let http = reqwest::Client::new();
        deploy_fraud(&http, &server.url).await;
        let sent = answered(&http, &server.url, signal, 20).await;
        assert_eq!(sent.len(), 20, "SIG{signal}");
        stop_with(&mut server.child, signal);
        let logged = logged_ids(&dir.path().join("artifacts/predictions/fraud"));
        for id in &sent {
            assert!(logged.contains(id), "SIG{signal}: {id} not in {logged:?}");
        }
    }
}

/// `twinloop serve` writes a segment only every 10 s: the stop is what writes these rows. Its
/// SIGTERM case is in serve.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twinloop_serve_writes_its_log_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["serve", "--port", &port.to_string(), "--grpc-port", "0"])
        .arg("--model")
        .arg(format!(
            "fraud={}",
            support::serving_fixture("logreg").display()
        ))
        .arg("--prediction-log")
        .arg(dir.path().join("log"))
        .env("TWINLOOP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    support::wait_v2_ready(&http, &base).await;
    let sent = answered(&http, &base, "serve", 20).await;
    assert_eq!(sent.len(), 20);
    stop_with(&mut child, "INT");
    let logged = logged_ids(&dir.path().join("log/predictions/fraud"));
    for id in &sent {
        assert!(logged.contains(id), "{id} not in {logged:?}");
    }
}
