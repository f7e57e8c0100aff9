//! Test helpers: feature repositories in temporary directories, Parquet files written from
//! rows, training sets read back, and a throwaway Redis (one server or a cluster).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use twinloop_features::repo::FeatureRepo;

pub mod redis_cluster;

pub const CONFIG: &str = "project: test\n";

/// Writes `twinloop.yaml` (with `config` appended) and `defs.yaml`, and loads the repository.
pub fn repo(dir: &Path, config: &str, defs: &str) -> FeatureRepo {
    std::fs::write(dir.join("twinloop.yaml"), format!("{CONFIG}{config}")).unwrap();
    std::fs::write(dir.join("defs.yaml"), defs).unwrap();
    FeatureRepo::load(dir).unwrap()
}

/// One feature row: key, event time (µs), created time (µs), value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureRow {
    pub key: i64,
    pub ts: i64,
    pub created: i64,
    pub value: f64,
}

pub fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

/// Writes feature rows as Parquet: `driver_id, event_timestamp, created, value`.
pub fn write_features(path: &Path, rows: &[FeatureRow]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        ts_field("event_timestamp"),
        ts_field("created"),
        Field::new("value", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.key))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.ts))
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.created))
                .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
    ];
    write_batch(path, RecordBatch::try_new(schema, columns).unwrap());
}

pub fn write_batch(path: &Path, batch: RecordBatch) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Writes entity rows as Parquet: `driver_id, event_timestamp, row_id`.
pub fn write_entities(path: &Path, rows: &[(Option<i64>, i64)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        ts_field("event_timestamp"),
        Field::new("row_id", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1))
                .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(0..rows.len() as i64)),
    ];
    write_batch(path, RecordBatch::try_new(schema, columns).unwrap());
}

pub fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

pub fn f64_column(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let c = arrow::compute::cast(c, &DataType::Float64).unwrap();
    let c = c.as_primitive::<Float64Type>();
    (0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i)))
        .collect()
}

pub fn i64_column(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let c = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let c = c.as_primitive::<Int64Type>();
    (0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i)))
        .collect()
}

pub fn string_column(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// A `redis-server` on a free port for the test's lifetime; `None` when the binary is missing
/// (then Redis tests are skipped, unless TWINLOOP_REQUIRE_ALL_BACKENDS=1 makes that a failure).
pub struct Redis {
    child: std::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok();
        if !found {
            assert!(
                std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref() != Ok("1"),
                "redis-server is not installed but TWINLOOP_REQUIRE_ALL_BACKENDS=1"
            );
            eprintln!("redis-server not found: skipping the Redis online store");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis {
                    child,
                    url: format!("redis://127.0.0.1:{port}/0"),
                    _dir: dir,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
