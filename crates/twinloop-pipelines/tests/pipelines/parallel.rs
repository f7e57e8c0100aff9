//! A2: independent steps share the slots; dependent ones wait for their upstream.

use std::time::Instant;

use crate::support::{Repo, state};
use twinloop_pipelines::state::StepState;

const TWO_SLEEPS: &str = "pipeline: p\nsteps:\n  a:\n    run: sleep 1\n  b:\n    run: sleep 1\n";

#[tokio::test]
async fn a2_max_parallel_bounds_the_steps_running_at_once() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(TWO_SLEEPS);
    let started = Instant::now();
    let report = repo.run_with(&pipeline, |o| o.max_parallel = 2).await;
    let parallel = started.elapsed();
    assert_eq!(state(&report, "a"), StepState::Succeeded);
    assert_eq!(state(&report, "b"), StepState::Succeeded);
    assert!(parallel.as_secs_f64() < 1.8, "two slots took {parallel:?}");

    let started = Instant::now();
    repo.run_with(&pipeline, |o| o.max_parallel = 1).await;
    let serial = started.elapsed();
    assert!(serial.as_secs_f64() >= 2.0, "one slot took {serial:?}");
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
