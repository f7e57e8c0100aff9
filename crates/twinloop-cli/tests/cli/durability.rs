//! A metric the server acknowledged survives `kill -9`: writers hammer `log-batch`, the server is
//! killed mid-storm, restarted on the same store, and every acknowledged point must be there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, TestServer};

async fn storm_then_kill(mut server: TestServer) {
    let c = reqwest::Client::new();
    let exp: Value = c
        .post(server.api("experiments/create"))
        .json(&json!({"name": "durability"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let exp_id = exp["experiment_id"].as_str().unwrap().to_string();
    let mut run_ids = Vec::new();
    for i in 0..4 {
        let run: Value = c
            .post(server.api("runs/create"))
            .json(&json!({"experiment_id": exp_id, "run_name": format!("r{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        run_ids.push(run["run"]["info"]["run_id"].as_str().unwrap().to_string());
    }

    // Acknowledged steps per run; a batch counts only once its 200 has arrived.
    let acked: Arc<Mutex<HashMap<String, Vec<i64>>>> = Arc::default();
    let mut writers = Vec::new();
    for (w, run_id) in run_ids.iter().enumerate() {
        for lane in 0..2i64 {
            let (c, url, run_id, acked) = (
                c.clone(),
                server.api("runs/log-batch"),
                run_id.clone(),
                acked.clone(),
            );
            writers.push(tokio::spawn(async move {
                for batch in 0i64.. {
                    let first = (lane * 1_000_000) + batch * 200;
                    let metrics: Vec<Value> = (first..first + 200)
                        .map(|step| json!({"key": "m", "value": step as f64, "timestamp": 1, "step": step}))
                        .collect();
                    let sent = c.post(&url).json(&json!({"run_id": run_id, "metrics": metrics})).send().await;
                    match sent {
                        Ok(resp) if resp.status().is_success() => {
                            acked.lock().unwrap().entry(run_id.clone()).or_default().extend(first..first + 200);
                        }
                        _ => return,
                    }
                }
                let _ = w;
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for w in writers {
        let _ = w.await;
    }

    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(total > 0, "no batch was acknowledged before the kill");

    let restarted = TestServer::start(&server.data_dir, &server.backend_uri);
    for (run_id, steps) in acked {
        let history: Value = c
            .get(restarted.api(&format!("metrics/get-history?run_id={run_id}&metric_key=m")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored: std::collections::HashSet<i64> = history["metrics"]
            .as_array()
            .map(|a| a.iter().map(|m| m["step"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        let lost: Vec<_> = steps.iter().filter(|s| !stored.contains(s)).collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged steps of run {run_id} lost after kill -9",
            lost.len()
        );
    }
    eprintln!("{total} acknowledged metrics survived kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_metrics_survive_kill_9_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    storm_then_kill(TestServer::start_sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_metrics_survive_kill_9_on_postgres() {
    let Some(uri) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    storm_then_kill(TestServer::start(dir.path(), &uri)).await;
}
