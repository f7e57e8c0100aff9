//! The ledger of acknowledged writes (security.md §4.1): a client that writes through the real
//! server's MLflow API and records every write before it is sent and again once the server
//! acknowledged it, and a verifier that reads everything back after a fault. Its rules, for
//! every fault:
//!
//! - every acknowledged write is there and whole (runs, model versions, metric batches with their
//!   param and tag, artifacts with their sha256);
//! - no batch is torn: a `log-batch`, acknowledged or not, is all there or not there at all;
//! - an unacknowledged artifact is absent or whole, never a prefix.
//!
//! Runs and model versions get their ids from the server, so only acknowledged ones are
//! recorded. Each batch and artifact has its own names (`b<id>` keys, `<prefix>/<id>.bin`), so
//! what is read back says exactly which write it came from.
//!
//! [`Workload`] runs the design's writers (F1) against one server until stopped and keeps every
//! request's outcome and latency, for the faults that judge how requests fail, not only what
//! survives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One write the client sent. Batches and artifacts are recorded before they are sent, runs and
/// model versions once acknowledged.
#[derive(Debug, Clone)]
pub enum Write {
    Run {
        run_id: String,
        experiment_id: String,
        name: String,
    },
    /// Metric `key` at steps `0..steps` (value = step), param `key` = `value`, tag `key` = `value`.
    Batch {
        run_id: String,
        key: String,
        steps: u32,
        value: String,
    },
    ModelVersion {
        model: String,
        version: String,
        source: String,
    },
    /// `path` under the artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/<path>`).
    Artifact {
        path: String,
        len: usize,
        sha256: String,
    },
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub write: Write,
    pub acked: bool,
}

/// Every write a client sent, in the order sent.
#[derive(Default)]
pub struct Ledger {
    entries: Mutex<Vec<Entry>>,
    next_id: AtomicU64,
}

/// How one request ended.
#[derive(Debug, Clone)]
pub enum Outcome<T> {
    /// A 2xx.
    Acked(T),
    /// An answer that is not 2xx, with its body (`Value::Null` when it is not JSON).
    Refused { status: u16, body: Value },
    /// No answer: the connection failed or the request timed out.
    NoAnswer(String),
}

impl<T> Outcome<T> {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Acked(_) => Some(200),
            Outcome::Refused { status, .. } => Some(*status),
            Outcome::NoAnswer(_) => None,
        }
    }

    pub fn acked(self) -> Option<T> {
        match self {
            Outcome::Acked(v) => Some(v),
            _ => None,
        }
    }
}

