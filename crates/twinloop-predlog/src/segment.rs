//! One segment: a Parquet file of rows of one deployment, named so that listing a folder gives
//! the segments in time order.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};

use crate::PredlogError;
use crate::schema::{self, Role, Row, Status, schema};

/// The log's folder in the artifact store.
pub const ROOT: &str = "predictions";

/// Where a segment whose first row is at `first_us` goes:
/// `predictions/<deployment>/<UTC date>/<first_us, 16 digits>-<sequence>-<random>.parquet`. The
/// name starts with the first row's time so that readers can skip whole segments; the random
/// part keeps two writers (processes) apart.
pub fn path(deployment: &str, first_us: i64, sequence: u64) -> String {
    let date = chrono::DateTime::from_timestamp_micros(first_us)
        .unwrap_or_default()
        .format("%Y-%m-%d");
    format!(
        "{ROOT}/{deployment}/{date}/{first_us:016}-{sequence:08}-{}.parquet",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The first row's time a segment's file name starts with; `None` for any other file.
pub fn first_time(file_name: &str) -> Option<i64> {
    file_name.split('-').next()?.parse().ok()
}

/// One Parquet file of `rows`, in the log's schema.
pub fn encode(rows: &[Row]) -> Result<Vec<u8>, PredlogError> {
    let mut time = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut latency = Int64Builder::new();
    let mut texts: Vec<StringBuilder> = (0..9).map(|_| StringBuilder::new()).collect();
    for r in rows {
        time.append_value(r.time_us);
        latency.append_value(r.latency_us);
        let values: [Option<&str>; 9] = [
            Some(&r.request_id),
            Some(&r.deployment),
            Some(&r.model_name),
            Some(&r.model_version),
            Some(r.role.as_str()),
            Some(r.status.as_str()),
            Some(&r.inputs),
            r.outputs.as_deref(),
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
    // The schema's order: time, six text columns, latency, the other three.
    let mut columns: Vec<ArrayRef> = vec![Arc::new(time.finish())];
    columns.extend(texts.drain(..6));
    columns.push(Arc::new(latency.finish()));
    columns.extend(texts);
    let batch = RecordBatch::try_new(schema(), columns)?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}

/// Writes `rows` as one segment at `path` (from [`path`]); it becomes visible when complete.
pub async fn write(store: &ArtifactStore, path: &str, rows: &[Row]) -> Result<(), PredlogError> {
    let bytes = encode(rows)?;
    let path = ArtifactPath::parse(path)?;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    store.put(&path, body).await?;
    Ok(())
}

/// Every row of one segment's bytes; `path` names it in errors.
pub fn decode(bytes: impl Into<Bytes>, path: &str) -> Result<Vec<Row>, PredlogError> {
    let not_a_segment = |problem: String| PredlogError::NotASegment {
        path: path.to_string(),
        problem,
    };
    let mut rows = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(bytes.into())?.build()? {
        let batch = batch?;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                .ok_or_else(|| not_a_segment("not a prediction-log segment".into()))
        };
        let (id, deployment, model, version) = (
            text(schema::REQUEST_ID)?,
            text(schema::DEPLOYMENT)?,
            text(schema::MODEL_NAME)?,
            text(schema::MODEL_VERSION)?,
        );
        let (role, status, inputs, outputs, error) = (
            text(schema::ROLE)?,
            text(schema::STATUS)?,
            text(schema::INPUTS)?,
            text(schema::OUTPUTS)?,
            text(schema::ERROR)?,
        );
        let time = batch
            .column_by_name(schema::TIME)
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .cloned()
            })
            .ok_or_else(|| not_a_segment("no time column".into()))?;
        let latency = batch
            .column_by_name(schema::LATENCY_US)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
            .ok_or_else(|| not_a_segment("no latency_us column".into()))?;
        let optional = |a: &StringArray, r: usize| (!a.is_null(r)).then(|| a.value(r).to_string());
        for r in 0..batch.num_rows() {
            let role = Role::parse(role.value(r))
                .ok_or_else(|| not_a_segment(format!("role {:?}", role.value(r))))?;
            let status = Status::parse(status.value(r))
                .ok_or_else(|| not_a_segment(format!("status {:?}", status.value(r))))?;
            rows.push(Row {
                time_us: time.value(r),
                request_id: id.value(r).to_string(),
                deployment: deployment.value(r).to_string(),
                model_name: model.value(r).to_string(),
                model_version: version.value(r).to_string(),
                role,
                status,
                latency_us: latency.value(r),
                inputs: inputs.value(r).to_string(),
                outputs: optional(&outputs, r),
                error: optional(&error, r),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_log_is_kept_from_clients_of_the_artifact_proxy() {
        assert!(twinloop_artifacts::INTERNAL.contains(&ROOT));
    }

    pub(crate) fn row(deployment: &str, time_us: i64, role: Role, status: Status) -> Row {
        Row {
            time_us,
            request_id: format!("r{time_us}"),
            deployment: deployment.into(),
            model_name: "fraud".into(),
            model_version: "3".into(),
            role,
            status,
            latency_us: 120,
            inputs: r#"{"X":{"datatype":"FP32","shape":[1,1],"data":[1.0]}}"#.into(),
            outputs: (status == Status::Ok)
                .then(|| r#"{"y":{"datatype":"FP32","shape":[1],"data":[0.5]}}"#.into()),
            error: (status == Status::Error).then(|| "boom".into()),
        }
    }

    #[test]
    fn a_segment_reads_back_in_the_documented_schema() {
        let rows = [
            row("fraud", 1, Role::Primary, Status::Ok),
            row("fraud", 2, Role::Shadow, Status::Error),
        ];
        let bytes = Bytes::from(encode(&rows).unwrap());
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(batches[0].schema(), schema());
        assert_eq!(decode(bytes, "s.parquet").unwrap(), rows);
    }

    #[test]
    fn another_parquet_file_is_named_as_not_a_segment() {
        let batch =
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
                .unwrap();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let e = decode(Bytes::from(bytes), "p/x.parquet").unwrap_err();
        assert_eq!(e.to_string(), "p/x.parquet: not a prediction-log segment");
    }

    #[test]
    fn a_segment_name_starts_with_its_first_row_time() {
        let p = path("fraud", 1_700_000_000_000_000, 7);
        assert!(
            p.starts_with("predictions/fraud/2023-11-14/1700000000000000-00000007-"),
            "{p}"
        );
        let name = p.rsplit('/').next().unwrap();
        assert_eq!(first_time(name), Some(1_700_000_000_000_000));
        assert_eq!(first_time("notes.txt"), None);
    }
}
