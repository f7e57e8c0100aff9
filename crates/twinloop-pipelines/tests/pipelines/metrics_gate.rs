//! `model.gate@1` run by the engine: a `run:` step's metrics judged against another step's, a
//! rejection that ends the run REJECTED and is overridden by `pipeline bless` like
//! `model.evaluate@1`'s, and a baseline read from the tracking run of a registered version.

use std::sync::Arc;

use serde_json::json;
use twinloop_artifacts::ArtifactStore;
use twinloop_core::registry::NewModelVersion;
use twinloop_core::tracking::{Metric, NewRun};
use twinloop_meta::{SqlStore, StoreHandle, StoreUri};
use twinloop_pipelines::bless::{Request, bless};
use twinloop_pipelines::services::Services;
use twinloop_pipelines::state::{RunStatus, StepState};

use crate::support::{Repo, state};

/// A "trainer" reporting `val_auc` (a param) and a "champion" step reporting 0.85, the gate
/// asking for 0.8 and at least +0.01 over the champion, and a step only a blessing runs.
const PIPELINE: &str = r#"pipeline: custom
params:
  auc: 0.9
steps:
  train:
    run: |
      echo '{"output": "metrics", "value": {"val_auc": ${{ params.auc }}, "latency_ms": 12}}' >> "$TWINLOOP_MESSAGES"
    outputs:
      metrics: {kind: metrics}
  champion:
    run: |
      echo '{"output": "metrics", "value": {"val_auc": 0.85}}' >> "$TWINLOOP_MESSAGES"
    outputs:
      metrics: {kind: metrics}
  gate:
    uses: model.gate@1
    with:
      candidate: ${{ steps.train.outputs.metrics }}
      baseline: ${{ steps.champion.outputs.metrics }}
      metrics:
        val_auc: {threshold: 0.8, min_absolute_change: 0.01, greater_is_better: true}
        latency_ms: {threshold: 50, greater_is_better: false}
  after:
    run: echo blessed > after.txt
    when: ${{ steps.gate.outputs.blessed }}
"#;

fn blessing(repo: &Repo, report: &twinloop_pipelines::exec::RunReport) -> serde_json::Value {
    let digest = &report.step("gate").unwrap().outputs["blessing"].digest;
    let path = repo
        .home()
        .join("cas/sha256")
        .join(&digest[..2])
        .join(digest);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn a_run_steps_metrics_are_gated_rejected_and_overridden() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(PIPELINE);

    let blessed = repo.run(&pipeline).await;
    assert_eq!(blessed.status, RunStatus::Succeeded, "{blessed:#?}");
    assert_eq!(state(&blessed, "after"), StepState::Succeeded);
    let gate = blessed.step("gate").unwrap();
    assert_eq!(gate.outputs["blessed"].value, Some(json!(true)));
    assert_eq!(
        gate.outputs["reasons"].value,
        Some(json!([
            "latency_ms 12.0000 ≤ 50 ✓",
            "val_auc 0.9000 ≥ 0.8 ✓",
            "val_auc Δ +0.0500 ≥ +0.01 ✓"
        ]))
    );
    let written = blessing(&repo, &blessed);
    assert_eq!(written["baseline"], json!({"val_auc": 0.85}));
    assert_eq!(written["no_baseline"], json!(false));

    // Better than the bar, but not by enough over the champion: the run is rejected.
    std::fs::remove_file(repo.path().join("after.txt")).unwrap();
    let rejected = repo
        .run_with(&pipeline, |o| {
            o.params.push(("auc".into(), "0.855".into()));
        })
        .await;
    assert_eq!(rejected.status, RunStatus::Rejected, "{rejected:#?}");
    assert_eq!(state(&rejected, "gate"), StepState::Succeeded);
    assert_eq!(state(&rejected, "after"), StepState::Skipped);
    let why = rejected.rejected.clone().unwrap_or_default();
    assert!(
        why.starts_with("step gate: the gate did not bless") && why.contains("val_auc Δ +0.0050"),
        "{why}"
    );
    assert!(!repo.path().join("after.txt").exists());

    // A person overrides it, and the resumed run goes on past the gate.
    let run = rejected.run_id.as_str();
    let request = Request {
        run_id: run,
        step: "gate",
        reason: "the champion's number was from another split",
        who: "bob",
    };
    bless(&repo.home(), &request, None).await.unwrap();
    let resumed = repo
        .run_with(&pipeline, |o| {
            o.params.push(("auc".into(), "0.855".into()));
            o.resume = Some(run.to_owned());
        })
        .await;
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed:#?}");
    assert_eq!(state(&resumed, "gate"), StepState::Cached);
    assert_eq!(state(&resumed, "after"), StepState::Succeeded);
}

