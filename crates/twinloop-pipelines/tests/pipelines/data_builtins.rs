//! The data built-ins run by the engine: `features.training-set@1` from a small feature repo
//! (point-in-time values, the time split, a cache key that follows the sources, the retrieval in
//! lineage), `data.validate@1` (schema, quality, drift against a shifted reference),
//! `data.profile@1` (keyed on its data) and `features.materialize@1` (the online store written
//! and the run recorded, never cached).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use twinloop_artifacts::ArtifactStore;
use twinloop_core::lineage::Direction;
use twinloop_meta::{LineageStore, SqlStore, StoreUri};
use twinloop_pipelines::exec::RunReport;
use twinloop_pipelines::services::Services;
use twinloop_pipelines::state::StepState::{Cached, Failed, Succeeded};

use crate::support::{Repo, state};

const DAY: i64 = 86_400_000_000;
const T0: i64 = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

fn ts(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

fn write_parquet(path: &Path, columns: Vec<(Field, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn read_parquet(path: &Path) -> RecordBatch {
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

fn i64s(batch: &RecordBatch, name: &str) -> Vec<i64> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>();
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| c.value(i)))
        .collect()
}

/// Where a stored output's bytes are.
fn output_path(repo: &Repo, report: &RunReport, step: &str, output: &str) -> PathBuf {
    let digest = &report.step(step).unwrap().outputs[output].digest;
    repo.home()
        .join("cas/sha256")
        .join(&digest[..2])
        .join(digest)
}

// ---- features.training-set@1 ----

const DEFS: &str = "entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, path: data/stats.parquet, timestamp_field: event_timestamp}
feature_views:
  - name: stats_view
    entities: [driver]
    source: stats
    ttl: 30d
    features:
      - {name: rate, dtype: float64}
";

/// Driver 1's rate is 1.0 from day 0 and 2.0 from day 5; driver 2's is 10.0 from day 0. Each
/// value is `base + scale * step`, so a rewrite with another scale changes every value.
fn write_stats(repo: &Repo, scale: f64) {
    write_parquet(
        &repo.path().join("features/data/stats.parquet"),
        vec![
            (
                Field::new("driver_id", DataType::Int64, false),
                Arc::new(Int64Array::from(vec![1, 1, 2])) as ArrayRef,
            ),
            (ts_field("event_timestamp"), ts([T0, T0 + 5 * DAY, T0])),
            (
                Field::new("rate", DataType::Float64, true),
                Arc::new(Float64Array::from(vec![
                    1.0 * scale,
                    2.0 * scale,
                    10.0 * scale,
                ])),
            ),
        ],
    );
}

/// Labels for driver 1 on days 1..=8 and driver 2 on day 9, with a row id (the day) to follow
/// them.
fn write_labels(repo: &Repo, relative: &str, days: &[i64]) {
    write_parquet(
        &repo.path().join(relative),
        vec![
            (
                Field::new("driver_id", DataType::Int64, false),
                Arc::new(Int64Array::from_iter_values(
                    days.iter().map(|d| if *d == 9 { 2 } else { 1 }),
                )) as ArrayRef,
            ),
            (
                ts_field("event_timestamp"),
                ts(days.iter().map(|d| T0 + d * DAY)),
            ),
            (
                Field::new("row", DataType::Int64, false),
                Arc::new(Int64Array::from_iter_values(days.iter().copied())),
            ),
            (
                Field::new("label", DataType::Int64, false),
                Arc::new(Int64Array::from_iter_values(days.iter().map(|d| d % 2))),
            ),
        ],
    );
}

fn feature_repo() -> Repo {
    let repo = Repo::new();
    repo.write("features/twinloop.yaml", "project: test\n");
    repo.write("features/defs.yaml", DEFS);
    write_stats(&repo, 1.0);
    write_labels(&repo, "data/labels.parquet", &(1..=9).collect::<Vec<_>>());
    repo
}

const TRAINING_SET: &str = "pipeline: ts
steps:
  training_set:
    uses: features.training-set@1
    with:
      repo: features
      entities: data/labels.parquet
      features: [stats_view:rate]
      split: {holdout: 3d}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_set_is_point_in_time_split_by_time_and_keyed_on_its_sources() {
    let repo = feature_repo();
    let pipeline = repo.pipeline(TRAINING_SET);
    let first = repo.run(&pipeline).await;
    let step = first.step("training_set").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    // Newest is day 9: days 7, 8 and 9 are within three days of it.
    assert_eq!(
        step.outputs["rows"].value,
        Some(json!({"train": 6, "holdout": 3}))
    );
    let train = read_parquet(&output_path(&repo, &first, "training_set", "train"));
    assert_eq!(i64s(&train, "row"), [1, 2, 3, 4, 5, 6]);
    // Days 1–4 see the day-0 value, days 5 and 6 the day-5 one: never a later value.
    assert_eq!(
        f64s(&train, "rate"),
        [1.0, 1.0, 1.0, 1.0, 2.0, 2.0].map(Some)
    );
    assert_eq!(i64s(&train, "label"), [1, 0, 1, 0, 1, 0]);
    let holdout = read_parquet(&output_path(&repo, &first, "training_set", "holdout"));
    assert_eq!(i64s(&holdout, "row"), [7, 8, 9]);
    assert_eq!(f64s(&holdout, "rate"), [Some(2.0), Some(2.0), Some(10.0)]);
    assert_eq!(holdout.schema(), train.schema());

    let again = repo.run(&pipeline).await;
    assert_eq!(state(&again, "training_set"), Cached);

    // New bytes in the feature source (same entity file, same with:) re-run the join.
    write_stats(&repo, 3.0);
    let changed = repo.run(&pipeline).await;
    assert_eq!(state(&changed, "training_set"), Succeeded);
    let train = read_parquet(&output_path(&repo, &changed, "training_set", "train"));
    assert_eq!(f64s(&train, "rate")[0], Some(3.0));
    assert_eq!(state(&repo.run(&pipeline).await, "training_set"), Cached);

    // So does a changed view definition.
    repo.write("features/defs.yaml", &DEFS.replace("ttl: 30d", "ttl: 2d"));
    let redefined = repo.run(&pipeline).await;
    assert_eq!(state(&redefined, "training_set"), Succeeded);
    let train = read_parquet(&output_path(&repo, &redefined, "training_set", "train"));
    // Day 3 is more than two days after the day-0 value: out of its TTL.
    assert_eq!(f64s(&train, "rate")[..3], [Some(3.0), Some(3.0), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_set_from_a_directory_without_split_and_a_bad_reference() {
    let repo = feature_repo();
    write_labels(&repo, "data/labels/a.parquet", &[1, 2, 3, 4]);
    write_labels(&repo, "data/labels/b.parquet", &[5, 6, 7, 8, 9]);
    let whole = repo.pipeline(
        &TRAINING_SET
            .replace("      split: {holdout: 3d}\n", "")
            .replace("data/labels.parquet", "data/labels/"),
    );
    let report = repo.run(&whole).await;
    let step = report.step("training_set").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    assert_eq!(
        step.outputs["rows"].value,
        Some(json!({"train": 9, "holdout": 0}))
    );
    let train = read_parquet(&output_path(&repo, &report, "training_set", "train"));
    assert_eq!(i64s(&train, "row"), (1..=9).collect::<Vec<_>>());
    assert_eq!(f64s(&train, "rate")[8], Some(10.0));
    let holdout = read_parquet(&output_path(&repo, &report, "training_set", "holdout"));
    assert_eq!(holdout.num_rows(), 0);
    assert!(holdout.schema().column_with_name("rate").is_some());

    let bad = repo.pipeline(&TRAINING_SET.replace("stats_view:rate", "stats_view:speed"));
    let report = repo.run(&bad).await;
    let step = report.step("training_set").unwrap();
    assert_eq!(step.state, Failed);
    let reason = step.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("speed"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_set_is_recorded_in_the_feature_stores_lineage() {
    let db_dir = tempfile::tempdir().unwrap();
    let repo = feature_repo();
    let store = Arc::new(
        SqlStore::open(
            &StoreUri::Sqlite(db_dir.path().join("store.db")),
            "mlflow-artifacts:",
        )
        .await
        .unwrap(),
    );
    // The views are applied to the run's store, as a server's feature store does.
    twinloop_features::store::FeatureStore::with_store(
        &repo.path().join("features"),
        store.clone(),
    )
    .unwrap()
    .apply()
    .await
    .unwrap();
    let artifacts = ArtifactStore::open(db_dir.path().join("artifacts").to_str().unwrap()).unwrap();
    let services = Services {
        store: store.clone(),
        artifacts,
        deployments: None,
        tracking_uri: None,
        webhooks: None,
    };
    let pipeline = repo.pipeline(TRAINING_SET);
    let report = repo
        .run_with(&pipeline, |o| o.services = Some(services))
        .await;
    let step = report.step("training_set").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);

    let view = store
        .resolve_node("feature_view:test/stats_view@v1")
        .await
        .unwrap();
    let graph = store
        .lineage_graph(view.node, Direction::Downstream, 2)
        .await
        .unwrap();
    let retrieval = graph
        .nodes
        .iter()
        .find(|n| n.node_type == "feature_retrieval")
        .expect("a retrieval downstream of the view");
    assert!(retrieval.properties.contains("stats_view:rate"));
    // Logged as the step run's dataset input: tracking's dataset node is the training set, so
    // tracking and lineage name the same node.
    let training_set = graph
        .nodes
        .iter()
        .find(|n| n.node_type == "dataset")
        .unwrap_or_else(|| panic!("no training set downstream of the view: {:#?}", graph.nodes));
    let id = training_set.external_id.clone().unwrap_or_default();
    assert!(id.starts_with("dataset:"), "{id}");
    let source = training_set.uri.clone().unwrap_or_default();
    let uri: serde_json::Value = serde_json::from_str(&source).unwrap();
    let uri = uri["uri"].as_str().unwrap();
    assert_eq!(read_parquet(Path::new(uri)).num_rows(), 9, "{uri}");
}

// ---- data.validate@1 ----

const SCHEMA: &str = "columns:
  amount: {dtype: float64, nullable: false, min: 0}
  country: {dtype: string}
";

/// 300 rows: amounts `offset + i % 100` and countries cycling through `countries`.
fn write_data(repo: &Repo, relative: &str, offset: f64, countries: &[&str]) {
    let amounts = (0..300).map(|i| offset + f64::from(i % 100));
    let names: Vec<&str> = (0..300).map(|i| countries[i % countries.len()]).collect();
    write_parquet(
        &repo.path().join(relative),
        vec![
            (
                Field::new("amount", DataType::Float64, false),
                Arc::new(Float64Array::from_iter_values(amounts)) as ArrayRef,
            ),
            (
                Field::new("country", DataType::Utf8, false),
                Arc::new(StringArray::from(names)),
            ),
        ],
    );
}

fn validate(extra: &str) -> String {
    format!(
        "pipeline: dv
steps:
  validate:
    uses: data.validate@1
    with:
      data: data/current.parquet
      schema: schema.yaml
{extra}"
    )
}

fn data_repo() -> Repo {
    let repo = Repo::new();
    repo.write("schema.yaml", SCHEMA);
    write_data(&repo, "data/current.parquet", 0.0, &["DE", "FR"]);
    write_data(&repo, "data/same.parquet", 0.0, &["DE", "FR"]);
    write_data(&repo, "data/shifted.parquet", 1000.0, &["US", "UK", "IT"]);
    repo
}

#[tokio::test]
async fn clean_data_passes_with_its_report() {
    let repo = data_repo();
    let pipeline = repo.pipeline(&validate("      reference: data/same.parquet\n"));
    let report = repo.run(&pipeline).await;
    let step = report.step("validate").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    assert_eq!(
        step.outputs["drift"].value,
        Some(json!({"share": 0.0, "dataset_drift": false, "columns": 0}))
    );
    let text = std::fs::read_to_string(output_path(&repo, &report, "validate", "report")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["findings"]["rows"], json!(300));
    assert_eq!(json["findings"]["schema"], json!([]));
    assert_eq!(json["findings"]["drift"]["n_columns"], json!(2));
    assert_eq!(json["failed"], json!([]));
}

#[tokio::test]
async fn a_schema_violation_fails_naming_the_column() {
    let repo = data_repo();
    write_data(&repo, "data/current.parquet", -50.0, &["DE", "FR"]);
    let pipeline = repo.pipeline(&validate(""));
    let step = repo.run(&pipeline).await.step("validate").unwrap().clone();
    assert_eq!(step.state, Failed);
    let reason = step.reason.unwrap_or_default();
    assert!(
        reason.contains("column amount has 150 values outside [0, inf]"),
        "{reason}"
    );
}

#[tokio::test]
async fn drift_warns_by_default_and_fails_when_asked() {
    let repo = data_repo();
    let warned = repo.pipeline(&validate("      reference: data/shifted.parquet\n"));
    let report = repo.run(&warned).await;
    let step = report.step("validate").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    let drift = step.outputs["drift"].value.clone().unwrap();
    assert_eq!(drift["dataset_drift"], json!(true));
    assert_eq!(drift["columns"], json!(2));
    let log = std::fs::read_to_string(&step.attempts[0].stdout).unwrap();
    assert!(
        log.contains("warning: dataset drift: 2 of 2 columns"),
        "{log}"
    );

    let failing = repo.pipeline(&validate(
        "      reference: data/shifted.parquet\n      fail_on: [drift]\n",
    ));
    let step = repo.run(&failing).await.step("validate").unwrap().clone();
    assert_eq!(step.state, Failed);
    let reason = step.reason.unwrap_or_default();
    assert!(reason.contains("dataset drift"), "{reason}");

    let lineage = repo.pipeline(&validate("      reference: models:/fraud@champion\n"));
    let step = repo.run(&lineage).await.step("validate").unwrap().clone();
    assert_eq!(step.state, Failed);
    assert!(
        step.reason
            .unwrap_or_default()
            .contains("not supported yet"),
        "a reference through lineage is refused, not misread as a path"
    );
}

// ---- data.profile@1 ----

#[tokio::test]
async fn a_profile_describes_each_column_and_is_keyed_on_the_data() {
    let repo = data_repo();
    let pipeline = repo.pipeline(
        "pipeline: dp
steps:
  profile:
    uses: data.profile@1
    with: {data: data/current.parquet, top: 1}
",
    );
    let report = repo.run(&pipeline).await;
    let step = report.step("profile").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    assert_eq!(
        step.outputs["metrics"].value,
        Some(json!({
            "rows": 300, "columns": 2, "missing_cells": 0, "missing_share": 0.0,
            "constant_columns": 0, "empty_columns": 0,
        }))
    );
    let text = std::fs::read_to_string(output_path(&repo, &report, "profile", "profile")).unwrap();
    let profile: serde_json::Value = serde_json::from_str(&text).unwrap();
    let amount = &profile["column_profiles"][0];
    assert_eq!(amount["name"], json!("amount"));
    assert_eq!(amount["type"], json!("num"));
    assert_eq!(amount["distinct"], json!(100));
    assert_eq!(amount["numeric"]["min"], json!(0.0));
    assert_eq!(amount["numeric"]["max"], json!(99.0));
    let mean = amount["numeric"]["mean"].as_f64().unwrap();
    assert!((mean - 49.5).abs() < 1e-9, "{mean}");
    let country = &profile["column_profiles"][1];
    assert_eq!(country["type"], json!("cat"));
    assert_eq!(
        country["top"],
        json!([{"value": "DE", "count": 150, "share": 0.5}])
    );
    let summary =
        std::fs::read_to_string(output_path(&repo, &report, "profile", "summary")).unwrap();
    assert!(
        summary.starts_with("# Profile of current.parquet\n"),
        "{summary}"
    );
    assert!(
        summary.contains("| country | cat | Utf8 | 300 |"),
        "{summary}"
    );

    assert_eq!(state(&repo.run(&pipeline).await, "profile"), Cached);
    write_data(&repo, "data/current.parquet", 5.0, &["DE", "FR"]);
    let changed = repo.run(&pipeline).await;
    assert_eq!(state(&changed, "profile"), Succeeded);
}

#[tokio::test]
async fn an_upstream_file_is_profiled_and_unknown_columns_are_named() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: dp
steps:
  make:
    run: printf 'x,label\\n1,a\\n2,\\n3,b\\n' > \"$TWINLOOP_OUTPUT_DATA\"
    outputs:
      data: {kind: file}
  profile:
    uses: data.profile@1
    with:
      data: ${{ steps.make.outputs.data }}
      columns: [label]
",
    );
    let report = repo.run(&pipeline).await;
    let step = report.step("profile").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    let metrics = step.outputs["metrics"].value.clone().unwrap();
    assert_eq!(
        (metrics["rows"].clone(), metrics["columns"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(metrics["missing_cells"], json!(1));

    let unknown = repo.pipeline(&repo.read("pipeline.yaml").replace("[label]", "[nope]"));
    let step = repo.run(&unknown).await.step("profile").unwrap().clone();
    assert_eq!(step.state, Failed);
    assert_eq!(
        step.reason.as_deref(),
        Some("with.columns: no column \"nope\" (the data has: x, label)")
    );
}

// ---- features.materialize@1 ----

const MATERIALIZE: &str = "pipeline: fm
steps:
  materialize:
    uses: features.materialize@1
    with:
      repo: features
      start: 2024-01-01T00:00:00Z
      end: 2024-01-31T00:00:00Z
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_writes_the_online_store_and_records_the_run() {
    let repo = feature_repo();
    let features = repo.path().join("features");
    let store = twinloop_features::store::FeatureStore::open(&features)
        .await
        .unwrap();
    store.apply().await.unwrap();

    let pipeline = repo.pipeline(MATERIALIZE);
    let report = repo.run(&pipeline).await;
    let step = report.step("materialize").unwrap();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    assert_eq!(step.outputs["rows"].value, Some(json!({"stats_view": 2})));
    let views = step.outputs["views"].value.clone().unwrap();
    assert_eq!(views["stats_view"]["window_rows"], json!(3));
    assert_eq!(views["stats_view"]["end"], json!("2024-01-31T00:00:00Z"));
    // The same library call as the CLI's: the run is recorded in the repository's registry.
    assert_eq!(
        store.last_materialized_end("stats_view").await.unwrap(),
        Some(T0 + 30 * DAY)
    );
    let view = store.repo.view("stats_view").unwrap();
    let online = store.online_store().await.unwrap();
    let table = twinloop_features::online::table_name("test", view);
    assert_eq!(online.count(&table).await.unwrap(), 2);
    drop(online);

    // Never cached: a rerun materializes again, and writes the same rows (idempotent).
    let again = repo.run(&pipeline).await;
    assert_eq!(state(&again, "materialize"), Succeeded);
    // Incremental: from the last end up to now, where there is nothing newer.
    let incremental = repo.pipeline(
        "pipeline: fm
steps:
  materialize:
    uses: features.materialize@1
    with: {repo: features, views: stats_view, incremental: true}
",
    );
    let step = repo
        .run(&incremental)
        .await
        .step("materialize")
        .unwrap()
        .clone();
    assert_eq!(step.state, Succeeded, "{:?}", step.reason);
    let views = step.outputs["views"].value.clone().unwrap();
    assert_eq!(views["stats_view"]["start"], json!("2024-01-31T00:00:00Z"));
    assert_eq!(views["stats_view"]["window_rows"], json!(0));

    let unknown = repo
        .pipeline(&MATERIALIZE.replace("repo: features", "repo: features\n      views: [nope]"));
    let step = repo
        .run(&unknown)
        .await
        .step("materialize")
        .unwrap()
        .clone();
    assert_eq!(step.state, Failed);
    assert!(
        step.reason
            .unwrap_or_default()
            .contains("unknown feature view \"nope\""),
        "the view is named"
    );
}
