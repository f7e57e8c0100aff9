//! A18 through the real binary: a `data:` trigger of `twinloop server` on a watched directory.
//! A Parquet file written there starts exactly one run once it has settled, and the run reads
//! the snapshot that fired it (`trigger.payload.snapshot`, a copy under the pipeline home); the
//! same bytes written again start nothing; a file written in three chunks inside `settle` starts
//! one run, which reads the whole file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use serde_json::Value;

use crate::support::TestServer;
use crate::support::pipelines::{ok, pipeline, runs, wait_for};

/// Long enough that the chunks below (written 200 ms apart) always land inside it.
const SETTLE: Duration = Duration::from_secs(2);

/// The step reads the snapshot as a declared input (so its content digest is in the step's
/// key and lineage), copies it, and says where it read it from.
const PIPELINE: &str = r#"pipeline: ingest
triggers:
  - data: {path: incoming, poll: 100ms, settle: 2s}
steps:
  read:
    inputs:
      data: ${{ trigger.payload.snapshot }}
    run: mkdir -p seen && cp -R "$TWINLOOP_INPUT_DATA" "seen/${{ run.id }}" && printf %s "$TWINLOOP_INPUT_DATA" > "seen/${{ run.id }}.from"
"#;

/// A small Parquet file of `rows` rows.
fn parquet(rows: i64) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|i| i as f64 * 1.5),
            )),
        ],
    )
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// The runs once `count` exist and all have ended.
fn ended_runs(server: &TestServer, repo: &Path, count: usize) -> Vec<Value> {
    wait_for(
        &format!("{count} ended run(s)"),
        Duration::from_secs(30),
        || {
            let found = runs(server, repo, "ingest");
            let ended = found
                .iter()
                .all(|r| r["state"] != "QUEUED" && r["state"] != "RUNNING");
            (found.len() == count && ended).then_some(found)
        },
    )
}

/// Long enough for a change to have settled and fired, were there one: a bounded look for
/// something that must not happen.
fn past_settle() {
    std::thread::sleep(SETTLE * 2 + Duration::from_millis(500));
}

/// What the run's step copied, and where it says it read it.
fn seen(repo: &Path, run: &Value) -> (std::path::PathBuf, String) {
    let id = run["id"].as_str().unwrap();
    let from = std::fs::read_to_string(repo.join(format!("seen/{id}.from"))).unwrap();
    (repo.join("seen").join(id), from)
}

/// The content digests of the inputs the run's `read` step was keyed on.
fn input_digests(repo: &Path, run: &Value) -> Vec<String> {
    let text = std::fs::read_to_string(repo.join(".twinloop/cache/executions.jsonl")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|e| e["run_id"] == run["id"] && e["step"] == "read")
        .flat_map(|e| {
            e["doc"]["inputs"]
                .as_object()
                .unwrap()
                .values()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn fingerprint_of(dir: &Path) -> String {
    twinloop_pipelines::cache::digest::path_digest(dir).unwrap()
}

#[test]
fn a_data_trigger_fires_once_per_settled_change_with_the_snapshot_as_input() {
    let root = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let incoming = repo.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let file = repo.path().join("ingest.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    let server = TestServer::start_pipelines(root.path(), repo.path());
    let applied = ok(&pipeline(
        &server,
        repo.path(),
        &["apply", file.to_str().unwrap()],
    ));
    assert!(
        applied.contains("+ trigger data incoming poll=100ms settle=2s"),
        "{applied}"
    );

    // One Parquet file: one run after settle, reading the snapshot, not the watched directory.
    let first = parquet(100);
    std::fs::write(incoming.join("batch.parquet"), &first).unwrap();
    let fired = ended_runs(&server, repo.path(), 1);
    let run = &fired[0];
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(run["trigger"], "data");
    let cause = &run["cause"];
    assert_eq!(cause["files"], serde_json::json!(["batch.parquet"]));
    assert_eq!(
        cause["changes"]["added"],
        serde_json::json!(["batch.parquet"])
    );
    let snapshot = cause["snapshot"].as_str().unwrap();
    let fingerprint = cause["fingerprint"].as_str().unwrap();
    assert!(
        Path::new(snapshot)
            == repo
                .path()
                .join(".twinloop/snapshots")
                .join(fingerprint)
                .as_path(),
        "the snapshot is kept under the pipeline home: {snapshot}"
    );
    let (copy, from) = seen(repo.path(), run);
    assert_eq!(
        Path::new(&from).canonicalize().unwrap(),
        Path::new(snapshot).canonicalize().unwrap(),
        "the step was handed the snapshot"
    );
    assert_eq!(
        input_digests(repo.path(), run),
        vec![fingerprint_of(Path::new(snapshot))],
        "the step's key covers the snapshot's content"
    );
    assert_eq!(std::fs::read(copy.join("batch.parquet")).unwrap(), first);
    assert_eq!(
        std::fs::read(Path::new(snapshot).join("batch.parquet")).unwrap(),
        first
    );

    // The same bytes written again: the content did not change, so nothing fires.
    std::fs::write(incoming.join("batch.parquet"), &first).unwrap();
    past_settle();
    assert_eq!(runs(&server, repo.path(), "ingest").len(), 1);

    // A new file written in three chunks, each inside settle of the last: one run, which reads
    // the whole file (a Parquet file is only valid once its footer is written).
    let second = parquet(5_000);
    let third = second.len() / 3;
    let mut out = std::fs::File::create(incoming.join("batch2.parquet")).unwrap();
    for chunk in [
        &second[..third],
        &second[third..2 * third],
        &second[2 * third..],
    ] {
        out.write_all(chunk).unwrap();
        out.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(out);
    let fired = ended_runs(&server, repo.path(), 2);
    let run = &fired[0];
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(
        run["cause"]["changes"],
        serde_json::json!({"added": ["batch2.parquet"], "changed": [], "removed": []})
    );
    let (copy, from) = seen(repo.path(), run);
    let snapshot = run["cause"]["snapshot"].as_str().unwrap();
    assert_eq!(
        Path::new(&from).canonicalize().unwrap(),
        Path::new(snapshot).canonicalize().unwrap()
    );
    assert_eq!(std::fs::read(copy.join("batch2.parquet")).unwrap(), second);
    assert_eq!(std::fs::read(copy.join("batch.parquet")).unwrap(), first);
    past_settle();
    assert_eq!(
        runs(&server, repo.path(), "ingest").len(),
        2,
        "the chunks made one run"
    );
}
