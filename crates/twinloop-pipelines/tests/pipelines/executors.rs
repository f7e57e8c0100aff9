//! Steps with `executor: NAME` run through the `Executor` trait: started, waited for, retried as
//! new attempts, stopped on a timeout or a cancel, their logs kept, and after a restart
//! reattached to rather than started twice. The executor here is a test double of the trait
//! that runs each attempt as a local process group (as a Ray node on the same host would).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use twinloop_artifacts::ArtifactStore;
use twinloop_core::tracking::ViewType;
use twinloop_meta::{RunQuery, SqlStore, StoreHandle, StoreUri};
use twinloop_pipelines::cache::digest::bytes_digest;
use twinloop_pipelines::exec::executor::{
    AttemptSpec, Executor, ExecutorError, Executors, Handle, Outcome, Resources,
};
use twinloop_pipelines::exec::{Cancel, run};
use twinloop_pipelines::services::Services;
use twinloop_pipelines::spec;
use twinloop_pipelines::state::{RunStatus, StepState};

use crate::support::{Repo, processes_left_in_group, state};

/// One attempt the fake runs: its process group and, once it ended, how.
struct Job {
    pgid: u32,
    log: PathBuf,
    end: Arc<Mutex<Option<Outcome>>>,
}

struct Fake {
    logs: tempfile::TempDir,
    jobs: Mutex<BTreeMap<String, Job>>,
    /// `start <id>`, `cancel <id>`, `reattach <id>` in call order.
    calls: Mutex<Vec<String>>,
    /// The `resources:` each started attempt asked for, by id.
    asked: Mutex<BTreeMap<String, Resources>>,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake {
            logs: tempfile::tempdir().unwrap(),
            jobs: Mutex::default(),
            calls: Mutex::default(),
            asked: Mutex::default(),
        }
    }
}

impl Fake {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn pgid(&self, id: &str) -> u32 {
        self.jobs.lock().unwrap()[id].pgid
    }
}

fn handle(id: &str) -> Handle {
    Handle {
        executor: "fake".into(),
        id: id.to_owned(),
    }
}

fn not_found(id: &str) -> ExecutorError {
    ExecutorError::NotFound {
        engine: "fake",
        what: "job",
        id: id.to_owned(),
    }
}

#[async_trait]
impl Executor for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(20)
    }

    async fn start(&self, spec: &AttemptSpec) -> Result<Handle, ExecutorError> {
        let id = format!("{}-{}-{}", spec.run_id, spec.name(), spec.attempt);
        self.note(format!("start {id}"));
        self.asked
            .lock()
            .unwrap()
            .insert(id.clone(), spec.resources.clone());
        if self.jobs.lock().unwrap().contains_key(&id) {
            return Ok(handle(&id));
        }
        let log = self.logs.path().join(&id);
        let out = std::fs::File::create(&log).unwrap();
        let mut command = tokio::process::Command::new("sh");
        command
            .args(["-c", &spec.command])
            .envs(spec.environment())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        if let Some(dir) = &spec.workdir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|source| ExecutorError::Io {
            context: "start".into(),
            source,
        })?;
        let pgid = child.id().unwrap();
        let end = Arc::new(Mutex::new(None));
        let ended = end.clone();
        tokio::spawn(async move {
            let status = child.wait().await.unwrap();
            let mut end = ended.lock().unwrap();
            if end.is_none() {
                *end = Some(match status.code() {
                    Some(0) => Outcome::Succeeded,
                    code => Outcome::Failed {
                        exit_code: code,
                        reason: format!("exited with {code:?}"),
                    },
                });
            }
        });
        self.jobs
            .lock()
            .unwrap()
            .insert(id.clone(), Job { pgid, log, end });
        Ok(handle(&id))
    }

    async fn poll(&self, handle: &Handle) -> Result<Option<Outcome>, ExecutorError> {
        let jobs = self.jobs.lock().unwrap();
        let job = jobs.get(&handle.id).ok_or_else(|| not_found(&handle.id))?;
        Ok(job.end.lock().unwrap().clone())
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), ExecutorError> {
        self.note(format!("cancel {}", handle.id));
        let jobs = self.jobs.lock().unwrap();
        let job = jobs.get(&handle.id).ok_or_else(|| not_found(&handle.id))?;
        job.end.lock().unwrap().get_or_insert(Outcome::Canceled {
            reason: "stopped".into(),
        });
        std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", job.pgid)])
            .status()
            .unwrap();
        Ok(())
    }

    async fn logs(&self, handle: &Handle) -> Result<String, ExecutorError> {
        let path = self.jobs.lock().unwrap()[&handle.id].log.clone();
        Ok(std::fs::read_to_string(path).unwrap_or_default())
    }

    async fn reattach(&self, id: &str) -> Result<Handle, ExecutorError> {
        self.note(format!("reattach {id}"));
        if self.jobs.lock().unwrap().contains_key(id) {
            Ok(handle(id))
        } else {
            Err(not_found(id))
        }
    }
}

