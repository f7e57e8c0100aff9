//! The Ray executor against a local Jobs server that really runs what it is given
//! (`support/ray_jobs.rs`): the status comes from the entrypoint's exit code, the logs from its
//! output, and a cancel ends its processes.

#[path = "support/ray_jobs.rs"]
mod ray_jobs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ray_jobs::RayJobs;
use twinloop_executors::ray::{RayConfig, RayExecutor};
use twinloop_executors::{AttemptSpec, Executor, Outcome, Resources};

fn spec(step: &str, command: &str, workdir: &std::path::Path) -> AttemptSpec {
    AttemptSpec {
        run_id: "run".into(),
        pipeline: "p".into(),
        step: step.into(),
        item: None,
        attempt: 1,
        command: command.into(),
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        image: None,
        resources: Resources::default(),
        timeout: None,
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([("out".into(), workdir.join("out").display().to_string())]),
        repo: workdir.to_owned(),
        code: Vec::new(),
        labels: BTreeMap::new(),
        workdir: Some(workdir.to_owned()),
        launcher: None,
        grace: Duration::from_secs(1),
    }
}

async fn executor() -> (RayJobs, RayExecutor) {
    let (jobs, url) = RayJobs::start().await;
    let mut config = RayConfig::new(url);
    config.poll = Duration::from_millis(20);
    (jobs, RayExecutor::new(config).unwrap())
}

#[tokio::test]
async fn a_job_runs_in_its_working_directory_with_its_variables_and_its_exit_code_decides() {
    let (jobs, ray) = executor().await;
    let repo = tempfile::tempdir().unwrap();
    let ok = spec(
        "ok",
        "echo \"$GREETING from $TWINLOOP_STEP\"; pwd > \"$TWINLOOP_OUTPUT_OUT\"",
        repo.path(),
    );
    let handle = ray.start(&ok).await.unwrap();
    assert_eq!(ray.wait(&handle).await.unwrap(), Outcome::Succeeded);
    assert_eq!(ray.logs(&handle).await.unwrap(), "hello from ok\n");
    let pwd = std::fs::read_to_string(repo.path().join("out")).unwrap();
    assert_eq!(
        PathBuf::from(pwd.trim()).canonicalize().unwrap(),
        repo.path().canonicalize().unwrap()
    );
    assert!(
        jobs.submitted()[0].starts_with("cd '"),
        "{:?}",
        jobs.submitted()
    );

    let failing = spec("bad", "echo oops >&2; exit 3", repo.path());
    let handle = ray.start(&failing).await.unwrap();
    match ray.wait(&handle).await.unwrap() {
        Outcome::Failed { exit_code, reason } => {
            assert_eq!(exit_code, Some(3), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ray.logs(&handle).await.unwrap(), "oops\n");
}

#[tokio::test]
async fn a_canceled_job_is_stopped_and_its_processes_end() {
    let (jobs, ray) = executor().await;
    let repo = tempfile::tempdir().unwrap();
    let handle = ray
        .start(&spec("slow", "sleep 60 & wait", repo.path()))
        .await
        .unwrap();
    assert_eq!(ray.poll(&handle).await.unwrap(), None, "running");
    ray.cancel(&handle).await.unwrap();
    assert!(matches!(
        ray.wait(&handle).await.unwrap(),
        Outcome::Canceled { .. }
    ));
    let pgid = jobs.pgid(&handle.id).unwrap();
    for _ in 0..200 {
        let alive = std::process::Command::new("kill")
            .args(["-0", "--", &format!("-{pgid}")])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the job's process group outlived the stop");
}
