//! The prediction log: every answer (and every shadow answer) as one row, appended off the
//! request path to Parquet segments in the artifact store. Schema: docs/serving.md.
//!
//! Requests never wait on it: records go through a bounded queue with `try_send`; when the queue
//! is full the record is dropped and `twinloop_serving_prediction_log_dropped_total` counts it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use twinloop_artifacts::ArtifactStore;
use twinloop_predlog::segment;
pub use twinloop_predlog::{Role, Row, Status};

use crate::tensor::Tensor;

#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    pub time_us: i64,
    pub request_id: String,
    pub deployment: String,
    pub model_name: String,
    pub model_version: String,
    pub role: Role,
    pub status: Status,
    pub latency_us: i64,
    /// Serialized by the writer, off the request path, as `{"<name>": {"datatype", "shape", "data"}}`.
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    pub error: Option<String>,
}

impl PredictionRecord {
    /// The row the log keeps: tensors serialized here, on the writer's task.
    fn into_row(self) -> Row {
        let outputs = self.error.is_none().then(|| tensors_json(&self.outputs));
        Row {
            time_us: self.time_us,
            inputs: tensors_json(&self.inputs),
            request_id: self.request_id,
            deployment: self.deployment,
            model_name: self.model_name,
            model_version: self.model_version,
            role: self.role,
            status: self.status,
            latency_us: self.latency_us,
            outputs,
            error: self.error,
        }
    }
}

/// V2 tensors as the log's JSON column (BYTES as text, lossily).
pub fn tensors_json(tensors: &[Tensor]) -> String {
    let mut map = Map::new();
    for t in tensors {
        map.insert(
            t.name.clone(),
            json!({"datatype": t.data.datatype().name(), "shape": t.shape, "data": Value::Array(t.data.to_json())}),
        );
    }
    Value::Object(map).to_string()
}

/// When a segment is written: this many rows, or this long after its first row.
#[derive(Debug, Clone, Copy)]
pub struct SegmentPolicy {
    pub max_rows: usize,
    pub max_age: Duration,
    pub queue: usize,
}

impl Default for SegmentPolicy {
    fn default() -> Self {
        SegmentPolicy {
            max_rows: 50_000,
            max_age: Duration::from_secs(10),
            queue: 65_536,
        }
    }
}

#[derive(Clone)]
pub struct PredictionLog {
    tx: Option<mpsc::Sender<PredictionRecord>>,
    dropped: Arc<AtomicU64>,
}

impl PredictionLog {
    /// A log that keeps nothing (the stateless server without `--prediction-log`).
    pub fn disabled() -> PredictionLog {
        PredictionLog {
            tx: None,
            dropped: Arc::default(),
        }
    }

    /// Starts the writer: segments go to `store` under `predictions/<deployment>/<date>/`.
    pub fn start(
        store: ArtifactStore,
        policy: SegmentPolicy,
    ) -> (PredictionLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(policy.queue);
        let writer = tokio::spawn(write_segments(store, policy, rx));
        (
            PredictionLog {
                tx: Some(tx),
                dropped: Arc::default(),
            },
            writer,
        )
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn append(&self, record: PredictionRecord) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("twinloop_serving_prediction_log_dropped_total").increment(1);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops taking records; the writer flushes what it holds and ends.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

async fn write_segments(
    store: ArtifactStore,
    policy: SegmentPolicy,
    mut rx: mpsc::Receiver<PredictionRecord>,
) {
    let mut buffer: Vec<PredictionRecord> = Vec::new();
    let mut sequence = 0u64;
    // Set when a segment's first row arrives and never pushed back by later rows: under steady
    // traffic a timer restarted per record would never fire, and monitors (and a crash) would
    // see nothing until the traffic paused.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let record = match due {
            None => rx.recv().await,
            Some(deadline) => tokio::select! {
                // The deadline first: a queue that is never empty must not starve it.
                biased;
                () = tokio::time::sleep_until(deadline) => {
                    flush(&store, &mut buffer, &mut sequence).await;
                    due = None;
                    continue;
                }
                r = rx.recv() => r,
            },
        };
        match record {
            Some(r) => {
                if buffer.is_empty() {
                    due = Some(tokio::time::Instant::now() + policy.max_age);
                }
                buffer.push(r);
                if buffer.len() >= policy.max_rows {
                    flush(&store, &mut buffer, &mut sequence).await;
                    due = None;
                }
            }
            None => {
                flush(&store, &mut buffer, &mut sequence).await;
                return;
            }
        }
    }
}