#[tokio::test]
async fn a_metric_the_candidate_did_not_report_fails_the_gate() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(&PIPELINE.replace("latency_ms: {threshold", "p99_ms: {threshold"));
    let report = repo.run(&pipeline).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:#?}");
    assert_eq!(state(&report, "gate"), StepState::Failed);
    let reason = report
        .step("gate")
        .unwrap()
        .reason
        .clone()
        .unwrap_or_default();
    assert_eq!(
        reason,
        "candidate: no metric `p99_ms` among the reported ones (it has: latency_ms, val_auc)"
    );
}

/// The gate against `models:/custom@champion`, read from the version's tracking run.
const REGISTRY: &str = r#"pipeline: custom
steps:
  train:
    run: |
      echo '{"output": "metrics", "value": {"val_auc": 0.9}}' >> "$TWINLOOP_MESSAGES"
    outputs:
      metrics: {kind: metrics}
  gate:
    uses: model.gate@1
    with:
      candidate: ${{ steps.train.outputs.metrics }}
      baseline: models:/custom@champion
      on_no_baseline: reject
      metrics:
        val_auc: {min_relative_change: 0.05, greater_is_better: true}
"#;

#[tokio::test]
async fn a_registered_versions_run_is_the_baseline() {
    let repo = Repo::new();
    let uri = StoreUri::Sqlite(repo.path().join("store.db"));
    let store: StoreHandle = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
    let services = Services {
        store: store.clone(),
        artifacts: ArtifactStore::open(repo.path().join("artifacts").to_str().unwrap()).unwrap(),
        deployments: None,
        tracking_uri: None,
        webhooks: None,
    };
    let pipeline = repo.pipeline(REGISTRY);

    // No champion yet, and on_no_baseline: reject.
    let first = repo
        .run_with(&pipeline, |o| o.services = Some(services.clone()))
        .await;
    assert_eq!(first.status, RunStatus::Rejected, "{first:#?}");
    assert_eq!(
        first.step("gate").unwrap().outputs["baseline_version"].value,
        Some(serde_json::Value::Null)
    );

    // The champion's training run logged val_auc 0.8: +12.5% clears the 5% required.
    let experiment = store
        .create_experiment("champions", None, &[])
        .await
        .unwrap();
    let run = store
        .create_run(NewRun {
            experiment_id: experiment,
            ..NewRun::default()
        })
        .await
        .unwrap();
    let run_id = run.info.run_id.clone();
    let auc = Metric {
        key: "val_auc".into(),
        value: 0.8,
        timestamp: 1,
        step: 0,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    };
    store.log_batch(&run_id, &[auc], &[], &[]).await.unwrap();
    store
        .create_registered_model("custom", None, &[], "test")
        .await
        .unwrap();
    let version = store
        .create_model_version(
            NewModelVersion {
                name: "custom".into(),
                source: format!("runs:/{run_id}/model"),
                run_id: Some(run_id),
                ..NewModelVersion::default()
            },
            "test",
        )
        .await
        .unwrap();
    store
        .set_alias("custom", "champion", &version.version.to_string(), "test")
        .await
        .unwrap();

    let second = repo
        .run_with(&pipeline, |o| o.services = Some(services.clone()))
        .await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:#?}");
    let gate = second.step("gate").unwrap();
    assert_eq!(gate.outputs["baseline_version"].value, Some(json!("1")));
    assert_eq!(
        gate.outputs["reasons"].value,
        Some(json!(["val_auc Δ +12.50% ≥ +5% ✓"]))
    );
    assert_eq!(blessing(&repo, &second)["baseline_version"], json!("1"));
}
