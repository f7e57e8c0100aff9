//! The scheduler on a real SQLite store: registry triggers with their `where:` filter and loop
//! guard, versions on apply, runs keeping their version's spec, restart, cancel.

use std::sync::Arc;
use std::time::Duration;

use twinloop_core::registry::NewModelVersion;
use twinloop_core::tracking::Tag;
use twinloop_meta::{SqlStore, StoreHandle, StoreUri};

use super::*;

struct Fixture {
    scheduler: Scheduler,
    store: StoreHandle,
    repo: tempfile::TempDir,
    _db: tempfile::TempDir,
}

async fn open(db: &tempfile::TempDir) -> StoreHandle {
    let uri = StoreUri::Sqlite(db.path().join("t.db"));
    Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap())
}

fn config() -> Config {
    Config {
        poll: Duration::from_millis(20),
        max_parallel: Some(2),
        kill_grace: Duration::from_millis(500),
        services: None,
        executors: None,
        lease: None,
    }
}

async fn fixture() -> Fixture {
    let db = tempfile::tempdir().unwrap();
    let store = open(&db).await;
    Fixture {
        scheduler: Scheduler::start(store.clone(), config()).await.unwrap(),
        store,
        repo: tempfile::tempdir().unwrap(),
        _db: db,
    }
}

impl Fixture {
    async fn apply(&self, spec: &str) -> Result<Applied> {
        let repo = self.repo.path().to_str().unwrap();
        self.scheduler.apply(spec, "p.yaml", repo).await
    }

