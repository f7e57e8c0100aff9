//! A13/A14 at the library level: a run recorded in a real store. Each step attempt is an MLflow
//! run nested under the pipeline run's; a version registered from the trained model belongs to
//! the training step's run, and lineage walks from it back to the training file's digest; a
//! cached step is an execution that points at the run it reused.

use std::sync::Arc;

use serde_json::Value;
use twinloop_artifacts::ArtifactStore;
use twinloop_core::lineage::Direction;
use twinloop_meta::{RunQuery, SqlStore, StoreHandle, StoreUri};
use twinloop_pipelines::cache::digest::file_digest;
use twinloop_pipelines::services::Services;
use twinloop_pipelines::state::{RunStatus, StepState};

use crate::support::{Repo, state};

const PIPELINE: &str = "pipeline: rec\nsteps:\n  train:\n    uses: model.train-linear@1\n    with: {data: train.csv, label: y}\n  register:\n    uses: model.register@1\n    with: {name: m, model: '${{ steps.train.outputs.model }}'}\n";

fn rows() -> String {
    let mut out = String::from("x1,x2,y\n");
    for i in 0..200 {
        let x1 = f64::from(i % 17) / 17.0;
        let x2 = f64::from(i % 5) / 5.0;
        let y = u8::from(x1 + 0.3 * x2 > 0.6);
        out.push_str(&format!("{x1},{x2},{y}\n"));
    }
    out
}

/// A SQLite store and an artifact directory under `dir`, as a run records into them.
async fn recorded_in(dir: &std::path::Path) -> (StoreHandle, Services) {
    let uri = StoreUri::Sqlite(dir.join("store.db"));
    let store: StoreHandle = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
    let artifacts = ArtifactStore::open(dir.join("artifacts").to_str().unwrap()).unwrap();
    let services = Services {
        store: store.clone(),
        artifacts,
        deployments: None,
        tracking_uri: None,
        webhooks: None,
    };
    (store, services)
}

#[tokio::test]
async fn runs_are_mlflow_runs_and_lineage_reaches_the_training_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, services) = recorded_in(dir.path()).await;
    let repo = Repo::new();
    repo.write("train.csv", &rows());
    let pipeline = repo.pipeline(PIPELINE);
    let first = repo
        .run_with(&pipeline, |o| o.services = Some(services.clone()))
        .await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    let second = repo
        .run_with(&pipeline, |o| o.services = Some(services.clone()))
        .await;
    assert_eq!(state(&second, "train"), StepState::Cached);

    // Tracking: the experiment is the pipeline's; step runs nest under their pipeline run.
    let experiment = store.get_experiment_by_name("rec").await.unwrap();
    let runs = store
        .search_runs(&RunQuery {
            experiment_ids: vec![experiment.experiment_id],
            filter: None,
            order_by: Vec::new(),
            view_type: twinloop_core::tracking::ViewType::ActiveOnly,
            max_results: 100,
            page_token: None,
        })
        .await
        .unwrap()
        .items;
    let tag = |run: &twinloop_core::tracking::Run, key: &str| {
        run.data
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.clone())
    };
    let parent = runs
        .iter()
        .find(|r| {
            tag(r, "twinloop.pipeline_run").as_deref() == Some(first.run_id.as_str())
                && tag(r, "twinloop.step").is_none()
        })
        .expect("the first run's parent run");
    let train = runs
        .iter()
        .find(|r| {
            tag(r, "twinloop.step").as_deref() == Some("train")
                && tag(r, "twinloop.pipeline_run").as_deref() == Some(first.run_id.as_str())
        })
        .expect("the train step's run");
    assert_eq!(
        tag(train, "mlflow.parentRunId").as_deref(),
        Some(parent.info.run_id.as_str())
    );
    assert!(
        train.data.metrics.iter().any(|m| m.key == "accuracy"),
        "the trainer's metrics output is the step run's metrics"
    );

    // The version belongs to the training run; lineage reaches the training file's bytes.
    let version = store.get_model_version("m", "1").await.unwrap();
    assert_eq!(version.run_id, train.info.run_id);
    let start = store.resolve_node("model_version:m/1").await.unwrap();
    let graph = store
        .lineage_graph(start.node, Direction::Upstream, 6)
        .await
        .unwrap();
    let digest = file_digest(&repo.path().join("train.csv")).unwrap();
    assert!(
        graph
            .nodes
            .iter()
            .any(|n| n.external_id.as_deref() == Some(&format!("cas:{digest}"))),
        "upstream of the version: {:#?}",
        graph.nodes
    );

    // The cached step of the second run points at the first run's.
    let cached = store
        .resolve_node(&format!("pipeline_step:{}/train", second.run_id))
        .await
        .unwrap();
    let properties: Value = serde_json::from_str(&cached.properties).unwrap();
    assert_eq!(properties["state"], "CACHED");
    assert_eq!(
        properties["cached_from"],
        format!("pipeline_step:{}/train", first.run_id)
    );
}

/// A step that writes the bytes it read (a copy) has its own output node: the content's node
/// is its first producer's, and an output edge to it would close a cycle.
#[tokio::test]
async fn a_step_that_copies_its_input_records_its_output_without_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let (store, services) = recorded_in(dir.path()).await;
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: copy\nsteps:\n  first:\n    run: echo data > \"$TWINLOOP_OUTPUT_DATA\"\n    outputs: {data: {kind: file}}\n  second:\n    inputs: {data: '${{ steps.first.outputs.data }}'}\n    run: cp \"$TWINLOOP_INPUT_DATA\" \"$TWINLOOP_OUTPUT_COPY\"\n    outputs: {copy: {kind: file}}\n",
    );
    let run = repo
        .run_with(&pipeline, |o| o.services = Some(services.clone()))
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");

    let experiment = store.get_experiment_by_name("copy").await.unwrap();
    let runs = store
        .search_runs(&RunQuery {
            experiment_ids: vec![experiment.experiment_id],
            filter: Some("tags.`twinloop.step` = 'second'".into()),
            order_by: Vec::new(),
            view_type: twinloop_core::tracking::ViewType::ActiveOnly,
            max_results: 10,
            page_token: None,
        })
        .await
        .unwrap()
        .items;
    let second = store
        .resolve_node(&format!("run:{}", runs[0].info.run_id))
        .await
        .unwrap();
    let written = store
        .lineage_graph(second.node, Direction::Downstream, 1)
        .await
        .unwrap();
    let copy = written
        .nodes
        .iter()
        .find(|n| n.name == "second.copy")
        .expect("the copy's output node");
    let read = store
        .lineage_graph(second.node, Direction::Upstream, 1)
        .await
        .unwrap();
    let data = read
        .nodes
        .iter()
        .find(|n| n.uri == copy.uri && n.node != second.node)
        .expect("the input's content node, the same bytes");
    assert_ne!(copy.node, data.node, "but not the same node");
    assert_eq!(
        data.name, "first.data",
        "the content's node is its first producer's"
    );
}
