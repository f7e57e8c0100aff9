//! Production monitoring end to end on the real server: a deployed model gets traffic from its
//! training distribution, then from a shifted one; labels are posted; the monitor computes drift
//! and accuracy per window, fires its alerts, calls a signed webhook, records a retraining
//! request and rolls the deployment back; `monitor status` shows the windows. Monitors of a
//! deployment that does not exist are refused, references are the caller's files, and a deleted
//! monitor takes its history. Needs ONNX Runtime (scripts/install-onnxruntime.sh).

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support;

/// Deterministic normal draws (LCG + Box–Muller): the test must not depend on luck.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Starts a webhook receiver on loopback; returns its URL and what it received.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                // The registry's webhooks' header name, and the older one monitors also send.
                let signature = header("x-twinloop-signature-256");
                assert_eq!(header("x-twinloop-signature"), signature);
                sink.lock().unwrap().push((signature, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Sends `n` one-row requests drawn from N(shift, 1); labels each with the predicted class
/// (`correct`) or another one.
async fn traffic(
    http: &reqwest::Client,
    base: &str,
    rng: &mut Normal,
    n: usize,
    shift: f64,
    correct: bool,
    tag: &str,
) {
    let mut labels = Vec::new();
    for i in 0..n {
        let row: Vec<f64> = (0..4).map(|_| rng.next() + shift).collect();
        let id = format!("{tag}-{i}");
        let answer = support::post_ok(
            http,
            &format!("{base}/v2/models/fraud/infer"),
            &json!({"id": id, "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row}]}),
        )
        .await;
        let predicted = answer["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "label")
            .unwrap()["data"][0]
            .as_i64()
            .unwrap();
        let label = if correct {
            predicted
        } else {
            (predicted + 1) % 3
        };
        labels.push(json!({"request_id": id, "label": label}));
    }
    let accepted = support::post_ok(
        http,
        &format!("{base}/api/twinloop/v1/labels"),
        &Value::Array(labels),
    )
    .await;
    assert_eq!(accepted["accepted"], n);
}

async fn wait_windows(http: &reqwest::Client, base: &str, windows: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s: Value = http
            .get(format!("{base}/api/twinloop/v1/monitors/fraud-watch"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["state"]["windows"].as_u64() >= Some(windows) {
            return s;
        }
        assert!(Instant::now() < deadline, "monitor stuck: {s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shifted_stream_is_flagged_scored_alerted_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::TestServer::start_sqlite_with(
        dir.path(),
        &[
            "--prediction-log-flush-ms",
            "200",
            "--outbound-allow",
            "127.0.0.1",
        ],
    );
    let base = server.url.clone();
    let http = reqwest::Client::new();
    // The training run logs its training set as an input: the monitor finds its reference there.
    let reference = dir.path().join("reference.csv");
    let run = support::post_ok(
        &http,
        &format!("{base}/api/2.0/mlflow/runs/create"),
        &json!({"experiment_id": "0"}),
    )
    .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    support::post_ok(
        &http,
        &format!("{base}/api/2.0/mlflow/runs/log-inputs"),
        &json!({"run_id": run_id, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": "train", "digest": "d1", "source_type": "local",
                        "source": json!({"uri": reference}).to_string()}}]}),
    )
    .await;
    support::register_model(
        &http,
        &base,
        "fraud",
        &support::serving_fixture("logreg"),
        "src/v1",
        Some(&run_id),
    )
    .await;
    support::register_model(
        &http,
        &base,
        "fraud",
        &support::serving_fixture("logreg"),
        "src/v2",
        Some(&run_id),
    )
    .await;
    support::post_ok(
        &http,
        &format!("{base}/api/twinloop/v1/deployments"),
        &json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;
    support::post_ok(
        &http,
        &format!("{base}/api/twinloop/v1/deployments/fraud/traffic"),
        &json!({"routes": [{"model": "fraud", "version": "2"}]}),
    )
    .await;

    // The reference: the training distribution, N(0, 1) in every feature.
    let mut rng = Normal(42);
    let mut csv = String::from("f0,f1,f2,f3\n");
    for _ in 0..1000 {
        let row: Vec<String> = (0..4).map(|_| format!("{:.6}", rng.next())).collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    std::fs::write(&reference, csv).unwrap();

    let (hook, received) = receiver().await;
    let secret = "monitor-secret";
    let spec = json!({
        "name": "fraud-watch", "deployment": "fraud", "reference": "training",
        "window": {"rows": 150}, "features": {"X": ["f0", "f1", "f2", "f3"]},
        "prediction": "label", "probabilities": "probabilities", "label_delay_s": 1.0,
        "training_metrics": {"accuracy": 0.9},
        "rules": [
            {"name": "input-drift", "metric": "share_of_drifted_columns", "op": ">=", "threshold": 0.5,
             "actions": [{"type": "webhook", "url": hook, "secret": secret}, {"type": "retrain"}, {"type": "rollback"}]},
            {"name": "accuracy", "metric": "accuracy", "op": "<", "threshold": 0.8,
             "actions": [{"type": "webhook", "url": hook, "secret": secret}]}
        ]
    });
    let spec_file = dir.path().join("monitor.json");
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["--tracking-uri", &base, "monitor", "create", "--spec"])
        .arg(&spec_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Window 1: the training distribution, labels that agree.
    traffic(&http, &base, &mut rng, 150, 0.0, true, "calm").await;
    let s = wait_windows(&http, &base, 1).await;
    assert_eq!(
        s["state"]["reference_path"],
        reference.display().to_string()
    );
    let last = &s["state"]["last"];
    assert_eq!(last["rows"], 150.0);
    assert_eq!(last["dataset_drift"], 0.0, "{last:#}");
    assert_eq!(last["accuracy"], 1.0);
    assert!((last["accuracy_vs_training"].as_f64().unwrap() - 0.1).abs() < 1e-9);
    assert!(
        last["log_loss"].as_f64().unwrap().is_finite() && last["roc_auc"].as_f64().is_some(),
        "{last:#}"
    );
    assert_eq!(s["state"]["rules"]["input-drift"]["state"], "inactive");

    // Window 2: every feature shifted by 3 standard deviations, labels that disagree.
    traffic(&http, &base, &mut rng, 150, 3.0, false, "shifted").await;
    let s = wait_windows(&http, &base, 2).await;
    let last = &s["state"]["last"];
    assert_eq!(last["dataset_drift"], 1.0, "{last:#}");
    assert!(last["share_of_drifted_columns"].as_f64().unwrap() >= 0.8);
    assert_eq!(last["accuracy"], 0.0);
    assert_eq!(s["state"]["rules"]["input-drift"]["state"], "firing");
    assert_eq!(s["state"]["rules"]["accuracy"]["state"], "firing");
    assert_eq!(s["series"]["accuracy"].as_array().unwrap().len(), 2);

    // The webhook got both alerts, signed; the deployment is back on version 1.
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "webhook not called");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (signature, body) in received.lock().unwrap().iter() {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let want = format!(
            "sha256={}",
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        assert_eq!(signature, &want);
        let alert: Value = serde_json::from_str(body).unwrap();
        assert_eq!(alert["state"], "firing");
    }
    let alerts: Value = http
        .get(format!(
            "{base}/api/twinloop/v1/monitors/fraud-watch/alerts"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = alerts["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in [
        "alert_firing",
        "webhook_delivery",
        "retrain_requested",
        "rollback",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let deployment: Value = http
        .get(format!("{base}/api/twinloop/v1/deployments/fraud"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        deployment["state"]["serving"][0]["version"], "1",
        "{deployment:#}"
    );
    let events: Value = http
        .get(format!("{base}/api/twinloop/v1/monitors/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "retrain_requested" && e["payload"]["deployment"] == "fraud")
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
        metrics
            .contains("twinloop_monitor_alert_firing{monitor=\"fraud-watch\",rule=\"accuracy\"} 1"),
        "{metrics}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["--tracking-uri", &base, "monitor", "alerts", "fraud-watch"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("rule input-drift: firing"));

    // `monitor status` shows the recent windows as a table, oldest first.
    let (ok, text, err) = cli(&base, &["monitor", "status", "fraud-watch"]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("  20")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        text.contains("window end (UTC)") && text.contains("accuracy"),
        "{text}"
    );
    let calm: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(calm[2..], ["150", "0.00", "no", "1.000", "-"], "{text}");
    let shifted: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(shifted[2], "150", "{text}");
    assert_eq!(
        shifted[4..],
        ["YES", "0.000", "input-drift,", "accuracy"],
        "{text}"
    );
    assert!(text.contains("rule accuracy: firing"), "{text}");
    let (ok, text, err) = cli(
        &base,
        &["monitor", "status", "fraud-watch", "--windows", "1"],
    );
    assert!(ok, "{err}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("  20")).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].contains("YES"), "{text}");
    let (ok, json_text, err) = cli(&base, &["monitor", "status", "fraud-watch", "--json"]);
    assert!(ok, "{err}");
    let windows = serde_json::from_str::<Value>(&json_text).unwrap()["windows"].clone();
    assert_eq!(windows.as_array().unwrap().len(), 2);
    assert_eq!(
        windows[1]["rules_holding"],
        json!(["input-drift", "accuracy"])
    );
}

/// Runs `twinloop --tracking-uri BASE ARGS…`; (success, stdout, stderr).
fn cli(base: &str, args: &[&str]) -> (bool, String, String) {
    cli_in(base, args, Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// The same, run from `dir`.
fn cli_in(base: &str, args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["--tracking-uri", base])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_need_their_deployment_read_the_callers_files_and_delete_with_their_history() {
    let dir = tempfile::tempdir().unwrap();
    // Time windows close once the log has had time to flush: keep that short.
    let server = support::TestServer::start_sqlite_with(
        dir.path(),
        &[
            "--prediction-log-flush-ms",
            "200",
            "--outbound-allow",
            "127.0.0.1",
        ],
    );
    let base = server.url.clone();
    let http = reqwest::Client::new();
    let api = format!("{base}/api/twinloop/v1");

    // No deployment "fraud" yet: refused through the API and the CLI, naming it.
    let create = |name: &str, reference: &str| {
        [
            "monitor",
            "create",
            name,
            "--deployment",
            "fraud",
            "--reference",
            reference,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    };
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("data")).unwrap();
    let mut csv = String::from("f0,f1,f2,f3\n");
    let mut rng = Normal(7);
    for _ in 0..50 {
        let row: Vec<String> = (0..4).map(|_| format!("{:.6}", rng.next())).collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    std::fs::write(work.join("data/ref.csv"), csv).unwrap();
    let args = |v: &Vec<String>, extra: &[&str]| {
        let mut all: Vec<String> = v.clone();
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        cli_in(&base, &refs, &work)
    };
    let (ok, _, err) = run(args(
        &create("watch", "data/ref.csv"),
        &["--window-rows", "10"],
    ));
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("\"fraud\"") && err.contains("twinloop deploy status"),
        "{err}"
    );
    let r = http
        .post(format!("{api}/monitors"))
        .json(&json!({"name": "watch", "deployment": "fraud", "reference": "/x.csv", "window": {"rows": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("\"fraud\""),
        "{body}"
    );

    support::register_model(
        &http,
        &base,
        "fraud",
        &support::serving_fixture("logreg"),
        "src/v1",
        None,
    )
    .await;
    support::post_ok(
        &http,
        &format!("{api}/deployments"),
        &json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;

    // A relative reference is the caller's file, not one beside the server.
    let (ok, _, err) = run(args(
        &create("watch", "data/nope.csv"),
        &["--window-rows", "10"],
    ));
    assert!(!ok);
    let missing = work.join("data/nope.csv");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let (ok, out, err) = run(args(
        &create("watch", "data/ref.csv"),
        &["--window-seconds", "0.2"],
    ));
    assert!(ok, "{err}");
    assert!(
        out.contains("monitor watch watching deployment fraud"),
        "{out}"
    );
    let (_, status) = get(&http, &format!("{api}/monitors/watch")).await;
    assert_eq!(
        status["state"]["reference_path"],
        work.join("data/ref.csv").display().to_string()
    );
    let (ok, text, _) = cli(&base, &["monitor", "status", "watch"]);
    assert!(ok && text.contains("windows"), "{text}");

    // Give it a history: empty windows close every 0.2 s, and a rule on them fires.
    let rules = work.join("rules.json");
    std::fs::write(
        &rules,
        json!([{"name": "quiet", "metric": "rows", "op": "<", "threshold": 1}]).to_string(),
    )
    .unwrap();
    let (ok, _, err) = run(args(
        &create("quiet-watch", "data/ref.csv"),
        &["--window-seconds", "0.2", "--rules", "rules.json"],
    ));
    assert!(ok, "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, alerts) = get(&http, &format!("{api}/monitors/quiet-watch/alerts")).await;
        if alerts["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the rule never fired: {alerts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (ok, out, err) = cli(&base, &["monitor", "delete", "quiet-watch"]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted monitor quiet-watch"), "{out}");
    assert_eq!(
        get(&http, &format!("{api}/monitors/quiet-watch")).await.0,
        404
    );
    let (_, list) = get(&http, &format!("{api}/monitors")).await;
    let names: Vec<&str> = list["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["watch"]);
    let (_, events) = get(&http, &format!("{api}/monitors/events")).await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["monitor"] != "quiet-watch"),
        "{events}"
    );
    // Created again under the same name, it starts with no history.
    let (ok, _, err) = run(args(
        &create("quiet-watch", "data/ref.csv"),
        &["--window-rows", "1000"],
    ));
    assert!(ok, "{err}");
    let (_, status) = get(&http, &format!("{api}/monitors/quiet-watch")).await;
    assert_eq!(status["series"], json!({}), "{status}");
    assert_eq!(status["windows"], json!([]), "{status}");
    let (_, alerts) = get(&http, &format!("{api}/monitors/quiet-watch/alerts")).await;
    assert_eq!(alerts["events"], json!([]), "{alerts}");
    let (ok, text, _) = cli(&base, &["monitor", "status", "quiet-watch"]);
    assert!(ok && text.contains("no closed window yet"), "{text}");

    let (ok, _, err) = cli(&base, &["monitor", "delete", "quiet-watch-2"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("twinloop monitor list"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_monitors_and_labels_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::TestServer::start_sqlite(dir.path());
    let http = reqwest::Client::new();
    let url = format!("{}/api/twinloop/v1", server.url);
    let cases = [
        (
            json!({"name": "m", "deployment": "d", "reference": "/nope.parquet", "window": {"rows": 0}}),
            "window.rows",
        ),
        (
            json!({"name": "m", "deployment": "d", "reference": "/x.csv", "window": {"rows": 5},
            "rules": [{"name": "r", "metric": "accuracy", "op": "!=", "threshold": 1}]}),
            "op",
        ),
    ];
    for (spec, want) in cases {
        let r = http
            .post(format!("{url}/monitors"))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(want), "{body}");
    }
    let r = http
        .post(format!("{url}/labels"))
        .json(&json!([{"label": 1}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{url}/monitors/none"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
