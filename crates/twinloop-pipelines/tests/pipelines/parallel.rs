//! A2: independent steps share the slots; dependent ones wait for their upstream.

use crate::support::{Repo, state};
use twinloop_pipelines::exec::RunReport;
use twinloop_pipelines::state::StepState;

const TWO_SLEEPS: &str = "pipeline: p\nsteps:\n  a:\n    run: sleep 1\n  b:\n    run: sleep 1\n";

/// Whether steps a and b were running at the same moment, from their attempts' own timestamps
/// (the order of events, not how long the run took, so a loaded machine cannot fail it).
fn overlapped(report: &RunReport) -> bool {
    let span = |id: &str| {
        let attempt = &report.step(id).unwrap().attempts[0];
        (attempt.started_ms, attempt.ended_ms)
    };
    let (a, b) = (span("a"), span("b"));
    a.0 < b.1 && b.0 < a.1
}

#[tokio::test]
async fn a2_max_parallel_bounds_the_steps_running_at_once() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(TWO_SLEEPS);
    let report = repo.run_with(&pipeline, |o| o.max_parallel = 2).await;
    assert_eq!(state(&report, "a"), StepState::Succeeded);
    assert_eq!(state(&report, "b"), StepState::Succeeded);
    assert!(
        overlapped(&report),
        "two slots ran a and b one after the other"
    );

    let report = repo.run_with(&pipeline, |o| o.max_parallel = 1).await;
    assert!(!overlapped(&report), "one slot ran a and b at once");
}

#[tokio::test]
async fn a2_a_diamond_respects_its_order() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: p\nsteps:\n  a:\n    run: sleep 0.2\n  b:\n    run: sleep 0.2\n    needs: [a]\n  c:\n    run: sleep 0.2\n    needs: [a]\n  d:\n    run: 'true'\n    needs: [b, c]\n",
    );
    let report = repo.run_with(&pipeline, |o| o.max_parallel = 4).await;
    let times = |id: &str| {
        let attempt = &report.step(id).unwrap().attempts[0];
        (attempt.started_ms, attempt.ended_ms)
    };
    let (a, b, c, d) = (times("a"), times("b"), times("c"), times("d"));
    assert!(b.0 >= a.1 && c.0 >= a.1, "b and c start after a ends");
    assert!(d.0 >= b.1 && d.0 >= c.1, "d starts after b and c end");
    assert!(b.0 < c.1 && c.0 < b.1, "b and c overlap");
}
