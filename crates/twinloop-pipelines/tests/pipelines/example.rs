//! The example of docs/pipelines.md runs, then hits the cache.

use crate::support::{Repo, states};
use twinloop_pipelines::state::{RunStatus, StepState};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn the_example_pipeline_runs() {
    let repo = Repo::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pipeline");
    copy_dir(&example, repo.path());
    let pipeline = twinloop_pipelines::spec::load(&repo.path().join("pipeline.yaml")).unwrap();
    let report = repo.run(&pipeline).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert!(
        states(&report).iter().all(|s| s.1 == StepState::Succeeded),
        "{:?}",
        states(&report)
    );
    let again = repo.run(&pipeline).await;
    assert!(
        states(&again).iter().all(|s| s.1 == StepState::Cached),
        "{:?}",
        states(&again)
    );
}