/// Whether `body` is MLflow's error shape: `{"error_code": "...", "message": "..."}`.
pub fn is_mlflow_error(body: &Value) -> bool {
    body["error_code"].is_string() && body["message"].is_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ledger {
    pub fn new() -> Arc<Ledger> {
        Arc::default()
    }

    /// A name no other write of this ledger uses.
    pub fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn record(&self, write: Write, acked: bool) -> usize {
        let mut entries = self.entries.lock().unwrap();
        entries.push(Entry { write, acked });
        entries.len() - 1
    }

    fn ack(&self, index: usize) {
        self.entries.lock().unwrap()[index].acked = true;
    }

    /// How many writes are recorded: a mark for [`verify_since`](Self::verify_since).
    pub fn mark(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn acked(&self) -> usize {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.acked)
            .count()
    }

    /// Checks every recorded write against the server at `base`.
    pub async fn verify(&self, base: &str) -> Verdict {
        self.verify_since(0, base).await
    }

    /// Checks the writes recorded from index `mark` on (an earlier [`mark`](Self::mark)).
    pub async fn verify_since(&self, mark: usize, base: &str) -> Verdict {
        let entries: Vec<Entry> = self.entries.lock().unwrap()[mark..].to_vec();
        let reader = Reader::new(base);
        let mut verdict = Verdict::default();
        let mut runs: HashMap<String, Value> = HashMap::new();
        for entry in entries {
            verdict.checked += 1;
            verdict.acked += usize::from(entry.acked);
            match &entry.write {
                Write::Run {
                    run_id,
                    experiment_id,
                    name,
                } => {
                    let run = reader.run(run_id).await;
                    let info = &run["run"]["info"];
                    if info["experiment_id"] != experiment_id.as_str()
                        || info["run_name"] != name.as_str()
                    {
                        verdict.lost.push(format!("run {run_id} ({name}): {run}"));
                    }
                }
                Write::Batch {
                    run_id,
                    key,
                    steps,
                    value,
                } => {
                    if !runs.contains_key(run_id) {
                        runs.insert(run_id.clone(), reader.run(run_id).await);
                    }
                    let data = &runs[run_id]["run"]["data"];
                    let has = |field: &str| {
                        data[field]
                            .as_array()
                            .is_some_and(|items| items.iter().any(|i| i["key"] == key.as_str()))
                    };
                    let whole_pair = |field: &str| {
                        data[field].as_array().is_some_and(|items| {
                            items
                                .iter()
                                .any(|i| i["key"] == key.as_str() && i["value"] == value.as_str())
                        })
                    };
                    let points = reader.history(run_id, key).await;
                    let mut seen: Vec<i64> = points
                        .iter()
                        .filter(|p| p["value"].as_f64() == p["step"].as_i64().map(|s| s as f64))
                        .filter_map(|p| p["step"].as_i64())
                        .collect();
                    seen.sort_unstable();
                    seen.dedup();
                    let all_points = points.len() == *steps as usize
                        && seen == (0..i64::from(*steps)).collect::<Vec<_>>();
                    let whole = all_points && whole_pair("params") && whole_pair("tags");
                    let absent = points.is_empty() && !has("params") && !has("tags");
                    let what = format!(
                        "batch {key} of run {run_id}: {} of {steps} points, param {}, tag {}",
                        points.len(),
                        has("params"),
                        has("tags")
                    );
                    if !whole && !absent {
                        verdict.torn.push(what);
                    } else if entry.acked && !whole {
                        verdict.lost.push(what);
                    }
                }
                Write::ModelVersion {
                    model,
                    version,
                    source,
                } => {
                    let found = reader.model_version(model, version).await;
                    if found["model_version"]["source"] != source.as_str() {
                        verdict
                            .lost
                            .push(format!("model version {model}/{version}: {found}"));
                    }
                }
                Write::Artifact { path, len, sha256 } => match reader.artifact(path).await {
                    Some(bytes) if sha256_hex(&bytes) == *sha256 => {}
                    Some(bytes) => verdict.torn.push(format!(
                        "artifact {path}: {} bytes read back, {len} sent, sha256 differs",
                        bytes.len()
                    )),
                    None if entry.acked => verdict.lost.push(format!("artifact {path}")),
                    None => {}
                },
            }
        }
        verdict
    }
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub checked: usize,
    pub acked: usize,
    /// Acknowledged writes missing or not whole.
    pub lost: Vec<String>,
    /// Writes partly there (a torn batch, an artifact that is not what was sent).
    pub torn: Vec<String>,
}

impl Verdict {
    /// Fails the test with the first few findings unless nothing was lost or torn.
    pub fn assert_clean(&self, context: &str) {
        let show = |v: &[String]| v.iter().take(10).cloned().collect::<Vec<_>>().join("\n  ");
        assert!(
            self.lost.is_empty() && self.torn.is_empty(),
            "{context}: {} acknowledged writes lost, {} torn (of {} checked):\n  {}\n  {}",
            self.lost.len(),
            self.torn.len(),
            self.checked,
            show(&self.lost),
            show(&self.torn)
        );
    }
}

/// Reads back through the API, retrying what a just-restarted server may not answer yet; a
/// read that keeps failing fails the test, since a verdict must not mistake it for a loss.
struct Reader {
    http: reqwest::Client,
    base: String,
}

impl Reader {
    fn new(base: &str) -> Reader {
        Reader {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: base.to_string(),
        }
    }

    /// GETs `url`; `None` on 404, the body otherwise.
    async fn get(&self, url: &str) -> Option<Vec<u8>> {
        let mut attempts = 0;
        loop {
            let failure = match self.http.get(url).send().await {
                Ok(r) if r.status().is_success() => match r.bytes().await {
                    Ok(body) => return Some(body.to_vec()),
                    Err(e) => e.to_string(),
                },
                Ok(r) if r.status() == 404 => return None,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            attempts += 1;
            assert!(attempts < 20, "reading back {url} failed: {failure}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn json(&self, url: &str) -> Value {
        self.get(url)
            .await
            .map_or(Value::Null, |b| serde_json::from_slice(&b).unwrap())
    }

    async fn run(&self, run_id: &str) -> Value {
        self.json(&format!(
            "{}/api/2.0/mlflow/runs/get?run_id={run_id}",
            self.base
        ))
        .await
    }

    async fn history(&self, run_id: &str, key: &str) -> Vec<Value> {
        let page = self
            .json(&format!(
                "{}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key={key}",
                self.base
            ))
            .await;
        page["metrics"].as_array().cloned().unwrap_or_default()
    }

    async fn model_version(&self, model: &str, version: &str) -> Value {
        self.json(&format!(
            "{}/api/2.0/mlflow/model-versions/get?name={model}&version={version}",
            self.base
        ))
        .await
    }

    async fn artifact(&self, path: &str) -> Option<Vec<u8>> {
        self.get(&format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
            self.base
        ))
        .await
    }
}

/// Writes through the MLflow API and records them in a [`Ledger`].
#[derive(Clone)]
pub struct LedgerClient {
    pub http: reqwest::Client,
    pub base: String,
    pub ledger: Arc<Ledger>,
}

impl LedgerClient {
    /// A client of the server at `base`; a request that gets no answer within `timeout` counts
    /// as [`Outcome::NoAnswer`].
    pub fn new(ledger: Arc<Ledger>, base: &str, timeout: Duration) -> LedgerClient {
        LedgerClient {
            http: reqwest::Client::builder().timeout(timeout).build().unwrap(),
            base: base.to_string(),
            ledger,
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    async fn answer(sent: reqwest::Result<reqwest::Response>) -> Outcome<Value> {
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Ok(body) => {
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if (200..300).contains(&status) {
                            Outcome::Acked(body)
                        } else {
                            Outcome::Refused { status, body }
                        }
                    }
                    Err(e) => Outcome::NoAnswer(e.to_string()),
                }
            }
            Err(e) => Outcome::NoAnswer(e.to_string()),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Outcome<Value> {
        Self::answer(self.http.post(self.api(path)).json(&body).send().await).await
    }

    /// Creates an experiment (or finds the one of that name); panics unless the server answers.
    pub async fn experiment(&self, name: &str) -> String {
        match self
            .post("experiments/create", json!({ "name": name }))
            .await
        {
            Outcome::Acked(body) => body["experiment_id"].as_str().unwrap().to_string(),
            _ => {
                let url = self.api(&format!("experiments/get-by-name?experiment_name={name}"));
                let found: Value = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                found["experiment"]["experiment_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        }
    }

    /// Creates a registered model, or accepts that it exists.
    pub async fn registered_model(&self, name: &str) {
        let outcome = self
            .post("registered-models/create", json!({ "name": name }))
            .await;
        match outcome {
            Outcome::Acked(_) => {}
            Outcome::Refused { body, .. } if body["error_code"] == "RESOURCE_ALREADY_EXISTS" => {}
            other => panic!("registered-models/create {name}: {other:?}"),
        }
    }

    pub async fn create_run(&self, experiment_id: &str) -> Outcome<String> {
        let name = format!("r{}", self.ledger.fresh_id());
        let outcome = self
            .post(
                "runs/create",
                json!({"experiment_id": experiment_id, "run_name": name, "start_time": 1}),
            )
            .await;
        match outcome {
            Outcome::Acked(body) => {
                let run_id = body["run"]["info"]["run_id"].as_str().unwrap().to_string();
                self.ledger.record(
                    Write::Run {
                        run_id: run_id.clone(),
                        experiment_id: experiment_id.to_string(),
                        name,
                    },
                    true,
                );
                Outcome::Acked(run_id)
            }
            Outcome::Refused { status, body } => Outcome::Refused { status, body },
            Outcome::NoAnswer(e) => Outcome::NoAnswer(e),
        }
    }

    /// Logs `steps` points of a new metric key, with a param and a tag of the same key, in one
    /// `log-batch`.
    pub async fn log_batch(&self, run_id: &str, steps: u32) -> Outcome<()> {
        let id = self.ledger.fresh_id();
        let key = format!("b{id}");
        let value = format!("v{id}");
        let metrics: Vec<Value> = (0..steps)
            .map(|s| json!({"key": key, "value": f64::from(s), "timestamp": 1, "step": s}))
            .collect();
        let body = json!({
            "run_id": run_id,
            "metrics": metrics,
            "params": [{"key": key, "value": value}],
            "tags": [{"key": key, "value": value}],
        });
        let index = self.ledger.record(
            Write::Batch {
                run_id: run_id.to_string(),
                key,
                steps,
                value,
            },
            false,
        );
        let outcome = self.post("runs/log-batch", body).await;
        self.settle(index, outcome)
    }

    pub async fn create_model_version(&self, model: &str) -> Outcome<String> {
        let source = format!("mlflow-artifacts:/faults/models/{}", self.ledger.fresh_id());
        let outcome = self
            .post(
                "model-versions/create",
                json!({"name": model, "source": source}),
            )
            .await;
        match outcome {
            Outcome::Acked(body) => {
                let version = body["model_version"]["version"]
                    .as_str()
                    .unwrap()
                    .to_string();
                self.ledger.record(
                    Write::ModelVersion {
                        model: model.to_string(),
                        version: version.clone(),
                        source,
                    },
                    true,
                );
                Outcome::Acked(version)
            }
            Outcome::Refused { status, body } => Outcome::Refused { status, body },
            Outcome::NoAnswer(e) => Outcome::NoAnswer(e),
        }
    }

    /// Uploads `bytes` to a new path under `prefix` through the artifact proxy.
    pub async fn upload(&self, prefix: &str, bytes: Vec<u8>) -> Outcome<()> {
        let path = format!("{prefix}/{}.bin", self.ledger.fresh_id());
        let index = self.ledger.record(
            Write::Artifact {
                path: path.clone(),
                len: bytes.len(),
                sha256: sha256_hex(&bytes),
            },
            false,
        );
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.base);
        let outcome = Self::answer(self.http.put(url).body(bytes).send().await).await;
        self.settle(index, outcome)
    }

    fn settle(&self, index: usize, outcome: Outcome<Value>) -> Outcome<()> {
        match outcome {
            Outcome::Acked(_) => {
                self.ledger.ack(index);
                Outcome::Acked(())
            }
            Outcome::Refused { status, body } => Outcome::Refused { status, body },
            Outcome::NoAnswer(e) => Outcome::NoAnswer(e),
        }
    }
}

/// splitmix64: a seeded generator, so a failing run can be replayed (`TWINLOOP_FAULTS_SEED`).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The seed from `TWINLOOP_FAULTS_SEED`, else from the clock; printed either way.
    pub fn seed() -> u64 {
        let seed = std::env::var("TWINLOOP_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("fault suite seed: TWINLOOP_FAULTS_SEED={seed}");
        seed
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// One request a writer made, as the client saw it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub op: &'static str,
    pub sent: Instant,
    pub took: Duration,
    /// `None`: no answer (connection failed, or no answer within the client's timeout).
    pub status: Option<u16>,
    /// For an answer that is not 2xx: whether it is MLflow's error shape.
    pub mlflow_shaped: bool,
}

/// What the writers do, and how much.
#[derive(Debug, Clone)]
pub struct Mix {
    pub writers: usize,
    /// Largest `log-batch` (metric points; at most 998 with its param and tag).
    pub max_batch: u32,
    /// Artifact sizes, in bytes.
    pub artifact_bytes: (usize, usize),
    /// Per request; past it a request counts as unanswered.
    pub timeout: Duration,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            writers: 8,
            max_batch: 300,
            artifact_bytes: (1024, 256 * 1024),
            timeout: Duration::from_secs(30),
        }
    }
}

/// F1's writers: each creates a run, then loops over `log-batch` (60%), artifact uploads (15%),
/// new runs (10%) and model versions of `model` (15%) until stopped, recording every write in
/// the ledger and every request in [`Observed`].
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    observed: Arc<Mutex<Vec<Observed>>>,
}

impl Workload {
    pub fn start(
        ledger: &Arc<Ledger>,
        base: &str,
        experiment_id: &str,
        model: &str,
        mix: &Mix,
        rng: &mut Rng,
    ) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let observed: Arc<Mutex<Vec<Observed>>> = Arc::default();
        let tasks = (0..mix.writers)
            .map(|w| {
                let client = LedgerClient::new(ledger.clone(), base, mix.timeout);
                let (stop, observed, mix) = (stop.clone(), observed.clone(), mix.clone());
                let (experiment_id, model) = (experiment_id.to_string(), model.to_string());
                let mut rng = Rng::new(rng.next_u64());
                tokio::spawn(async move {
                    let mut run: Option<String> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let roll = rng.between(0, 99);
                        let (op, status, shaped) = match &run {
                            Some(run_id) if roll < 60 => {
                                let steps = rng.between(1, u64::from(mix.max_batch)) as u32;
                                shape("log-batch", client.log_batch(run_id, steps).await)
                            }
                            Some(_) if roll < 75 => {
                                let len = rng.between(
                                    mix.artifact_bytes.0 as u64,
                                    mix.artifact_bytes.1 as u64,
                                ) as usize;
                                let bytes = rng.bytes(len);
                                shape(
                                    "artifact",
                                    client.upload(&format!("faults/w{w}"), bytes).await,
                                )
                            }
                            Some(_) if roll >= 85 => {
                                shape("model-version", client.create_model_version(&model).await)
                            }
                            _ => {
                                let outcome = client.create_run(&experiment_id).await;
                                if let Outcome::Acked(id) = &outcome {
                                    run = Some(id.clone());
                                }
                                shape("run", outcome)
                            }
                        };
                        let took = sent.elapsed();
                        observed.lock().unwrap().push(Observed {
                            op,
                            sent,
                            took,
                            status,
                            mlflow_shaped: shaped,
                        });
                        if status.is_none() {
                            // The server is down: do not spin on refused connections.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Workload {
            stop,
            tasks,
            observed,
        }
    }

    /// Stops the writers (each finishes its request in flight) and returns what they saw.
    pub async fn stop(self) -> Vec<Observed> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.observed.lock().unwrap())
    }
}

fn shape<T>(op: &'static str, outcome: Outcome<T>) -> (&'static str, Option<u16>, bool) {
    let shaped = match &outcome {
        Outcome::Refused { body, .. } => is_mlflow_error(body),
        _ => true,
    };
    (op, outcome.status(), shaped)
}
