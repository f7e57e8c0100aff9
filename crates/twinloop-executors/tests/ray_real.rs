//! The Ray executor against a real Ray head, not run by default: `bench/executors/ray-local.sh`
//! starts `ray start --head --num-cpus 1` and runs these with `TWINLOOP_RAY_ADDRESS` set.
//! They check what a mock cannot: that Ray accepts our submission body, package name and
//! upload, runs the entrypoint in the unpacked working_dir with our env vars, and reports exit
//! codes and stops as the executor reads them.

use std::collections::BTreeMap;
use std::time::Duration;

use twinloop_executors::ray::{RayConfig, RayExecutor};
use twinloop_executors::{AttemptSpec, Executor, Outcome, Resources};

fn executor() -> RayExecutor {
    let address = std::env::var("TWINLOOP_RAY_ADDRESS")
        .expect("TWINLOOP_RAY_ADDRESS: the dashboard of a running Ray head, http://127.0.0.1:8265");
    let mut config = RayConfig::new(address);
    config.poll = Duration::from_millis(200);
    RayExecutor::new(config).unwrap()
}

fn spec(repo: &std::path::Path, run_id: &str, step: &str, command: &str) -> AttemptSpec {
    AttemptSpec {
        run_id: run_id.into(),
        pipeline: "ray-real".into(),
        step: step.into(),
        item: None,
        attempt: 1,
        command: command.into(),
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        image: None,
        resources: Resources {
            cpu: Some("0.5".parse().unwrap()),
            memory: None,
        },
        timeout: None,
        inputs: BTreeMap::new(),
        outputs: BTreeMap::new(),
        repo: repo.to_owned(),
        code: vec!["step.sh".into()],
        labels: BTreeMap::new(),
        workdir: None,
        launcher: None,
        grace: Duration::from_secs(10),
    }
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script =
        "echo \"$GREETING from $TWINLOOP_STEP attempt $TWINLOOP_ATTEMPT\"\nexit \"${1:-0}\"\n";
    std::fs::write(dir.path().join("step.sh"), script).unwrap();
    dir
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}")
}

#[tokio::test]
#[ignore = "needs a Ray head: bench/executors/ray-local.sh"]
async fn a_step_runs_in_its_package_with_its_env() {
    let ray = executor();
    let repo = repo();
    let handle = ray
        .start(&spec(repo.path(), &run_id(), "hello", "sh step.sh"))
        .await
        .unwrap();
    assert_eq!(ray.wait(&handle).await.unwrap(), Outcome::Succeeded);
    let logs = ray.logs(&handle).await.unwrap();
    assert!(logs.contains("hello from hello attempt 1"), "{logs}");
    assert_eq!(ray.reattach(&handle.id).await.unwrap(), handle);
}

#[tokio::test]
#[ignore = "needs a Ray head: bench/executors/ray-local.sh"]
async fn a_failing_step_reports_its_exit_code() {
    let ray = executor();
    let repo = repo();
    let handle = ray
        .start(&spec(repo.path(), &run_id(), "fails", "sh step.sh 3"))
        .await
        .unwrap();
    match ray.wait(&handle).await.unwrap() {
        Outcome::Failed { exit_code, .. } => assert_eq!(exit_code, Some(3)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs a Ray head: bench/executors/ray-local.sh"]
async fn cancel_stops_a_running_step() {
    let ray = executor();
    let repo = repo();
    let handle = ray
        .start(&spec(repo.path(), &run_id(), "sleeps", "sleep 300"))
        .await
        .unwrap();
    // Give the driver time to start, so the stop reaches a live process, not a pending job.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ray.poll(&handle).await.unwrap(),
        None,
        "sleep 300 ended early"
    );
    ray.cancel(&handle).await.unwrap();
    assert!(matches!(
        ray.wait(&handle).await.unwrap(),
        Outcome::Canceled { .. }
    ));
}
