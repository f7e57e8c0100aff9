//! The built-in trainer and the gate without a store (A15's cases that need no champion): a
//! blessed candidate lets `when:` steps run; a threshold it misses rejects the run (exit 3's
//! status) and skips them; a missing label column fails the gate instead of blessing.

use twinloop_pipelines::state::{RunStatus, StepState};

use crate::support::{Repo, state};

/// A binary label that depends on `x1` (strongly) and `x2` (weakly), with noise: a logistic
/// model scores well above 0.8 AUC on it, but far from 0.999. Deterministic (an LCG).
pub(crate) fn csv(rows: usize, seed: u64, with_label: bool) -> String {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut out = String::from(if with_label {
        "x1,x2,y\n"
    } else {
        "x1,x2,other\n"
    });
    for _ in 0..rows {
        let (x1, x2, noise) = (next() * 4.0 - 2.0, next() * 4.0 - 2.0, next());
        let p = 1.0 / (1.0 + (-(2.0 * x1 + 0.5 * x2)).exp());
        let y = u8::from(noise < p);
        out.push_str(&format!("{x1:.5},{x2:.5},{y}\n"));
    }
    out
}

pub(crate) fn pipeline(threshold: f64) -> String {
    format!(
        "pipeline: gate\nsteps:\n  train:\n    uses: model.train-linear@1\n    with: {{data: train.csv, label: y}}\n  evaluate:\n    uses: model.evaluate@1\n    with:\n      candidate: ${{{{ steps.train.outputs.model }}}}\n      data: holdout.csv\n      label: y\n      metrics:\n        roc_auc: {{threshold: {threshold}}}\n        log_loss: {{threshold: 0.7}}\n  after:\n    run: echo blessed > after.txt\n    when: ${{{{ steps.evaluate.outputs.blessed }}}}\n"
    )
}

#[tokio::test]
async fn a_blessed_candidate_goes_on_and_a_rejected_one_stops_the_run() {
    let repo = Repo::new();
    repo.write("train.csv", &csv(2_000, 1, true));
    repo.write("holdout.csv", &csv(500, 2, true));

    let report = repo.run(&repo.pipeline(&pipeline(0.8))).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(state(&report, "after"), StepState::Succeeded);
    let blessed = &report.step("evaluate").unwrap().outputs["blessed"];
    assert_eq!(blessed.value, Some(serde_json::json!(true)));
    let log =
        std::fs::read_to_string(&report.step("evaluate").unwrap().attempts[0].stdout).unwrap();
    assert!(log.contains("no baseline"), "{log}");
    assert!(log.contains("roc_auc"), "{log}");

    // The same candidate (cached) against a bar it cannot reach.
    std::fs::remove_file(repo.path().join("after.txt")).unwrap();
    let report = repo.run(&repo.pipeline(&pipeline(0.999))).await;
    assert_eq!(state(&report, "train"), StepState::Cached);
    assert_eq!(state(&report, "evaluate"), StepState::Succeeded);
    assert_eq!(state(&report, "after"), StepState::Skipped);
    assert_eq!(report.status, RunStatus::Rejected, "{report:#?}");
    let why = report.rejected.clone().unwrap_or_default();
    assert!(
        why.starts_with("step evaluate: the gate did not bless") && why.contains("roc_auc"),
        "{why}"
    );
    assert!(!repo.path().join("after.txt").exists());
}

#[tokio::test]
async fn a_metric_that_cannot_be_computed_fails_the_gate() {
    let repo = Repo::new();
    repo.write("train.csv", &csv(500, 3, true));
    repo.write("holdout.csv", &csv(100, 4, false));
    let report = repo.run(&repo.pipeline(&pipeline(0.8))).await;
    assert_eq!(state(&report, "evaluate"), StepState::Failed);
    assert_eq!(state(&report, "after"), StepState::Skipped);
    assert_eq!(report.status, RunStatus::Failed);
    let reason = report.step("evaluate").unwrap().reason.clone().unwrap();
    assert!(reason.contains('y'), "the missing label is named: {reason}");
}
