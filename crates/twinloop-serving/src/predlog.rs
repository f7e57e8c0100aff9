//! The prediction log: every answer (and every shadow answer) as one row, appended off the
//! request path to Parquet segments in the artifact store. Schema: docs/serving.md.
//!
//! Requests never wait on it: records go through a bounded queue with `try_send`; when the queue
//! is full the record is dropped and `twinloop_serving_prediction_log_dropped_total` counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};

use crate::tensor::Tensor;

#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    pub time_us: i64,
    pub request_id: String,
    pub deployment: String,
    pub model_name: String,
    pub model_version: String,
    /// `primary` for the answer returned, `shadow` for a mirrored copy.
    pub role: &'static str,
    /// `ok` or `error`.
    pub status: &'static str,
    pub latency_us: i64,
    /// Serialized by the writer, off the request path, as `{"<name>": {"datatype", "shape", "data"}}`.
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    pub error: Option<String>,
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

fn schema() -> Arc<Schema> {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("request_id", false),
        text("deployment", false),
        text("model_name", false),
        text("model_version", false),
        text("role", false),
        text("status", false),
        Field::new("latency_us", DataType::Int64, false),
        text("inputs", false),
        text("outputs", true),
        text("error", true),
    ]))
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
    let rows = std::mem::take(buffer);
    metrics::counter!("twinloop_serving_prediction_log_rows_total").increment(rows.len() as u64);
    let mut by_deployment: std::collections::BTreeMap<&str, Vec<&PredictionRecord>> =
        Default::default();
    for r in &rows {
        by_deployment.entry(&r.deployment).or_default().push(r);
    }
    for (deployment, records) in by_deployment {
        *sequence += 1;
        let first = records[0].time_us;
        let date = chrono::DateTime::from_timestamp_micros(first)
            .unwrap_or_default()
            .format("%Y-%m-%d");
        let path = format!(
            "predictions/{deployment}/{date}/{first:016}-{:08}-{}.parquet",
            *sequence,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let written = match encode(&records) {
            Ok(bytes) => put(store, &path, bytes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            metrics::counter!("twinloop_serving_prediction_log_dropped_total")
                .increment(records.len() as u64);
            tracing::error!(path, error = %e, "cannot write a prediction-log segment");
        }
    }
}

async fn put(store: &ArtifactStore, path: &str, bytes: Vec<u8>) -> Result<(), String> {
    let path = ArtifactPath::parse(path).map_err(|e| e.message)?;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    store
        .put(&path, body)
        .await
        .map(|_| ())
        .map_err(|e| e.message)
}

/// One Parquet file of `records`, in the log's schema.
pub fn encode(records: &[&PredictionRecord]) -> Result<Vec<u8>, String> {
    let mut time = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut latency = Int64Builder::new();
    let mut texts: Vec<StringBuilder> = (0..9).map(|_| StringBuilder::new()).collect();
    for r in records {
        time.append_value(r.time_us);
        latency.append_value(r.latency_us);
        let inputs = tensors_json(&r.inputs);
        let outputs = (r.error.is_none()).then(|| tensors_json(&r.outputs));
        let values: [Option<&str>; 9] = [
            Some(&r.request_id),
            Some(&r.deployment),
            Some(&r.model_name),
            Some(&r.model_version),
            Some(r.role),
            Some(r.status),
            Some(&inputs),
            outputs.as_deref(),
            r.error.as_deref(),
        ];
        for (b, v) in texts.iter_mut().zip(values) {
            b.append_option(v);
        }
    }
    let mut texts: Vec<ArrayRef> = texts
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    let mut columns: Vec<ArrayRef> = vec![Arc::new(time.finish())];
    columns.extend(texts.drain(..6));
    columns.push(Arc::new(latency.finish()));
    columns.extend(texts);
    let batch = RecordBatch::try_new(schema(), columns).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), None).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn record(i: i64) -> PredictionRecord {
        PredictionRecord {
            time_us: 1_700_000_000_000_000 + i,
            request_id: format!("r{i}"),
            deployment: "fraud".into(),
            model_name: "fraud".into(),
            model_version: "3".into(),
            role: "primary",
            status: "ok",
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
    fn a_segment_reads_back_in_the_documented_schema() {
        let records = [record(1), record(2)];
        let bytes = encode(&records.iter().collect::<Vec<_>>()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches[0].num_rows(), 2);
        assert_eq!(batches[0].schema(), schema());
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
        use arrow::array::{Array, StringArray};
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
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap()
            {
                let batch = batch.unwrap();
                let column = batch.column_by_name("request_id").unwrap();
                let column = column.as_any().downcast_ref::<StringArray>().unwrap();
                ids.extend((0..column.len()).map(|i| column.value(i).to_string()));
            }
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
