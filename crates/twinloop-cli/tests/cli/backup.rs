//! `twinloop admin backup | restore | verify` on the real binary: a backup taken while a client
//! keeps logging holds every write acknowledged before it began; restored into fresh stores, a
//! new server answers them; verify finds every model version's files and names a lost one. On
//! SQLite (VACUUM INTO) and on PostgreSQL (pg_dump / pg_restore).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::{self, TestServer};

/// Writes acknowledged by the server, in order: metric steps and artifact files.
#[derive(Default)]
struct Ledger {
    steps: Vec<i64>,
    files: Vec<String>,
}

fn admin(args: &[&str], backend: &str, artifacts: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .arg("admin")
        .args(args)
        .args(["--backend-store-uri", backend])
        .arg("--artifacts-destination")
        .arg(artifacts)
        .env("TWINLOOP_LOG", "warn")
        .output()
        .unwrap()
}

/// Logs metric steps and uploads files as fast as the server acknowledges them, until `stop`.
async fn write_until(
    http: reqwest::Client,
    server: String,
    run_id: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut step = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let r = http
            .post(format!("{server}/api/2.0/mlflow/runs/log-metric"))
            .json(&json!({"run_id": run_id, "key": "loss", "value": step as f64, "timestamp": 1_700_000_000_000i64 + step, "step": step}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "log-metric: {}", r.status());
        ledger.lock().unwrap().steps.push(step);
        if step % 10 == 0 {
            let name = format!("file-{step}.txt");
            let r = http
                .put(format!(
                    "{server}/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/{name}"
                ))
                .body(format!("contents of step {step}"))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "upload: {}", r.status());
            ledger.lock().unwrap().files.push(name);
        }
        step += 1;
    }
}

async fn backup_under_load_restores_every_acknowledged_write(
    source_backend: &str,
    target_backend: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    let mut server = TestServer::start(&source, source_backend);
    let http = reqwest::Client::new();
    let run = support::post_ok(
        &http,
        &server.api("runs/create"),
        json!({"experiment_id": "0", "start_time": 1}),
    )
    .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let model_dir = support::serving_fixture("feature_sum");
    support::register_model(&http, &server.url, "kept", &model_dir, "models/kept", None).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(
        http.clone(),
        server.url.clone(),
        run_id.clone(),
        ledger.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (steps_before, files_before) = {
        let ledger = ledger.lock().unwrap();
        (ledger.steps.clone(), ledger.files.clone())
    };
    let backup = dir.path().join("backup");
    let artifacts = source.join("artifacts");
    let out = tokio::task::spawn_blocking({
        let (backup, backend, artifacts) = (backup.clone(), source_backend.to_string(), artifacts);
        move || {
            admin(
                &["backup", "--to", backup.to_str().unwrap()],
                &backend,
                &artifacts,
            )
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "backup: {out:?}");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        ledger.lock().unwrap().steps.len() > steps_before.len(),
        "the writer kept writing during the backup"
    );
    server.stop();

    // Restore into fresh stores; a new server on them answers every write acknowledged before.
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    let restored_artifacts = restored.join("artifacts");
    let out = admin(
        &["restore", "--from", backup.to_str().unwrap()],
        target_backend,
        &restored_artifacts,
    );
    assert!(out.status.success(), "restore: {out:?}");
    let again = admin(
        &["restore", "--from", backup.to_str().unwrap()],
        target_backend,
        &restored_artifacts,
    );
    assert!(
        !again.status.success(),
        "a second restore over the first is refused"
    );

    let server = TestServer::start(&restored, target_backend);
    let history: Value = http
        .get(server.api("metrics/get-history"))
        .query(&[("run_id", run_id.as_str()), ("metric_key", "loss")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let restored_steps: std::collections::HashSet<i64> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    let lost: Vec<_> = steps_before
        .iter()
        .filter(|s| !restored_steps.contains(s))
        .collect();
    assert!(lost.is_empty(), "acknowledged steps lost: {lost:?}");
    for name in &files_before {
        let r = http
            .get(format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/{name}",
                server.url
            ))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{name}: {}", r.status());
        let step = name.trim_start_matches("file-").trim_end_matches(".txt");
        assert_eq!(r.text().await.unwrap(), format!("contents of step {step}"));
    }
    drop(server);

    // verify: the registered version's files are there; a lost one is named.
    let out = admin(&["verify"], target_backend, &restored_artifacts);
    assert!(out.status.success(), "verify: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 missing"),
        "{out:?}"
    );
    std::fs::remove_dir_all(restored_artifacts.join("models/kept")).unwrap();
    let out = admin(&["verify"], target_backend, &restored_artifacts);
    assert!(!out.status.success(), "verify must fail: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kept version 1 source"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_under_load_restores_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "sqlite:///{}",
        dir.path().join("source/twinloop.db").display()
    );
    let target = format!(
        "sqlite:///{}",
        dir.path().join("restored/twinloop.db").display()
    );
    backup_under_load_restores_every_acknowledged_write(&source, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_under_load_restores_every_acknowledged_write() {
    let (Some(source), Some(target)) = (support::postgres_database(), support::postgres_database())
    else {
        return;
    };
    backup_under_load_restores_every_acknowledged_write(&source, &target).await;
}

#[test]
fn backup_refuses_an_existing_directory_and_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:///{}", dir.path().join("none.db").display());
    let out = admin(
        &["backup", "--to", dir.path().to_str().unwrap()],
        &db,
        &dir.path().join("a"),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{out:?}"
    );
    let to = dir.path().join("b");
    let out = admin(
        &["backup", "--to", to.to_str().unwrap()],
        &db,
        &dir.path().join("a"),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{out:?}"
    );
    assert!(!to.exists(), "no backup directory after a failed backup");
}