fn executors(fake: &Arc<Fake>) -> Executors {
    let executor: Arc<dyn Executor> = fake.clone();
    Executors::from([("cluster".to_owned(), executor)])
}

const TWO_STEPS: &str = "pipeline: r\ndefaults:\n  executor: cluster\nsteps:\n  prep:\n    run: echo prepared; printf 'a,b' > \"$TWINLOOP_OUTPUT_DATA\"\n    inputs: {raw: raw.csv}\n    outputs: {data: {kind: file}}\n  train:\n    resources: {cpu: 2, memory: 1Gi}\n    run: cat \"$TWINLOOP_INPUT_DATA\" > \"$TWINLOOP_OUTPUT_MODEL\"; echo trained\n    inputs:\n      data: ${{ steps.prep.outputs.data }}\n    outputs: {model: {kind: file}}\n  check:\n    executor: local\n    run: test \"$(cat \"$TWINLOOP_INPUT_MODEL\")\" = a,b\n    inputs:\n      model: ${{ steps.train.outputs.model }}\n";

#[tokio::test]
async fn remote_steps_run_through_the_executor_and_their_outputs_reach_the_store() {
    let repo = Repo::new();
    repo.write("raw.csv", "1\n");
    let pipeline = repo.pipeline(TWO_STEPS);
    let fake = Arc::new(Fake::default());
    let report = repo
        .run_with(&pipeline, |o| {
            o.executors = executors(&fake);
            o.run_id = Some("one".into());
        })
        .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(
        fake.calls(),
        ["start one-prep-1", "start one-train-1"],
        "the local step did not go to the executor"
    );
    let asked = fake.asked.lock().unwrap().clone();
    let wanted = serde_norway::from_str("{cpu: 2, memory: 1Gi}").unwrap();
    assert_eq!(asked["one-train-1"], Resources::from_yaml(&wanted).unwrap());
    assert_eq!(asked["one-prep-1"], Resources::default());
    let train = report.step("train").unwrap();
    assert_eq!(
        train.outputs["model"].digest,
        bytes_digest(b"a,b"),
        "{train:?}"
    );
    let attempt = repo.home().join("runs/one/train/1");
    assert_eq!(
        std::fs::read_to_string(attempt.join("stdout.log")).unwrap(),
        "trained\n",
        "the executor's logs are kept with the attempt"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(attempt.join("executor.json")).unwrap()).unwrap();
    assert_eq!(record["id"], "one-train-1");
    assert_eq!(record["executor"], "cluster");
    assert_eq!(record["ended"], true);

    // Where a step ran is not part of its key: the same steps run locally are cache hits.
    let local = repo.pipeline(&TWO_STEPS.replace("defaults:\n  executor: cluster\n", ""));
    let again = repo.run(&local).await;
    assert_eq!(state(&again, "train"), StepState::Cached);
    assert_eq!(state(&again, "check"), StepState::Cached);
}

#[tokio::test]
async fn a_failed_attempt_is_retried_as_a_new_start() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: r\nsteps:\n  flaky:\n    executor: cluster\n    run: test -f tried || { touch tried; echo first; exit 3; }\n    retries: {max: 1, backoff: 10ms}\n",
    );
    let fake = Arc::new(Fake::default());
    let report = repo
        .run_with(&pipeline, |o| {
            o.executors = executors(&fake);
            o.run_id = Some("r".into());
        })
        .await;
    assert_eq!(state(&report, "flaky"), StepState::Succeeded);
    let attempts = &report.step("flaky").unwrap().attempts;
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.state, a.exit_code))
            .collect::<Vec<_>>(),
        [
            (StepState::Failed, Some(3)),
            (StepState::Succeeded, Some(0))
        ]
    );
    assert_eq!(fake.calls(), ["start r-flaky-1", "start r-flaky-2"]);
}