    /// Waits until `check` holds for the pipeline's runs (newest first).
    async fn runs_until(
        &self,
        name: &str,
        check: impl Fn(&[PipelineRun]) -> bool,
    ) -> Vec<PipelineRun> {
        for _ in 0..500 {
            let runs = self.scheduler.runs(Some(name), None, 100).await.unwrap();
            if check(&runs) {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("runs of {name} never got there");
    }

    async fn version(&self, tags: &[(&str, &str)]) -> i64 {
        let new = NewModelVersion {
            name: "fraud".into(),
            source: "models:/m".into(),
            run_id: None,
            model_id: None,
            description: None,
            run_link: None,
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            user_id: "test".into(),
        };
        self.store
            .create_model_version(new, "test")
            .await
            .unwrap()
            .version
    }
}

fn ended(runs: &[PipelineRun]) -> bool {
    !runs.is_empty() && runs.iter().all(|r| r.ended_ms.is_some())
}

#[tokio::test]
async fn a_registry_trigger_filters_and_ignores_versions_its_own_runs_registered() {
    let f = fixture().await;
    f.store
        .create_registered_model("fraud", None, &[], "test")
        .await
        .unwrap();
    f.apply(
        "pipeline: train\ntriggers:\n  - registry: {event: VERSION_CREATED, model: fraud, where: \"trigger.payload.source != 'manual'\"}\nsteps:\n  a:\n    run: 'true'\n",
    )
    .await
    .unwrap();
    let v1 = f.version(&[]).await;
    let runs = f.runs_until("train", ended).await;
    assert_eq!(runs.len(), 1);
    let first = &runs[0];
    assert_eq!(
        (first.trigger_kind.as_str(), first.state.as_str()),
        ("registry", "SUCCEEDED")
    );
    let cause: Value = serde_json::from_str(&first.cause).unwrap();
    assert_eq!(cause["version"], v1);
    // A version the run registered (its tags name the run) would trigger the pipeline again.
    f.version(&[("twinloop.pipeline_run", &first.id)]).await;
    // One the where: filter leaves out is no event of this trigger at all.
    f.version(&[("source", "manual")]).await;
    let v4 = f.version(&[]).await;
    let runs = f.runs_until("train", |r| r.len() == 2 && ended(r)).await;
    let cause: Value = serde_json::from_str(&runs[0].cause).unwrap();
    assert_eq!(cause["version"], v4);
    let events = f.store.trigger_events(Some("train"), 10).await.unwrap();
    let outcomes: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (e.outcome.as_str(), e.reason.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("fired", None),
            ("suppressed", Some("loop_guard")),
            ("fired", None)
        ]
    );
}

#[tokio::test]
async fn a_run_keeps_the_spec_it_started_with_when_a_new_version_is_applied() {
    let f = fixture().await;
    let v1 = "pipeline: p\nsteps:\n  a:\n    run: sleep 0.5; echo v1 > out.txt\n";
    let applied = f.apply(v1).await.unwrap();
    assert_eq!((applied.version.version, applied.created), (1, true));
    let same = f.apply(v1).await.unwrap();
    assert_eq!((same.version.version, same.created), (1, false));
    let run = f.scheduler.run_now("p", &[]).await.unwrap();
    let v2 = f
        .apply("pipeline: p\nsteps:\n  a:\n    run: echo v2 > out.txt\n")
        .await
        .unwrap();
    assert_eq!(v2.version.version, 2);
    assert_eq!(v2.diff.steps_changed, ["a"]);
    let runs = f.runs_until("p", ended).await;
    assert_eq!((runs[0].id.as_str(), runs[0].version), (run.id.as_str(), 1));
    assert_eq!(runs[0].state, "SUCCEEDED", "{:?}", runs[0].reason);
    let out = std::fs::read_to_string(f.repo.path().join("out.txt")).unwrap();
    assert_eq!(out.trim(), "v1");
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason() {
    let f = fixture().await;
    let data = f
        .apply("pipeline: d\ntriggers:\n  - data: {path: 's3://bucket/in/'}\nsteps:\n  a: {run: 'true'}\n")
        .await;
    assert!(
        matches!(data, Err(ScheduleError::NotSupported(m)) if m.contains("only a local file or directory"))
    );
    let invalid = f.apply("pipeline: d\nsteps: {}\ntriggers: 3\n").await;
    assert!(matches!(invalid, Err(ScheduleError::Invalid(_))));
    // The repository's twinloop.yaml declares no executor: naming one is refused at apply.
    let remote = f
        .apply("pipeline: d\nsteps:\n  a: {run: 'true', executor: cluster}\n")
        .await;
    assert!(
        matches!(&remote, Err(ScheduleError::Invalid(i)) if i.to_string().contains("unknown executor \"cluster\"")),
        "{remote:?}"
    );
    let spec = "pipeline: r\nsteps:\n  a: {run: 'true'}\n";
    for repo in ["relative/dir", "/no/such/directory", ""] {
        let refused = f.scheduler.apply(spec, "r.yaml", repo).await;
        assert!(
            matches!(&refused, Err(ScheduleError::BadRequest(m)) if m.contains("absolute path of a directory")),
            "{repo:?}: {refused:?}"
        );
    }
    assert!(matches!(
        f.scheduler.run_now("nope", &[]).await,
        Err(ScheduleError::NotFound(_))
    ));
    f.apply("pipeline: p\nparams: {lr: 1}\nsteps:\n  a: {run: 'true'}\n")
        .await
        .unwrap();
    let bad_param = f.scheduler.run_now("p", &[("x".into(), "1".into())]).await;
    assert!(matches!(bad_param, Err(ScheduleError::BadRequest(m)) if m.contains("unknown param")));
    let run = f
        .scheduler
        .run_now("p", &[("lr".into(), "2".into())])
        .await
        .unwrap();
    f.runs_until("p", ended).await;
    assert!(matches!(
        f.scheduler.cancel(&run.id).await,
        Err(ScheduleError::Conflict(m)) if m.contains("SUCCEEDED")
    ));
}

#[tokio::test]
async fn a_queued_run_cancels_at_once_and_a_running_one_when_its_steps_end() {
    let f = fixture().await;
    f.apply("pipeline: p\nsteps:\n  a:\n    run: sleep 30\n")
        .await
        .unwrap();
    let running = f.scheduler.run_now("p", &[]).await.unwrap();
    let queued = f.scheduler.run_now("p", &[]).await.unwrap();
    assert_eq!(f.scheduler.run(&queued.id).await.unwrap().state, QUEUED);
    let canceled = f.scheduler.cancel(&queued.id).await.unwrap();
    assert_eq!(canceled.state, "CANCELED");
    f.runs_until("p", |r| {
        r.iter().any(|r| r.id == running.id && r.state == RUNNING)
    })
    .await;
    f.scheduler.cancel(&running.id).await.unwrap();
    let runs = f.runs_until("p", ended).await;
    assert!(runs.iter().all(|r| r.state == "CANCELED"), "{runs:?}");
}

#[tokio::test]
async fn a_restart_fails_the_runs_left_running_and_requeues_the_queued() {
    let db = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let store = open(&db).await;
    let first = Scheduler::start(store.clone(), config()).await.unwrap();
    first
        .apply(
            "pipeline: p\nsteps:\n  a: {run: 'true'}\n",
            "p.yaml",
            repo.path().to_str().unwrap(),
        )
        .await
        .unwrap();
    first.shutdown(Duration::from_secs(1)).await;
    let left = |id: &str, state: &str| PipelineRun {
        id: id.into(),
        pipeline: "p".into(),
        version: 1,
        state: state.into(),
        trigger_kind: "manual".into(),
        cause: "{}".into(),
        params: "{}".into(),
        chain: "[\"p\"]".into(),
        reason: None,
        created_ms: 1,
        started_ms: None,
        ended_ms: None,
        executor: None,
    };
    store
        .create_pipeline_run(&left("was-running", RUNNING))
        .await
        .unwrap();
    store
        .create_pipeline_run(&left("was-queued", QUEUED))
        .await
        .unwrap();
    let second = Scheduler::start(store.clone(), config()).await.unwrap();
    let interrupted = second.run("was-running").await.unwrap();
    assert_eq!(interrupted.state, "FAILED");
    assert!(interrupted.reason.unwrap().contains("interrupted"));
    for _ in 0..500 {
        if second.run("was-queued").await.unwrap().state == "SUCCEEDED" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the queued run never ran after the restart");
}

#[tokio::test]
async fn an_interrupted_run_resumes_with_the_steps_it_finished_unless_the_policy_says_fail() {
    let db = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().to_str().unwrap();
    let store = open(&db).await;
    let first = Scheduler::start(store.clone(), config()).await.unwrap();
    let steps =
        "steps:\n  a:\n    run: echo a >> a.txt\n  b:\n    needs: [a]\n    run: echo b >> b.txt\n";
    first
        .apply(&format!("pipeline: p\n{steps}"), "p.yaml", dir)
        .await
        .unwrap();
    first
        .apply(
            &format!("pipeline: q\npolicy: {{on_restart: fail}}\n{steps}"),
            "q.yaml",
            dir,
        )
        .await
        .unwrap();
    let p = first.run_now("p", &[]).await.unwrap();
    let q = first.run_now("q", &[]).await.unwrap();
    for id in [&p.id, &q.id] {
        for _ in 0..500 {
            if first.run(id).await.unwrap().state == "SUCCEEDED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    first.shutdown(Duration::from_secs(1)).await;
    // As if the server had died during both runs.
    for id in [&p.id, &q.id] {
        let change = RunChange {
            state: RUNNING.into(),
            ..RunChange::default()
        };
        store.update_pipeline_run(id, &change).await.unwrap();
    }
    let second = Scheduler::start(store.clone(), config()).await.unwrap();
    let interrupted = second.run(&p.id).await.unwrap();
    assert_eq!(interrupted.state, "FAILED");
    assert!(interrupted.reason.unwrap().contains("resumed as run"));
    let resumed = loop {
        let runs = second.runs(Some("p"), None, 10).await.unwrap();
        if let Some(r) = runs.iter().find(|r| r.id != p.id && r.ended_ms.is_some()) {
            break r.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(resumed.state, "SUCCEEDED", "{:?}", resumed.reason);
    let cause: Value = serde_json::from_str(&resumed.cause).unwrap();
    assert_eq!(cause["resumed_from"], p.id.as_str());
    assert_eq!(cause["user"], "api", "the original cause is kept");
    // a and b ran once for p and once for q: the resumed run reused p's finished steps.
    let lines = std::fs::read_to_string(repo.path().join("a.txt")).unwrap();
    assert_eq!(lines.lines().count(), 2);
    let q_runs = second.runs(Some("q"), None, 10).await.unwrap();
    assert_eq!(q_runs.len(), 1, "on_restart: fail starts nothing");
    assert!(!q_runs[0].reason.as_deref().unwrap().contains("resumed"));
}

#[tokio::test]
async fn a_pipeline_trigger_fires_when_the_other_pipeline_ends_with_its_status() {
    let f = fixture().await;
    f.apply("pipeline: up\nparams: {ok: 'true'}\nsteps:\n  a:\n    run: ${{ params.ok }}\n")
        .await
        .unwrap();
    f.apply(
        "pipeline: down\ntriggers:\n  - pipeline: {name: up, status: SUCCEEDED}\nsteps:\n  a:\n    run: test ${{ trigger.payload.status }} = SUCCEEDED\n",
    )
    .await
    .unwrap();
    let failed = f
        .scheduler
        .run_now("up", &[("ok".into(), "'false'".into())])
        .await
        .unwrap();
    let up = f.scheduler.run_now("up", &[]).await.unwrap();
    let runs = f.runs_until("down", ended).await;
    assert_eq!(runs.len(), 1, "only the SUCCEEDED run of up triggers down");
    let down = &runs[0];
    assert_eq!(
        (down.trigger_kind.as_str(), down.state.as_str()),
        ("pipeline", "SUCCEEDED")
    );
    let cause: Value = serde_json::from_str(&down.cause).unwrap();
    assert_eq!(cause["pipeline_run"], up.id.as_str());
    assert_eq!(down.chain, r#"["up","down"]"#);
    let up_runs = f.runs_until("up", |r| r.len() == 2 && ended(r)).await;
    let first = up_runs.iter().find(|r| r.id == failed.id).unwrap();
    assert_eq!(first.state, "FAILED");
}

#[tokio::test]
async fn a_data_trigger_fires_once_the_files_settle_with_the_snapshot_that_fired_it() {
    let f = fixture().await;
    let input = f.repo.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("old.csv"), "x\n0\n").unwrap();
    f.apply(
        "pipeline: d\ntriggers:\n  - data: {path: in, poll: 20ms, settle: 300ms}\nsteps:\n  a:\n    run: cat ${{ trigger.payload.snapshot }}/a.csv > seen.txt\n",
    )
    .await
    .unwrap();
    // What is there when the pipeline is applied is not a change.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        f.scheduler
            .runs(Some("d"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Written in three chunks inside the settle time: one run, reading all of it.
    let mut text = String::new();
    for chunk in ["x\n", "1\n", "2\n"] {
        text.push_str(chunk);
        std::fs::write(input.join("a.csv"), &text).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = f.runs_until("d", ended).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, "SUCCEEDED", "{:?}", runs[0].reason);
    let cause: Value = serde_json::from_str(&runs[0].cause).unwrap();
    assert_eq!(cause["changes"]["added"], serde_json::json!(["a.csv"]));
    let seen = std::fs::read_to_string(f.repo.path().join("seen.txt")).unwrap();
    assert_eq!(seen, "x\n1\n2\n");
    // The same bytes written again are no change.
    std::fs::write(input.join("a.csv"), &text).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        f.scheduler.runs(Some("d"), None, 10).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_server_stopping_leaves_its_runs_to_be_resumed_at_the_next_start() {
    let db = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let store = open(&db).await;
    let first = Scheduler::start(store.clone(), config()).await.unwrap();
    let dir = repo.path().to_str().unwrap();
    first
        .apply("pipeline: p\nsteps:\n  a: {run: sleep 30}\n", "p.yaml", dir)
        .await
        .unwrap();
    let run = first.run_now("p", &[]).await.unwrap();
    for _ in 0..500 {
        if first.run(&run.id).await.unwrap().state == RUNNING {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.shutdown(Duration::from_secs(5)).await;
    assert_eq!(first.run(&run.id).await.unwrap().state, RUNNING);
    let second = Scheduler::start(store.clone(), config()).await.unwrap();
    let interrupted = second.run(&run.id).await.unwrap();
    assert_eq!(interrupted.state, "FAILED");
    assert!(interrupted.reason.unwrap().contains("resumed as run"));
    assert_eq!(second.runs(Some("p"), None, 10).await.unwrap().len(), 2);
    second.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_storm_of_a_thousand_events_starts_what_the_policy_allows_and_records_the_rest() {
    let f = fixture().await;
    f.apply(
        "pipeline: s\ntriggers:\n  - monitor: {event: retrain_requested}\npolicy:\n  concurrency: {max: 1, on_conflict: queue}\n  max_runs_per_day: 3\nsteps:\n  a: {run: sleep 0.2}\n",
    )
    .await
    .unwrap();
    for _ in 0..1_000 {
        f.store
            .add_monitor_event("m", "retrain_requested", "{}")
            .await
            .unwrap();
    }
    let events = loop {
        let events = f.store.trigger_events(Some("s"), 2_000).await.unwrap();
        if events.len() == 1_000 {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let count = |outcome: &str, reason: Option<&str>| {
        events
            .iter()
            .filter(|e| e.outcome == outcome && (reason.is_none() || e.reason.as_deref() == reason))
            .count()
    };
    // One starts, one waits in the queue; the daily limit is reached at three, and everything
    // else is recorded with the reason it did not run.
    assert_eq!(count("fired", None), 3);
    assert_eq!(
        count("suppressed", Some("concurrency")) + count("suppressed", Some("max_runs_per_day")),
        997
    );
    assert!(count("suppressed", Some("concurrency")) >= 1);
    let runs = f.runs_until("s", |r| r.len() == 3 && ended(r)).await;
    assert!(runs.iter().all(|r| r.state == "SUCCEEDED"));
}

#[tokio::test]
async fn a_paused_trigger_records_its_events_as_suppressed_until_resumed() {
    let f = fixture().await;
    f.apply("pipeline: p\ntriggers:\n  - monitor: {event: retrain_requested}\nsteps:\n  a: {run: 'true'}\n")
        .await
        .unwrap();
    assert!(matches!(
        f.scheduler.set_paused("p", Some(1), true).await,
        Err(ScheduleError::NotFound(_))
    ));
    let paused = f.scheduler.set_paused("p", None, true).await.unwrap();
    assert!(paused[0].paused);
    f.store
        .add_monitor_event("m", "retrain_requested", "{}")
        .await
        .unwrap();
    let recorded = loop {
        let events = f.store.trigger_events(Some("p"), 10).await.unwrap();
        if let Some(e) = events.first() {
            break e.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (recorded.outcome.as_str(), recorded.reason.as_deref()),
        ("suppressed", Some("paused"))
    );
    let resumed = f.scheduler.set_paused("p", Some(0), false).await.unwrap();
    assert!(!resumed[0].paused);
    f.store
        .add_monitor_event("m", "retrain_requested", "{}")
        .await
        .unwrap();
    let runs = f.runs_until("p", ended).await;
    assert_eq!(runs.len(), 1, "the event while paused is not replayed");
}
