//! Reading the prediction log back: the primary, successful rows of one deployment after a
//! point in time, from its Parquet segments in the artifact store.

use arrow::array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};
use bytes::Bytes;
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};
use twinloop_artifacts::{ArtifactPath, ArtifactStore};

#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub time_us: i64,
    pub request_id: String,
    pub model_version: String,
    pub latency_us: i64,
    pub inputs: Map<String, Value>,
    pub outputs: Map<String, Value>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Segment files of `deployment`, oldest first (their names start with the first row's time).
async fn segments(store: &ArtifactStore, deployment: &str) -> Result<Vec<(i64, String)>, String> {
    let root = format!("predictions/{deployment}");
    let days = match store
        .list(&ArtifactPath::parse(&root).map_err(|e| e.message)?)
        .await
    {
        Ok(d) => d,
        Err(e) if e.code == twinloop_core::ErrorCode::ResourceDoesNotExist => return Ok(Vec::new()),
        Err(e) => return Err(e.message),
    };
    let mut out = Vec::new();
    for day in days.into_iter().filter(|d| d.is_dir) {
        let dir = format!("{root}/{}", day.path);
        for f in store
            .list(&ArtifactPath::parse(&dir).map_err(|e| e.message)?)
            .await
            .map_err(|e| e.message)?
        {
            let first = f.path.split('-').next().and_then(|t| t.parse::<i64>().ok());
            if let (false, Some(first)) = (f.is_dir, first) {
                out.push((first, format!("{dir}/{}", f.path)));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Rows with `time > after_us`, in time order. A segment is skipped when the next one starts
/// at or before `after_us` (segments of a deployment are written in time order).
pub async fn read_after(
    store: &ArtifactStore,
    deployment: &str,
    after_us: i64,
) -> Result<Vec<Logged>, String> {
    let files = segments(store, deployment).await?;
    let mut rows = Vec::new();
    for (i, (_, path)) in files.iter().enumerate() {
        if files.get(i + 1).is_some_and(|(next, _)| *next <= after_us) {
            continue;
        }
        let file = store
            .get(&ArtifactPath::parse(path).map_err(|e| e.message)?)
            .await
            .map_err(|e| e.message)?;
        let chunks: Vec<Bytes> = file
            .stream
            .try_collect()
            .await
            .map_err(|e: twinloop_core::Error| e.message)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(chunks.concat()))
            .map_err(err)?
            .build()
            .map_err(err)?;
        for batch in reader {
            let batch = batch.map_err(err)?;
            let text = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
            };
            let (Some(id), Some(version), Some(role), Some(status), Some(inputs), Some(outputs)) = (
                text("request_id"),
                text("model_version"),
                text("role"),
                text("status"),
                text("inputs"),
                text("outputs"),
            ) else {
                return Err(format!("{path}: not a prediction-log segment"));
            };
            let time = batch
                .column_by_name("time")
                .and_then(|c| {
                    c.as_any()
                        .downcast_ref::<TimestampMicrosecondArray>()
                        .cloned()
                })
                .ok_or_else(|| format!("{path}: no time column"))?;
            let latency = batch
                .column_by_name("latency_us")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
                .ok_or_else(|| format!("{path}: no latency_us column"))?;
            for r in 0..batch.num_rows() {
                if role.value(r) != "primary"
                    || status.value(r) != "ok"
                    || time.value(r) <= after_us
                    || outputs.is_null(r)
                {
                    continue;
                }
                let object = |s: &str| match serde_json::from_str(s) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                rows.push(Logged {
                    time_us: time.value(r),
                    request_id: id.value(r).to_string(),
                    model_version: version.value(r).to_string(),
                    latency_us: latency.value(r),
                    inputs: object(inputs.value(r)),
                    outputs: object(outputs.value(r)),
                });
            }
        }
    }
    rows.sort_by_key(|r| r.time_us);
    Ok(rows)
}