#[tokio::test]
async fn each_attempts_run_records_the_executor_and_its_external_id() {
    let dir = tempfile::tempdir().unwrap();
    let uri = StoreUri::Sqlite(dir.path().join("store.db"));
    let store: StoreHandle = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
    let services = Services {
        store: store.clone(),
        artifacts: ArtifactStore::open(dir.path().join("artifacts").to_str().unwrap()).unwrap(),
        deployments: None,
        tracking_uri: None,
        webhooks: None,
    };
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: rec\nsteps:\n  flaky:\n    executor: cluster\n    run: test -f tried || { touch tried; exit 3; }\n    retries: {max: 1, backoff: 10ms}\n",
    );
    let fake = Arc::new(Fake::default());
    let report = repo
        .run_with(&pipeline, |o| {
            o.executors = executors(&fake);
            o.run_id = Some("r".into());
            o.services = Some(services);
        })
        .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let experiment = store.get_experiment_by_name("rec").await.unwrap();
    let runs = store
        .search_runs(&RunQuery {
            experiment_ids: vec![experiment.experiment_id],
            filter: Some("tags.`twinloop.step` = 'flaky'".into()),
            order_by: Vec::new(),
            view_type: ViewType::ActiveOnly,
            max_results: 10,
            page_token: None,
        })
        .await
        .unwrap()
        .items;
    let mut recorded: Vec<(String, String, String)> = runs
        .iter()
        .map(|run| {
            let tag = |key: &str| {
                run.data
                    .tags
                    .iter()
                    .find(|t| t.key == key)
                    .map(|t| t.value.clone())
                    .unwrap_or_default()
            };
            (
                tag("twinloop.attempt"),
                tag("twinloop.executor"),
                tag("twinloop.external_id"),
            )
        })
        .collect();
    recorded.sort();
    assert_eq!(
        recorded,
        [
            ("1".into(), "cluster".into(), "r-flaky-1".into()),
            ("2".into(), "cluster".into(), "r-flaky-2".into()),
        ]
    );
}

#[tokio::test]
async fn each_item_of_a_foreach_step_is_its_own_remote_job() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: r\nparams: {xs: [a, b]}\nsteps:\n  each:\n    executor: cluster\n    foreach: ${{ params.xs }}\n    run: echo ${{ item }} > \"$TWINLOOP_OUTPUT_OUT\"\n    outputs: {out: {kind: file}}\n",
    );
    let fake = Arc::new(Fake::default());
    let report = repo
        .run_with(&pipeline, |o| {
            o.executors = executors(&fake);
            o.run_id = Some("r".into());
            o.max_parallel = 1;
        })
        .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(fake.calls(), ["start r-each-0-1", "start r-each-1-1"]);
    let items = &report.step("each").unwrap().items;
    assert_eq!(items[1].outputs["out"].digest, bytes_digest(b"b\n"));
}

