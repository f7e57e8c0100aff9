//! A9: a timeout or a cancel ends the step's whole process tree, grandchildren included.

use std::time::Duration;

use crate::support::{Repo, live_processes_in_group, state};
use twinloop_pipelines::exec::{Cancel, run};
use twinloop_pipelines::state::{RunStatus, StepState};

/// The step's shell writes its pid (its process group's id), starts a grandchild and waits.
const TREE: &str = "echo $$ > pgid; sh -c 'sleep 100' & sleep 100";

async fn pgid(repo: &Repo) -> u32 {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(repo.path().join("pgid"))
            && let Ok(pgid) = text.trim().parse()
        {
            return pgid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the step never wrote its pid");
}

#[tokio::test]
async fn a9_a_timeout_kills_the_tree() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(&format!(
        "pipeline: t\nsteps:\n  slow:\n    run: {TREE}\n    timeout: 1s\n"
    ));
    let report = repo
        .run_with(&pipeline, |o| o.kill_grace = Duration::from_secs(2))
        .await;
    assert_eq!(state(&report, "slow"), StepState::TimedOut);
    assert_eq!(report.status, RunStatus::Failed);
    let pgid = pgid(&repo).await;
    assert_eq!(live_processes_in_group(pgid), Vec::<u32>::new());
}

#[tokio::test]
async fn a9_a_cancel_kills_the_tree() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(&format!(
        "pipeline: t\nsteps:\n  slow:\n    run: {TREE}\n  after:\n    run: 'true'\n    needs: [slow]\nfinally:\n  cleanup:\n    run: echo ${{{{ run.status }}}} > status\n"
    ));
    let cancel = Cancel::default();
    let mut options = repo.options();
    options.cancel = cancel.clone();
    options.kill_grace = Duration::from_secs(2);
    let running = tokio::spawn(async move { run(&pipeline, options).await });
    let pgid = pgid(&repo).await;
    cancel.cancel();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.status, RunStatus::Canceled);
    assert_eq!(state(&report, "slow"), StepState::Canceled);
    assert_eq!(state(&report, "after"), StepState::Canceled);
    assert_eq!(state(&report, "cleanup"), StepState::Succeeded);
    assert_eq!(repo.read("status"), "CANCELED\n");
    assert_eq!(live_processes_in_group(pgid), Vec::<u32>::new());
}
