//! A15's last case: a gate that rejected is overridden by `bless`, who, when and why recorded in
//! the run's record and in lineage; `--resume` then takes the gate as blessed and the step its
//! `blessed` output guards runs, so the run succeeds. What is not a rejecting gate is refused.

use std::sync::Arc;

use twinloop_artifacts::ArtifactStore;
use twinloop_core::lineage::Direction;
use twinloop_meta::{SqlStore, StoreHandle, StoreUri};
use twinloop_pipelines::bless::{BlessError, Request, bless, overrides};
use twinloop_pipelines::services::Services;
use twinloop_pipelines::state::{RunStatus, StepState};

use crate::gate::{csv, pipeline};
use crate::support::{Repo, state};

fn request<'a>(run_id: &'a str, step: &'a str) -> Request<'a> {
    Request {
        run_id,
        step,
        reason: "the holdout week was a holiday",
        who: "alice",
    }
}

#[tokio::test]
async fn a15_an_overridden_gate_lets_the_resumed_run_register() {
    let repo = Repo::new();
    repo.write("train.csv", &csv(2_000, 1, true));
    repo.write("holdout.csv", &csv(500, 2, true));
    let home = repo.home();

    // A gate that blesses has nothing to override.
    let blessed = repo.run(&repo.pipeline(&pipeline(0.8))).await;
    assert_eq!(blessed.status, RunStatus::Succeeded, "{blessed:#?}");
    let refused = bless(&home, &request(&blessed.run_id, "evaluate"), None).await;
    assert!(
        matches!(refused, Err(BlessError::AlreadyBlessed { .. })),
        "{refused:?}"
    );

    let uri = StoreUri::Sqlite(repo.path().join("store.db"));
    let store: StoreHandle = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
    let services = Services {
        store: store.clone(),
        artifacts: ArtifactStore::open(repo.path().join("artifacts").to_str().unwrap()).unwrap(),
        deployments: None,
        tracking_uri: None,
        webhooks: None,
    };
    let gate = repo.pipeline(&pipeline(0.999));
    let rejected = repo
        .run_with(&gate, |o| o.services = Some(services.clone()))
        .await;
    assert_eq!(rejected.status, RunStatus::Rejected, "{rejected:#?}");
    assert_eq!(state(&rejected, "after"), StepState::Skipped);
    let run = rejected.run_id.as_str();

    let refusal = |result: Result<_, BlessError>| result.err().map(|e| e.to_string());
    let unknown = refusal(bless(&home, &request("no-such-run", "evaluate"), None).await);
    assert_eq!(
        unknown.as_deref(),
        Some("no run \"no-such-run\" in the cache index")
    );
    let trainer = refusal(bless(&home, &request(run, "train"), None).await).unwrap();
    assert!(
        trainer.contains("model.train-linear@1, not a gate"),
        "{trainer}"
    );
    let missing = refusal(bless(&home, &request(run, "deploy"), None).await).unwrap();
    assert!(missing.contains("has no step \"deploy\""), "{missing}");

    let done = bless(&home, &request(run, "evaluate"), Some(&store))
        .await
        .unwrap();
    assert_eq!(done.note, None, "the run is in the store's lineage");
    assert_eq!(done.record.who, "alice");
    assert_eq!(
        overrides(&home, run).unwrap(),
        std::slice::from_ref(&done.record)
    );
    let again = refusal(bless(&home, &request(run, "evaluate"), None).await).unwrap();
    assert!(
        again.contains("already overridden by alice: the holdout week was a holiday"),
        "{again}"
    );

    // In lineage: a gate_override execution that read the gate's blessing.
    let node = store
        .resolve_node(&format!("gate_override:{run}/evaluate"))
        .await
        .unwrap();
    assert_eq!(Some(node.node.to_string()), done.lineage);
    let graph = store
        .lineage_graph(node.node, Direction::Upstream, 1)
        .await
        .unwrap();
    let blessing = &rejected.step("evaluate").unwrap().outputs["blessing"].digest;
    assert!(
        graph
            .nodes
            .iter()
            .any(|n| n.external_id.as_deref() == Some(&format!("cas:{blessing}"))),
        "{graph:#?}"
    );

    // Resumed: the gate is reused as blessed and the step it guarded runs.
    let resumed = repo
        .run_with(&gate, |o| {
            o.resume = Some(run.to_owned());
            o.services = Some(services.clone());
        })
        .await;
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed:#?}");
    assert_eq!(state(&resumed, "train"), StepState::Cached);
    let evaluate = resumed.step("evaluate").unwrap();
    assert_eq!(evaluate.state, StepState::Cached);
    assert_eq!(
        evaluate.reason.as_deref(),
        Some("overridden by alice: the holdout week was a holiday")
    );
    assert_eq!(
        evaluate.outputs["blessed"].value,
        Some(serde_json::json!(true))
    );
    let reasons = evaluate.outputs["reasons"].value.clone().unwrap();
    assert_eq!(
        reasons.as_array().and_then(|r| r.last()),
        Some(&serde_json::json!(
            "overridden by alice: the holdout week was a holiday"
        ))
    );
    assert_eq!(state(&resumed, "after"), StepState::Succeeded);
    assert_eq!(repo.read("after.txt"), "blessed\n");
}
