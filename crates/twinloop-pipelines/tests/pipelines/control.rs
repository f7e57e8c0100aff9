//! A10: `when`, `fail_fast` and `finally`; outputs are checked and values reach expressions.

use crate::support::{Repo, state, states};
use twinloop_pipelines::state::{RunStatus, StepState};

#[tokio::test]
async fn a10_when_false_skips_the_step_and_its_downstream() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: w\nparams: {train: false}\nsteps:\n  a:\n    run: 'true'\n    when: ${{ params.train }}\n  b:\n    run: 'true'\n    needs: [a]\n  c:\n    run: 'true'\n",
    );
    let report = repo.run(&pipeline).await;
    assert_eq!(
        states(&report),
        [
            ("a".into(), StepState::Skipped),
            ("b".into(), StepState::Skipped),
            ("c".into(), StepState::Succeeded)
        ]
    );
    assert_eq!(report.status, RunStatus::Succeeded);
    let report = repo
        .run_with(&pipeline, |o| {
            o.params = vec![("train".into(), "true".into())]
        })
        .await;
    assert_eq!(state(&report, "b"), StepState::Succeeded);
}

#[tokio::test]
async fn a10_fail_fast_starts_nothing_new_and_finally_sees_the_failure() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        r#"pipeline: f
policy: {fail_fast: true}
steps:
  bad:
    run: exit 1
  slow:
    run: sleep 0.5
  after_slow:
    run: touch after_slow
    needs: [slow]
finally:
  report:
    run: echo ${{ run.status }} ${{ steps.bad.status }} > status
"#,
    );
    let report = repo.run_with(&pipeline, |o| o.max_parallel = 2).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(state(&report, "bad"), StepState::Failed);
    assert_eq!(
        state(&report, "slow"),
        StepState::Succeeded,
        "running steps finish"
    );
    let after = report.step("after_slow").unwrap();
    assert_eq!(after.state, StepState::Skipped);
    assert_eq!(
        after.reason.as_deref(),
        Some("not started: step bad FAILED (fail_fast)")
    );
    assert!(!repo.path().join("after_slow").exists());
    assert_eq!(repo.read("status"), "FAILED FAILED\n");
}

#[tokio::test]
async fn without_fail_fast_independent_steps_go_on() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: f\npolicy: {fail_fast: false}\nsteps:\n  bad:\n    run: exit 1\n    continue_on_error: true\n  slow:\n    run: sleep 0.2\n  after_slow:\n    run: 'true'\n    needs: [slow]\n  after_bad:\n    run: 'true'\n    needs: [bad]\n",
    );
    let report = repo.run_with(&pipeline, |o| o.max_parallel = 2).await;
    assert_eq!(state(&report, "after_slow"), StepState::Succeeded);
    assert_eq!(state(&report, "after_bad"), StepState::Skipped);
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "continue_on_error keeps the run green"
    );
}

#[tokio::test]
async fn outputs_are_checked_and_values_reach_expressions() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        r#"pipeline: o
policy: {fail_fast: false}
steps:
  score:
    run: |
      echo '{"output": "auc", "value": 0.91}' >> "$TWINLOOP_MESSAGES"
      echo '{"output": "metrics", "value": {"auc": 0.91, "n": 3}}' >> "$TWINLOOP_MESSAGES"
      mkdir -p "$TWINLOOP_OUTPUT_REPORT/sub" && echo hi > "$TWINLOOP_OUTPUT_REPORT/sub/x"
      touch "$TWINLOOP_OUTPUTS/stray"
    outputs:
      auc: {kind: value}
      metrics: {kind: metrics}
      report: {kind: dir}
  publish:
    run: cat "$TWINLOOP_INPUT_REPORT/sub/x" > published && echo ${{ steps.score.outputs.auc }} >> published
    when: ${{ steps.score.outputs.auc >= 0.9 }}
    inputs:
      report: ${{ steps.score.outputs.report }}
  missing:
    run: 'true'
    outputs:
      model: {kind: file}
"#,
    );
    let report = repo.run(&pipeline).await;
    let score = report.step("score").unwrap();
    assert_eq!(score.state, StepState::Succeeded);
    assert_eq!(score.dropped, ["stray"]);
    assert_eq!(score.outputs["auc"].value, Some(serde_json::json!(0.91)));
    assert_eq!(repo.read("published"), "hi\n0.91\n", "{report:#?}");
    let missing = report.step("missing").unwrap();
    assert_eq!(missing.state, StepState::Failed);
    assert!(
        missing
            .reason
            .as_deref()
            .unwrap()
            .contains("output model (a file) was not written")
    );
}

#[tokio::test]
async fn a_step_reads_what_started_the_run_from_its_context_file() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: p\nsteps:\n  a:\n    run: cp \"$TWINLOOP_CONTEXT\" context.json\n    when: ${{ trigger.kind == 'monitor' }}\n",
    );
    let trigger = twinloop_pipelines::state::TriggerContext {
        kind: "monitor".into(),
        payload: serde_json::json!({"monitor_event_id": 7, "alert": {"rule": "auc_drop"}}),
    };
    let report = repo
        .run_with(&pipeline, |o| o.trigger = Some(trigger.clone()))
        .await;
    assert_eq!(state(&report, "a"), StepState::Succeeded);
    let context: serde_json::Value = serde_json::from_str(&repo.read("context.json")).unwrap();
    assert_eq!(context["trigger"]["kind"], "monitor");
    assert_eq!(context["trigger"]["payload"]["alert"]["rule"], "auc_drop");
}
