//! A 1,000,000-step metric history is streamed: serving `get-history` for it must not grow the
//! server's resident memory by more than 64 MiB (the whole reply is about 70 MB of JSON, and
//! the points as values several times that). The server's peak RSS is reset after the points
//! are logged and read back from `/proc/<pid>/status` after the reply, with a sampler watching
//! in between in case the kernel refuses the reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::TestServer;

const STEPS: i64 = 1_000_000;
const BATCH: i64 = 1_000;
const LIMIT_KIB: u64 = 64 * 1024;

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[derive(Deserialize)]
struct History {
    metrics: Vec<Point>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Point {
    key: String,
    step: i64,
    timestamp: i64,
    value: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_step_history_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let run: Value = c
        .post(server.api("runs/create"))
        .json(&json!({"experiment_id": "0"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();

    // log_batch in MLflow's chunks of 1,000, from two writers.
    let mut writers = Vec::new();
    for lane in 0..2 {
        let (c, url, run_id) = (c.clone(), server.api("runs/log-batch"), run_id.clone());
        writers.push(tokio::spawn(async move {
            for first in (lane * BATCH..STEPS).step_by(2 * BATCH as usize) {
                let metrics: Vec<Value> = (first..first + BATCH)
                    .map(|s| json!({"key": "loss", "value": s as f64 / 4.0, "timestamp": 1_700_000_000_000i64 + s, "step": s}))
                    .collect();
                let r = c
                    .post(&url)
                    .json(&json!({"run_id": run_id, "metrics": metrics}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "log-batch: {}", r.status());
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }

    let pid = server.child.id();
    let before = status_kib(pid, "VmRSS");
    // "5" resets the peak (VmHWM) to the current RSS (proc(5), Linux 4.0+).
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let sampled = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (sampled, done) = (sampled.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                sampled.fetch_max(status_kib(pid, "VmRSS"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let body = c
        .get(server.api("metrics/get-history"))
        .query(&[("run_id", run_id.as_str()), ("metric_key", "loss")])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = if reset {
        status_kib(pid, "VmHWM").max(sampled.load(Ordering::Relaxed))
    } else {
        sampled.load(Ordering::Relaxed)
    };
    let growth = peak.saturating_sub(before);
    eprintln!(
        "history of {STEPS} steps: {} bytes; server RSS {before} KiB before, peak {peak} KiB \
         (+{growth} KiB; peak reset: {reset})",
        body.len()
    );
    assert!(
        growth <= LIMIT_KIB,
        "serving the history grew the server by {growth} KiB (limit {LIMIT_KIB} KiB)"
    );

    // The reply is the whole history in MLflow's shape, in order.
    let history: History = serde_json::from_slice(&body).unwrap();
    assert_eq!(history.metrics.len(), STEPS as usize);
    assert_eq!(history.next_page_token, None);
    for (i, p) in history.metrics.iter().enumerate() {
        let s = i as i64;
        assert_eq!(
            (p.key.as_str(), p.step, p.timestamp, p.value),
            ("loss", s, 1_700_000_000_000 + s, s as f64 / 4.0)
        );
    }
}