#[tokio::test]
async fn a_timeout_cancels_the_remote_attempt() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: r\nsteps:\n  slow:\n    executor: cluster\n    run: sleep 60\n    timeout: 300ms\n",
    );
    let fake = Arc::new(Fake::default());
    let report = repo
        .run_with(&pipeline, |o| {
            o.executors = executors(&fake);
            o.run_id = Some("r".into());
        })
        .await;
    assert_eq!(state(&report, "slow"), StepState::TimedOut);
    assert_eq!(fake.calls(), ["start r-slow-1", "cancel r-slow-1"]);
    assert_eq!(
        processes_left_in_group(fake.pgid("r-slow-1")).await,
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn a_canceled_run_cancels_the_remote_attempt() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: r\nsteps:\n  slow:\n    executor: cluster\n    run: touch started; sleep 60\n",
    );
    let fake = Arc::new(Fake::default());
    let cancel = Cancel::default();
    let mut options = repo.options();
    options.executors = executors(&fake);
    options.run_id = Some("r".into());
    options.cancel = cancel.clone();
    let running = tokio::spawn(async move { run(&pipeline, options).await });
    wait_for(&repo.path().join("started")).await;
    cancel.cancel();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.status, RunStatus::Canceled);
    assert_eq!(state(&report, "slow"), StepState::Canceled);
    assert_eq!(fake.calls(), ["start r-slow-1", "cancel r-slow-1"]);
    assert_eq!(
        processes_left_in_group(fake.pgid("r-slow-1")).await,
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn a_resumed_run_reattaches_to_the_attempt_still_running_instead_of_starting_it_again() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        "pipeline: r\nsteps:\n  long:\n    executor: cluster\n    run: touch started; while [ ! -f go ]; do sleep 0.05; done; echo done > \"$TWINLOOP_OUTPUT_OUT\"\n    outputs: {out: {kind: file}}\n",
    );
    let fake = Arc::new(Fake::default());
    let mut options = repo.options();
    options.executors = executors(&fake);
    options.run_id = Some("first".into());
    let first = {
        let pipeline = pipeline.clone();
        tokio::spawn(async move { run(&pipeline, options).await })
    };
    wait_for(&repo.path().join("started")).await;
    // The engine dies (its task is dropped, nothing cancels); the remote attempt runs on.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    repo.write("go", "");
    let report = repo
        .run_with(&pipeline, |o| {
            o.executors = executors(&fake);
            o.run_id = Some("second".into());
            o.resume = Some("first".into());
        })
        .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(
        fake.calls(),
        ["start first-long-1", "reattach first-long-1"]
    );
    let long = report.step("long").unwrap();
    assert_eq!(long.attempts.len(), 1);
    assert_eq!(long.attempts[0].attempt, 1);
    assert_eq!(long.outputs["out"].digest, bytes_digest(b"done\n"));
    // Resumed once more, nothing is left running: the step is reused, nothing reattached.
    let third = repo
        .run_with(&pipeline, |o| {
            o.executors = executors(&fake);
            o.resume = Some("second".into());
        })
        .await;
    assert_eq!(state(&third, "long"), StepState::Cached);
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn an_unknown_executor_is_refused_at_load_and_before_a_run() {
    let repo = Repo::new();
    let text = "pipeline: r\ndefaults:\n  executor: gpu\nsteps:\n  a:\n    run: 'true'\n  b:\n    run: 'true'\n    executor: big\n  c:\n    run: 'true'\n    executor: cluster\n  d:\n    run: 'true'\n    executor: local\n  e:\n    uses: notify.webhook@1\n    with: {url: 'http://127.0.0.1:9/'}\n";
    let pipeline = repo.pipeline(text);
    assert_eq!(pipeline.step("a").unwrap().executor.as_deref(), Some("gpu"));
    assert_eq!(
        pipeline.step("d").unwrap().executor,
        None,
        "local is this process"
    );
    assert_eq!(
        pipeline.step("e").unwrap().executor,
        None,
        "built-ins run in process"
    );
    let known = BTreeSet::from(["cluster".to_owned()]);
    let problems: Vec<String> = spec::check_executors(&pipeline, text, &known)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    let file = repo.path().join("pipeline.yaml").display().to_string();
    assert_eq!(
        problems,
        [
            format!(
                "{file}:3: defaults.executor: unknown executor \"gpu\" (twinloop.yaml declares: cluster; `local` runs in this process)"
            ),
            format!(
                "{file}:9: steps[b].executor: unknown executor \"big\" (twinloop.yaml declares: cluster; `local` runs in this process)"
            ),
        ]
    );
    let error = run(&pipeline, repo.options()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "step a: executor \"gpu\" is not one of twinloop.yaml's executors"
    );
    let refused = spec::parse(
        "p.yaml",
        "pipeline: p\nsteps:\n  e:\n    uses: notify.webhook@1\n    with: {url: 'http://127.0.0.1:9/'}\n    executor: cluster\n",
    )
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("steps[e].executor: a built-in runs inside the twinloop process"),
        "{refused}"
    );
}

async fn wait_for(path: &std::path::Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never appeared", path.display());
}
