//! Deployments on the real `twinloop server`: routing, shadow, sticky keys, canary promotion and
//! automatic rollback, hand rollback, and following an alias under load with no failed request.
//! Needs ONNX Runtime (scripts/install-onnxruntime.sh; scripts/test.sh runs it).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, TestServer};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../twinloop-serving/tests/models")
        .join(name)
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(server: &TestServer) -> Client {
        Client {
            http: reqwest::Client::new(),
            url: server.url.clone(),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Uploads an MLflow model directory and registers it as the next version of `model`.
    async fn register(&self, model: &str, dir: &Path) -> String {
        let prefix = format!("sources/{model}/{}", uuid_like());
        support::register_model(&self.http, &self.url, model, dir, &prefix, None).await
    }

    async fn set_alias(&self, model: &str, alias: &str, version: &str) {
        let (status, body) = self
            .post(
                "/api/2.0/mlflow/registered-models/alias",
                &json!({"name": model, "alias": alias, "version": version}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn deploy(&self, spec: Value) -> Value {
        let (status, body) = self.post("/api/twinloop/v1/deployments", &spec).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn status(&self, name: &str) -> Value {
        self.get(&format!("/api/twinloop/v1/deployments/{name}"))
            .await
            .1
    }

    /// One row through the deployment; the version that answered.
    async fn infer(&self, name: &str, parameters: Value) -> Result<String, String> {
        let body = json!({
            "parameters": parameters,
            "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.1]}],
        });
        let r = self
            .http
            .post(format!("{}/v2/models/{name}/infer", self.url))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        Ok(body["model_version"].as_str().unwrap_or("?").to_string())
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ std::process::id() as u128 ^ rand_seed()
    )
}

fn rand_seed() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Runs `twinloop --tracking-uri URL ARGS…`; (success, stdout, stderr).
fn cli(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
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

async fn two_versions(c: &Client, model: &str) {
    assert_eq!(c.register(model, &fixture("logreg")).await, "1");
    assert_eq!(c.register(model, &fixture("logreg")).await, "2");
}

async fn wait_for(c: &Client, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = c.status(name).await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting; last status {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_routes_answer_with_their_version_and_unknown_models_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = Client::new(&server);
    two_versions(&c, "fraud").await;
    c.deploy(json!({"name": "fraud", "routes": [
        {"model": "fraud", "version": "1", "weight": 50},
        {"model": "fraud", "version": "2", "weight": 50},
    ]}))
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        seen.insert(c.infer("fraud", json!({})).await.unwrap());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec!["1", "2"]);
    let (status, body) = c.get("/v2/models/fraud/versions/2/ready").await;
    assert_eq!((status, body["ready"].as_bool()), (200, Some(true)));
    let err = c.infer("nope", json!({})).await.unwrap_err();
    assert!(err.starts_with("404"), "{err}");
    let (status, _) = c.get("/v2/health/ready").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_key_always_picks_the_same_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = Client::new(&server);
    two_versions(&c, "fraud").await;
    c.deploy(json!({"name": "fraud", "sticky_key": "user", "routes": [
        {"model": "fraud", "version": "1", "weight": 50},
        {"model": "fraud", "version": "2", "weight": 50},
    ]}))
    .await;
    let mut versions_seen = std::collections::BTreeSet::new();
    for user in 0..20 {
        let first = c
            .infer("fraud", json!({"user": format!("u{user}")}))
            .await
            .unwrap();
        for _ in 0..5 {
            assert_eq!(
                c.infer("fraud", json!({"user": format!("u{user}")}))
                    .await
                    .unwrap(),
                first
            );
        }
        versions_seen.insert(first);
    }
    assert_eq!(
        versions_seen.len(),
        2,
        "20 users should land on both routes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_answers_into_the_log_and_never_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_sqlite(dir.path());
    let c = Client::new(&server);
    two_versions(&c, "fraud").await;
    c.deploy(json!({"name": "fraud",
        "routes": [{"model": "fraud", "version": "1"}],
        "shadow": {"model": "fraud", "version": "2"}}))
        .await;
    for i in 0..20 {
        assert_eq!(c.infer("fraud", json!({"i": i})).await.unwrap(), "1");
    }
    let metrics = c
        .http
        .get(format!("{}/metrics", c.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("twinloop_serving_shadow_requests_total")
                && l.contains("version=\"2\"")
                && l.contains("status=\"ok\"")),
        "{metrics}"
    );
    // A graceful stop writes what the prediction log holds.
    server.stop();
    let rows = support::prediction_log_rows(&dir.path().join("artifacts/predictions/fraud"));
    let primary = rows
        .iter()
        .filter(|r| r.0 == "primary" && r.1 == "1")
        .count();
    let shadow = rows
        .iter()
        .filter(|r| r.0 == "shadow" && r.1 == "2")
        .count();
    assert_eq!((primary, shadow), (20, 20), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = Client::new(&server);
    two_versions(&c, "fraud").await;
    c.deploy(json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}))
        .await;
    // Through the CLI, as a user would.
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "--tracking-uri",
            &server.url,
            "deploy",
            "canary",
            "fraud",
            "--candidate",
            "fraud/2",
        ])
        .args([
            "--steps",
            "20,60,100",
            "--interval",
            "0.5",
            "--max-error-rate",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("canary  running at 20%"), "{shown}");
    // Shares of traffic, not the weights the canary uses inside (8000/2000).
    assert!(
        shown.contains("route   fraud v1  80%") && shown.contains("route   fraud v2  20%"),
        "{shown}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let c = Client::new(&server);
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                c.infer("fraud", json!({})).await.unwrap();
            }
        })
    };
    let status = wait_for(&c, "fraud", |s| {
        s["state"]["canary"]["status"] == "promoted"
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert_eq!(
        status["state"]["serving"],
        json!([{"model": "fraud", "version": "2", "weight": 100}])
    );
    let events: Vec<&str> = status["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    for step in ["20%", "60%", "100%", "promoted"] {
        assert!(
            events.iter().any(|e| e.contains(step)),
            "{step} missing from {events:?}"
        );
    }
    assert_eq!(c.infer("fraud", json!({})).await.unwrap(), "2");

    // Every step's gate figures are kept: in the API, in --json and in the text.
    let steps = status["state"]["canary"]["steps"].as_array().unwrap();
    let percents: Vec<u64> = steps
        .iter()
        .map(|s| s["percent"].as_u64().unwrap())
        .collect();
    assert_eq!(percents, [20, 60, 100]);
    for step in steps {
        assert_eq!(step["passed"], true, "{step}");
        assert_eq!(step["max_error_rate"], 0.5, "{step}");
        assert!(step["requests"].as_u64().unwrap() > 0, "{step}");
        assert!(step["error_rate"].as_f64().unwrap() <= 0.5, "{step}");
        assert!(step["p99_ms"].as_f64().is_some(), "{step}");
    }
    let (ok, json_out, err) = cli(&server, &["deploy", "status", "fraud", "--json"]);
    assert!(ok, "{err}");
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(
        parsed["state"]["canary"]["steps"],
        status["state"]["canary"]["steps"]
    );
    let (ok, text, err) = cli(&server, &["deploy", "status", "fraud"]);
    assert!(ok, "{err}");
    assert!(text.contains("canary  promoted at 100%"), "{text}");
    let step_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("step"))
        .collect();
    assert_eq!(step_lines.len(), 3, "{text}");
    assert!(
        step_lines
            .iter()
            .all(|l| l.contains("requests") && l.contains("(max 0.5)") && l.ends_with("pass")),
        "{text}"
    );

    // A rollback after the promotion: back on version 1, and the status says so.
    let (ok, text, err) = cli(&server, &["deploy", "rollback", "fraud"]);
    assert!(ok, "{err}");
    assert!(text.contains("canary  rolled_back at 0%"), "{text}");
    assert!(!text.contains("promoted at"), "{text}");
    assert!(text.contains("route   fraud v1  100%"), "{text}");
    assert_eq!(c.infer("fraud", json!({})).await.unwrap(), "1");
    let status = c.status("fraud").await;
    assert_eq!(status["state"]["canary"]["status"], "rolled_back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_rolls_back_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = Client::new(&server);
    c.register("fraud", &fixture("logreg")).await;
    // Version 2 takes other inputs: every request the canary sends it fails.
    c.register("fraud", &fixture("pipeline")).await;
    c.deploy(json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}))
        .await;
    let (status, body) = c
        .post(
            "/api/twinloop/v1/deployments/fraud/canary",
            &json!({"candidate": {"model": "fraud", "version": "2"}, "steps": [50, 100], "interval_s": 1.0, "max_error_rate": 0.1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let c = Client::new(&server);
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = c.infer("fraud", json!({})).await;
            }
        })
    };
    let status = wait_for(&c, "fraud", |s| {
        s["state"]["canary"]["status"] == "rolled_back"
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    let reason = status["state"]["canary"]["reason"].as_str().unwrap();
    assert!(reason.contains("error rate"), "{reason}");
    assert_eq!(
        status["state"]["serving"],
        json!([{"model": "fraud", "version": "1", "weight": 100}])
    );
    for _ in 0..10 {
        assert_eq!(c.infer("fraud", json!({})).await.unwrap(), "1");
    }
    // The failed step's figures: every request to version 2 failed.
    let steps = status["state"]["canary"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    let step = &steps[0];
    assert_eq!(
        (step["percent"].as_u64(), step["passed"].as_bool()),
        (Some(50), Some(false))
    );
    assert_eq!(step["error_rate"], 1.0, "{step}");
    assert_eq!(step["errors"], step["requests"], "{step}");
    assert_eq!(step["max_error_rate"], 0.1, "{step}");
    let (ok, text, err) = cli(&server, &["deploy", "status", "fraud"]);
    assert!(ok, "{err}");
    assert!(text.contains("canary  rolled_back at 0%"), "{text}");
    assert!(
        text.contains("= 1.000 (max 0.1)") && text.contains("FAIL: candidate error rate"),
        "{text}"
    );
    // The deployment is where it was before the canary; nothing earlier to return to.
    let (ok, _, err) = cli(&server, &["deploy", "rollback", "fraud"]);
    assert!(!ok);
    assert!(err.contains("no earlier state to roll back to"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_previous_traffic_and_a_bad_change_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = Client::new(&server);
    two_versions(&c, "fraud").await;
    c.deploy(json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}))
        .await;
    let (status, _) = c
        .post(
            "/api/twinloop/v1/deployments/fraud/traffic",
            &json!({"routes": [{"model": "fraud", "version": "2"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(c.infer("fraud", json!({})).await.unwrap(), "2");
    let (status, _) = c
        .post("/api/twinloop/v1/deployments/fraud/rollback", &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(c.infer("fraud", json!({})).await.unwrap(), "1");
    // A version that does not exist: refused with the reason, version 1 goes on answering.
    let (status, body) = c
        .post(
            "/api/twinloop/v1/deployments/fraud/traffic",
            &json!({"routes": [{"model": "fraud", "version": "9"}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("fraud/9"),
        "{body}"
    );
    assert_eq!(c.infer("fraud", json!({})).await.unwrap(), "1");
    // And a new deployment whose model cannot load is never created.
    let (status, body) = c
        .post(
            "/api/twinloop/v1/deployments",
            &json!({"name": "other", "routes": [{"model": "nope", "version": "1"}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(c.get("/api/twinloop/v1/deployments/other").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_an_alias_switches_versions_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = Client::new(&server);
    two_versions(&c, "fraud").await;
    c.set_alias("fraud", "champion", "1").await;
    c.deploy(json!({"name": "fraud", "routes": [{"model": "fraud", "alias": "champion"}]}))
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let saw_two = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (c, stop, ok, failed, saw_two) = (
            Client::new(&server),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            saw_two.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match c.infer("fraud", json!({})).await {
                    Ok(v) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if v == "2" {
                            saw_two.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.set_alias("fraud", "champion", "2").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !saw_two.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "the deployment never moved to version 2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        failed.lock().unwrap().is_empty(),
        "failed requests: {:?}",
        failed.lock().unwrap()
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too little load to mean anything"
    );
    assert_eq!(c.infer("fraud", json!({})).await.unwrap(), "2");
    let status = c.status("fraud").await;
    assert_eq!(status["state"]["serving"][0]["version"], "2");
}

/// The example feature repository plus a service of two driver features, with fresh values for
/// driver 1001 pushed through the feature server (which then stops: the server takes the store).
async fn feature_repo_with_fresh_driver(root: &Path) -> std::path::PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/feature_repo");
    let repo = root.join("repo");
    for dir in ["", "data"] {
        std::fs::create_dir_all(repo.join(dir)).unwrap();
        for entry in std::fs::read_dir(from.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, repo.join(dir).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::write(
        repo.join("scoring.yaml"),
        "feature_services:\n  - name: rates\n    features: [driver_hourly_stats:conv_rate, driver_hourly_stats:acc_rate]\n",
    )
    .unwrap();
    let twinloop = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .arg("features")
            .arg("--repo")
            .arg(&repo)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    twinloop(&["apply"]);
    let port = support::free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "features",
            "--repo",
            repo.to_str().unwrap(),
            "serve",
            "--port",
            &port.to_string(),
        ])
        .env("TWINLOOP_LOG", "warn")
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "feature server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = chrono::Utc::now().to_rfc3339();
    let r = http
        .post(format!("{base}/push"))
        .json(&json!({"push_source_name": "driver_stats", "to": "online",
            "df": {"driver_id": [1001], "event_timestamp": [now], "created": [now],
                   "conv_rate": [0.25], "acc_rate": [0.5], "avg_daily_trips": [12]}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    serve.wait().unwrap();
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_service_fills_the_model_inputs_from_entity_keys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = feature_repo_with_fresh_driver(dir.path()).await;
    let server =
        TestServer::start_sqlite_with(dir.path(), &["--feature-repo", repo.to_str().unwrap()]);
    let c = Client::new(&server);
    c.register("scorer", &fixture("feature_sum")).await;
    c.deploy(json!({"name": "scorer", "feature_service": "rates", "routes": [{"model": "scorer", "version": "1"}]})).await;
    let ask = |body: Value| {
        let c = &c;
        async move {
            let r = c
                .http
                .post(format!("{}/v2/models/scorer/infer", c.url))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Keys as parameters.entities: a fresh driver, one never seen (NOT_FOUND: NaN) …
    let (status, body) =
        ask(json!({"parameters": {"entities": {"driver_id": [1001, 4242]}}, "inputs": []})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!([0.75, "NaN"]));
    // … or as an input named like the join key.
    let (status, body) = ask(json!({"inputs": [{"name": "driver_id", "shape": [1], "datatype": "INT64", "data": [1001]}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!([0.75]));
    let (status, body) = ask(json!({"inputs": []})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("driver_id"),
        "{body}"
    );
}

#[test]
fn deploy_and_webhooks_are_described_in_the_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["deploy", "webhooks"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("no {command} in {help}"));
        assert!(
            line.split_whitespace().count() > 2,
            "{command} undescribed: {line:?}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["deploy", "delete", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.starts_with("Stop serving a deployment"), "{help}");
}