async fn flush(store: &ArtifactStore, buffer: &mut Vec<PredictionRecord>, sequence: &mut u64) {
    if buffer.is_empty() {
        return;
    }
    let records = std::mem::take(buffer);
    metrics::counter!("twinloop_serving_prediction_log_rows_total").increment(records.len() as u64);
    let mut by_deployment: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in records {
        by_deployment
            .entry(r.deployment.clone())
            .or_default()
            .push(r.into_row());
    }
    for (deployment, rows) in by_deployment {
        *sequence += 1;
        let path = segment::path(&deployment, rows[0].time_us, *sequence);
        if let Err(e) = segment::write(store, &path, &rows).await {
            metrics::counter!("twinloop_serving_prediction_log_dropped_total")
                .increment(rows.len() as u64);
            tracing::error!(path, error = %e, "cannot write a prediction-log segment");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;
    use bytes::Bytes;

    fn record(i: i64) -> PredictionRecord {
        PredictionRecord {
            time_us: 1_700_000_000_000_000 + i,
            request_id: format!("r{i}"),
            deployment: "fraud".into(),
            model_name: "fraud".into(),
            model_version: "3".into(),
            role: Role::Primary,
            status: Status::Ok,
            latency_us: 120,
            inputs: vec![Tensor {
                name: "X".into(),
                shape: vec![1, 1],
                data: TensorData::Fp32(vec![1.0]),
            }],
            outputs: vec![Tensor {
                name: "y".into(),
                shape: vec![1],
                data: TensorData::Fp32(vec![0.5]),
            }],
            error: None,
        }
    }

    #[test]
    fn a_record_becomes_a_row_with_its_tensors_as_json() {
        let row = record(1).into_row();
        assert_eq!(
            row.inputs,
            r#"{"X":{"data":[1.0],"datatype":"FP32","shape":[1,1]}}"#
        );
        assert_eq!(
            row.outputs.as_deref(),
            Some(r#"{"y":{"data":[0.5],"datatype":"FP32","shape":[1]}}"#)
        );
        let failed = PredictionRecord {
            error: Some("boom".into()),
            status: Status::Error,
            ..record(2)
        }
        .into_row();
        assert_eq!(
            (failed.outputs, failed.error.as_deref()),
            (None, Some("boom"))
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, _rx) = mpsc::channel(1);
        let log = PredictionLog {
            tx: Some(tx),
            dropped: Arc::default(),
        };
        for i in 0..5 {
            log.append(record(i));
        }
        assert_eq!(log.dropped(), 4);
    }

    /// Request ids of every row of the finished segments in `day`, and how many segments.
    fn logged_ids(day: &std::path::Path) -> (Vec<String>, usize) {
        let Ok(entries) = std::fs::read_dir(day) else {
            return (Vec::new(), 0);
        };
        let (mut ids, mut segments) = (Vec::new(), 0);
        for entry in entries {
            let path = entry.unwrap().path();
            // object_store stages a file under another name and renames it when complete.
            if path.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            segments += 1;
            let bytes = Bytes::from(std::fs::read(&path).unwrap());
            let rows = segment::decode(bytes, &path.display().to_string()).unwrap();
            ids.extend(rows.into_iter().map(|r| r.request_id));
        }
        (ids, segments)
    }

    #[tokio::test]
    async fn steady_traffic_writes_segments_while_it_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let max_age = Duration::from_millis(100);
        let policy = SegmentPolicy {
            max_age,
            ..SegmentPolicy::default()
        };
        let (mut log, writer) = PredictionLog::start(store, policy);
        let day = dir.path().join("predictions/fraud/2023-11-14");
        // A record every tenth of max_age never leaves the writer idle for max_age: only a
        // deadline taken from each segment's first row writes segments while this goes on.
        // The bound on records only keeps a broken writer from hanging the test.
        let mut ticks = tokio::time::interval(max_age / 10);
        let mut sent = 0;
        while logged_ids(&day).1 < 3 {
            assert!(
                sent < 1_000,
                "{sent} records, one every {:?}, and fewer than 3 segments",
                max_age / 10
            );
            ticks.tick().await;
            log.append(record(sent));
            sent += 1;
        }
        log.close();
        writer.await.unwrap();
        let (mut ids, _) = logged_ids(&day);
        ids.sort_by_key(|id| id[1..].parse::<i64>().unwrap());
        let expected: Vec<String> = (0..sent).map(|i| format!("r{i}")).collect();
        assert_eq!(ids, expected, "every record once, none lost or repeated");
    }

    #[tokio::test]
    async fn closing_flushes_every_record_to_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let (mut log, writer) = PredictionLog::start(store, SegmentPolicy::default());
        for i in 0..3 {
            log.append(record(i));
        }
        log.close();
        writer.await.unwrap();
        let day = dir.path().join("predictions/fraud/2023-11-14");
        let files: Vec<_> = std::fs::read_dir(day).unwrap().collect();
        assert_eq!(files.len(), 1);
    }
}
