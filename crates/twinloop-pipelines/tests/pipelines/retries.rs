//! A8: a flaky step is retried with exponential backoff; every attempt is reported.

use crate::support::{Repo, state};
use twinloop_pipelines::state::StepState;

#[tokio::test]
async fn a8_fails_twice_then_succeeds() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        r#"pipeline: r
steps:
  flaky:
    run: n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries; [ $n -ge 3 ]
    retries: {max: 2, backoff: 200ms, factor: 2}
"#,
    );
    let report = repo.run(&pipeline).await;
    assert_eq!(state(&report, "flaky"), StepState::Succeeded);
    let attempts = &report.step("flaky").unwrap().attempts;
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.state, a.exit_code))
        .collect();
    assert_eq!(
        summary,
        [
            (1, StepState::Failed, Some(1)),
            (2, StepState::Failed, Some(1)),
            (3, StepState::Succeeded, Some(0)),
        ]
    );
    assert!(attempts[1].started_ms - attempts[0].ended_ms >= 200);
    assert!(attempts[2].started_ms - attempts[1].ended_ms >= 400);
    assert!(
        attempts
            .iter()
            .all(|a| a.stdout.is_file() && a.stderr.is_file()),
        "one log per attempt"
    );
}

#[tokio::test]
async fn retries_run_out() {
    let repo = Repo::new();
    let pipeline = repo.pipeline("pipeline: r\nsteps:\n  bad:\n    run: echo oops >&2; exit 3\n    retries: {max: 1, backoff: 10ms}\n");
    let report = repo.run(&pipeline).await;
    let step = report.step("bad").unwrap();
    assert_eq!((step.state, step.attempts.len()), (StepState::Failed, 2));
    assert_eq!(step.reason.as_deref(), Some("exited with 3"));
    assert_eq!(
        std::fs::read_to_string(&step.attempts[1].stderr).unwrap(),
        "oops\n"
    );
}
