//! The scheduler of `twinloop server`: registered pipelines (`apply`), their runs (manual or
//! started by a trigger) and the triggers themselves. Sources are polled (`sources.rs`); every
//! trigger event goes through the policy (`policy.rs`) and is recorded — fired with its run in
//! one transaction, or suppressed with the reason, or missed. Runs execute through
//! [`crate::exec::run`] with the spec text of the version they were started for, so applying a
//! new version never changes a run under way.
//!
//! On start, runs the previous server left `RUNNING` are marked `FAILED` (interrupted): resuming
//! them (`policy.on_restart: resume`) is not done yet. Runs left `QUEUED` are queued again.

mod diff;
pub mod policy;
mod sources;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use twinloop_core::time::now_ms;
use twinloop_meta::StoreHandle;
use twinloop_meta::pipelines::{
    NewPipelineVersion, PipelineRun, PipelineVersion, RunChange, TriggerEvent,
};

use crate::error::Invalid;
use crate::exec::{Cancel, RunOptions};
use crate::spec::{Pipeline, Trigger};
use crate::state::{RunStatus, StepState, TriggerContext};

pub use diff::{PlanDiff, diff};
use policy::{Decision, Load, Reason};

pub const QUEUED: &str = "QUEUED";
pub const RUNNING: &str = "RUNNING";

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A trigger kind the scheduler does not run yet.
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the run's state (cancel a run that has ended).
    #[error("{0}")]
    Conflict(String),
    /// A param the pipeline does not declare, a bad name.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] twinloop_core::Error),
}

pub type Result<T> = std::result::Result<T, ScheduleError>;

#[derive(Clone)]
pub struct Config {
    /// How often sources are polled and schedules checked.
    pub poll: Duration,
    /// Steps of one run at once (default: the number of cores).
    pub max_parallel: Option<usize>,
    /// Between SIGTERM and SIGKILL when a run is canceled.
    pub kill_grace: Duration,
    /// What runs record themselves in and built-ins reach (the server's own store, artifacts,
    /// deployments and address).
    pub services: Option<crate::services::Services>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            poll: Duration::from_millis(250),
            max_parallel: None,
            kill_grace: Duration::from_secs(5),
            services: None,
        }
    }
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub version: PipelineVersion,
    /// Whether this apply made a new version (an unchanged spec does not).
    pub created: bool,
    pub diff: PlanDiff,
}

/// A trigger as `pipeline triggers` shows it.
#[derive(Debug, Clone)]
pub struct TriggerStatus {
    pub pipeline: String,
    pub index: usize,
    pub kind: String,
    pub description: String,
    /// For schedules: the next tick.
    pub next_ms: Option<i64>,
    /// Its newest recorded events (fired, suppressed with the reason, missed), newest first.
    pub recent: Vec<TriggerEvent>,
}

/// The scheduler; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    config: Config,
    state: Mutex<State>,
    stop: Cancel,
}

#[derive(Default)]
struct State {
    pipelines: BTreeMap<String, Entry>,
}

/// A registered pipeline: its newest version and its runs in this process.
struct Entry {
    version: PipelineVersion,
    spec: Arc<Pipeline>,
    active: Vec<Active>,
    queue: VecDeque<Queued>,
    /// Creation times of trigger-started runs of the last day (cooldown, max_runs_per_day).
    trigger_starts_ms: Vec<i64>,
}

struct Active {
    id: String,
    cancel: Cancel,
    /// Asked to stop: it no longer holds a slot.
    canceling: bool,
}

/// A run waiting for a slot, with the version of the spec it was created for.
struct Queued {
    run: PipelineRun,
    spec: Arc<Pipeline>,
    repo: String,
}

/// A trigger event on its way through the policy.
struct Fire {
    index: usize,
    dedup_key: String,
    kind: &'static str,
    cause: Value,
    /// The pipelines whose runs led to the event, oldest first.
    chain: Vec<String>,
    /// The trigger's cursor and its value once this event is recorded.
    cursor: Option<(String, String)>,
}

impl Entry {
    fn new(version: PipelineVersion, spec: Arc<Pipeline>) -> Entry {
        Entry {
            version,
            spec,
            active: Vec::new(),
            queue: VecDeque::new(),
            trigger_starts_ms: Vec::new(),
        }
    }

    fn load(&self, now: i64) -> Load {
        Load {
            active: self
                .active
                .iter()
                .filter(|a| !a.canceling)
                .map(|a| a.id.clone())
                .collect(),
            queued: self.queue.len(),
            trigger_starts_ms: self
                .trigger_starts_ms
                .iter()
                .copied()
                .filter(|&t| now - t < 86_400_000)
                .collect(),
        }
    }

    fn free_slot(&self) -> bool {
        let max = usize::try_from(self.spec.policy.max_concurrent).unwrap_or(usize::MAX);
        self.active.iter().filter(|a| !a.canceling).count() < max.max(1)
    }
}

/// The digest that tells versions apart: the spec text, byte for byte.
pub fn spec_digest(spec: &str) -> String {
    Sha256::digest(spec.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_version(version: &PipelineVersion) -> std::result::Result<Pipeline, Invalid> {
    crate::spec::parse(&version.file, &version.spec)
}

/// `data:` triggers are parsed but not run yet: refusing them beats silently never firing.
fn refuse_unsupported(pipeline: &Pipeline) -> Result<()> {
    for (i, trigger) in pipeline.triggers.iter().enumerate() {
        if let Trigger::Data(_) = trigger {
            return Err(ScheduleError::NotSupported(format!(
                "{}: triggers[{i}]: data triggers are not supported yet by the server's scheduler",
                pipeline.file
            )));
        }
    }
    Ok(())
}

impl Scheduler {
    /// Loads the registered pipelines, settles the runs a previous server left behind, and
    /// starts polling the triggers' sources.
    pub async fn start(store: StoreHandle, config: Config) -> Result<Scheduler> {
        let inner = Arc::new(Inner {
            store,
            config,
            state: Mutex::new(State::default()),
            stop: Cancel::default(),
        });
        inner.restore().await?;
        let polling = inner.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = polling.stop.canceled() => break,
                    () = tokio::time::sleep(polling.config.poll) => polling.poll().await,
                }
            }
        });
        Ok(Scheduler { inner })
    }

    /// Stops polling and cancels the active runs, waiting up to `wait` for them to end (their
    /// state is then recorded as `CANCELED`).
    pub async fn shutdown(&self, wait: Duration) {
        self.inner.stop.cancel();
        {
            let state = self.inner.state.lock().await;
            for entry in state.pipelines.values() {
                for active in &entry.active {
                    active.cancel.cancel();
                }
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            let busy = self
                .inner
                .state
                .lock()
                .await
                .pipelines
                .values()
                .any(|e| !e.active.is_empty());
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers `spec` (the pipeline file's text; `file` is how errors name it) as the newest
    /// version of its pipeline, run in `repo`. An unchanged spec makes no new version.
    pub async fn apply(&self, spec: &str, file: &str, repo: &str) -> Result<Applied> {
        let pipeline = crate::spec::parse(file, spec)?;
        refuse_unsupported(&pipeline)?;
        if repo.is_empty() {
            return Err(ScheduleError::BadRequest(
                "the repository directory is empty".into(),
            ));
        }
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        let before = state.pipelines.get(&pipeline.name).map(|e| e.spec.clone());
        let (version, created) = inner
            .store
            .apply_pipeline(&NewPipelineVersion {
                name: pipeline.name.clone(),
                spec: spec.to_owned(),
                digest: spec_digest(spec),
                repo: repo.to_owned(),
                file: file.to_owned(),
            })
            .await?;
        let diff = if created {
            diff(before.as_deref(), &pipeline)
        } else {
            PlanDiff::default()
        };
        let pipeline = Arc::new(pipeline);
        inner.init_cursors(&pipeline).await?;
        match state.pipelines.get_mut(&version.name) {
            Some(entry) => {
                entry.version = version.clone();
                entry.spec = pipeline;
            }
            None => {
                state
                    .pipelines
                    .insert(version.name.clone(), Entry::new(version.clone(), pipeline));
            }
        }
        Ok(Applied {
            version,
            created,
            diff,
        })
    }

    pub async fn pipelines(&self) -> Result<Vec<PipelineVersion>> {
        Ok(self.inner.store.pipelines().await?)
    }

    pub async fn pipeline(&self, name: &str) -> Result<PipelineVersion> {
        self.inner
            .store
            .pipeline_version(name, None)
            .await?
            .ok_or_else(|| ScheduleError::NotFound(format!("no pipeline named {name:?}")))
    }

    /// Starts (or queues, when every slot is taken) a manual run with `-p`-style params.
    pub async fn run_now(&self, name: &str, params: &[(String, String)]) -> Result<PipelineRun> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        let entry = state
            .pipelines
            .get_mut(name)
            .ok_or_else(|| ScheduleError::NotFound(format!("no pipeline named {name:?}")))?;
        entry
            .spec
            .resolve_params(params)
            .map_err(|e| ScheduleError::BadRequest(e.to_string()))?;
        let params: serde_json::Map<String, Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let now = now_ms();
        let run = new_run(
            entry,
            "manual",
            &json!({"user": "api"}),
            &Value::Object(params),
            &[name.to_owned()],
            now,
        );
        inner.store.create_pipeline_run(&run).await?;
        let decision = policy::decide(&entry.spec.policy, &entry.load(now), now, true);
        let queued = Queued {
            run: run.clone(),
            spec: entry.spec.clone(),
            repo: entry.version.repo.clone(),
        };
        if decision == Decision::Start {
            inner.launch(entry, queued);
        } else {
            entry.queue.push_back(queued);
        }
        Ok(run)
    }

    pub async fn runs(
        &self,
        pipeline: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PipelineRun>> {
        Ok(self
            .inner
            .store
            .pipeline_runs(pipeline, state, limit)
            .await?)
    }

    pub async fn run(&self, id: &str) -> Result<PipelineRun> {
        self.inner
            .store
            .pipeline_run(id)
            .await?
            .ok_or_else(|| ScheduleError::NotFound(format!("no pipeline run {id:?}")))
    }

    /// Cancels a queued run at once, or asks a running one to stop (its steps' process trees
    /// end; it is recorded `CANCELED` when it has).
    pub async fn cancel(&self, id: &str) -> Result<PipelineRun> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        for entry in state.pipelines.values_mut() {
            if let Some(active) = entry.active.iter_mut().find(|a| a.id == id) {
                active.canceling = true;
                active.cancel.cancel();
                drop(state);
                return self.run(id).await;
            }
            if let Some(at) = entry.queue.iter().position(|q| q.run.id == id) {
                entry.queue.remove(at);
                inner
                    .store
                    .update_pipeline_run(
                        id,
                        &RunChange {
                            state: RunStatus::Canceled.as_str().into(),
                            reason: Some("canceled while queued".into()),
                            ended_ms: Some(now_ms()),
                            ..RunChange::default()
                        },
                    )
                    .await?;
                drop(state);
                return self.run(id).await;
            }
        }
        drop(state);
        let run = self.run(id).await?;
        Err(ScheduleError::Conflict(format!(
            "run {id} is {}: nothing to cancel",
            run.state
        )))
    }

    /// The triggers of one pipeline or all: next tick, newest events.
    pub async fn triggers(&self, pipeline: Option<&str>) -> Result<Vec<TriggerStatus>> {
        let state = self.inner.state.lock().await;
        if let Some(name) = pipeline
            && !state.pipelines.contains_key(name)
        {
            return Err(ScheduleError::NotFound(format!(
                "no pipeline named {name:?}"
            )));
        }
        let now = now_ms();
        let mut out = Vec::new();
        for (name, entry) in &state.pipelines {
            if pipeline.is_some_and(|p| p != name) {
                continue;
            }
            let events = self.inner.store.trigger_events(Some(name), 500).await?;
            for (index, trigger) in entry.spec.triggers.iter().enumerate() {
                let next_ms = match trigger {
                    Trigger::Schedule(s) => s.next_after(now),
                    _ => None,
                };
                let recent = events
                    .iter()
                    .filter(|e| usize::try_from(e.trigger_index).ok() == Some(index))
                    .take(10)
                    .cloned()
                    .collect();
                out.push(TriggerStatus {
                    pipeline: name.clone(),
                    index,
                    kind: trigger.kind().to_owned(),
                    description: trigger.describe(),
                    next_ms,
                    recent,
                });
            }
        }
        Ok(out)
    }
}

/// A new run record of `entry`'s newest version, `QUEUED`.
fn new_run(
    entry: &Entry,
    kind: &str,
    cause: &Value,
    params: &Value,
    chain: &[String],
    now: i64,
) -> PipelineRun {
    PipelineRun {
        id: twinloop_core::ids::new_run_id(),
        pipeline: entry.version.name.clone(),
        version: entry.version.version,
        state: QUEUED.into(),
        trigger_kind: kind.into(),
        cause: cause.to_string(),
        params: params.to_string(),
        chain: json!(chain).to_string(),
        reason: None,
        created_ms: now,
        started_ms: None,
        ended_ms: None,
    }
}

/// The `-p` overrides a run record keeps, as the executor takes them.
fn run_params(run: &PipelineRun) -> Vec<(String, String)> {
    match serde_json::from_str::<Value>(&run.params) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| (k, crate::expr::to_text(&v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn run_chain(run: &PipelineRun) -> Vec<String> {
    serde_json::from_str(&run.chain).unwrap_or_default()
}

/// Why a run ended as it did, from its report: the first step that failed or was canceled.
fn end_reason(report: &crate::exec::RunReport) -> Option<String> {
    report
        .steps
        .iter()
        .find(|s| {
            matches!(
                s.state,
                StepState::Failed | StepState::TimedOut | StepState::Canceled
            )
        })
        .map(|s| match &s.reason {
            Some(r) => format!("step {} {}: {r}", s.step, s.state),
            None => format!("step {} {}", s.step, s.state),
        })
}

impl Inner {
    /// Settles what a previous server left: `RUNNING` runs failed (interrupted), `QUEUED` runs
    /// queued again, the last day's trigger-started runs counted for the policy.
    async fn restore(self: &Arc<Self>) -> Result<()> {
        let mut state = self.state.lock().await;
        for version in self.store.pipelines().await? {
            match parse_version(&version) {
                Ok(spec) => {
                    state
                        .pipelines
                        .insert(version.name.clone(), Entry::new(version, Arc::new(spec)));
                }
                Err(e) => tracing::error!(
                    pipeline = %version.name,
                    "the registered pipeline no longer parses and will not be scheduled: {e}"
                ),
            }
        }
        let now = now_ms();
        for run in self
            .store
            .pipeline_runs(None, Some(RUNNING), 10_000)
            .await?
        {
            self.store
                .update_pipeline_run(
                    &run.id,
                    &RunChange {
                        state: RunStatus::Failed.as_str().into(),
                        reason: Some("interrupted: the server stopped during the run".into()),
                        ended_ms: Some(now),
                        ..RunChange::default()
                    },
                )
                .await?;
        }
        let mut queued = self.store.pipeline_runs(None, Some(QUEUED), 10_000).await?;
        queued.reverse();
        for run in queued {
            let Some(version) = self
                .store
                .pipeline_version(&run.pipeline, Some(run.version))
                .await?
            else {
                continue;
            };
            let Ok(spec) = parse_version(&version) else {
                continue;
            };
            if let Some(entry) = state.pipelines.get_mut(&run.pipeline) {
                entry.queue.push_back(Queued {
                    run,
                    spec: Arc::new(spec),
                    repo: version.repo,
                });
            }
        }
        for entry in state.pipelines.values_mut() {
            let runs = self
                .store
                .pipeline_runs(Some(&entry.version.name), None, 1_000)
                .await?;
            entry.trigger_starts_ms = runs
                .iter()
                .filter(|r| r.trigger_kind != "manual" && now - r.created_ms < 86_400_000)
                .map(|r| r.created_ms)
                .collect();
            self.drain(entry);
        }
        Ok(())
    }

    /// Starts queued runs while the pipeline has free slots.
    fn drain(self: &Arc<Self>, entry: &mut Entry) {
        while entry.free_slot() {
            let Some(next) = entry.queue.pop_front() else {
                break;
            };
            self.launch(entry, next);
        }
    }

    /// Takes a slot for `queued` and executes it in a task of its own.
    fn launch(self: &Arc<Self>, entry: &mut Entry, queued: Queued) {
        let cancel = Cancel::default();
        entry.active.push(Active {
            id: queued.run.id.clone(),
            cancel: cancel.clone(),
            canceling: false,
        });
        let inner = self.clone();
        tokio::spawn(async move { inner.execute(queued, cancel).await });
    }

    async fn execute(self: Arc<Self>, queued: Queued, cancel: Cancel) {
        let Queued { run, spec, repo } = queued;
        let started = now_ms();
        let marked = self
            .store
            .update_pipeline_run(
                &run.id,
                &RunChange {
                    state: RUNNING.into(),
                    started_ms: Some(started),
                    ..RunChange::default()
                },
            )
            .await;
        let (state, reason) = match marked {
            Err(e) => (
                RunStatus::Failed,
                Some(format!("cannot record the start: {e}")),
            ),
            Ok(()) => {
                let repo = PathBuf::from(repo);
                let mut options = RunOptions::new(repo.clone(), repo.join(".twinloop"));
                options.run_id = Some(run.id.clone());
                options.trigger = Some(TriggerContext {
                    kind: run.trigger_kind.clone(),
                    payload: serde_json::from_str(&run.cause).unwrap_or(Value::Null),
                });
                options.params = run_params(&run);
                options.cancel = cancel;
                options.kill_grace = self.config.kill_grace;
                options.services.clone_from(&self.config.services);
                if let Some(n) = self.config.max_parallel {
                    options.max_parallel = n;
                }
                match crate::exec::run(&spec, options).await {
                    Ok(report) => (report.status, end_reason(&report)),
                    Err(e) => (RunStatus::Failed, Some(e.to_string())),
                }
            }
        };
        self.finished(&run, state, reason).await;
    }

    /// Records the run's end, frees its slot, starts what waits and fires `pipeline:` triggers
    /// that listen for this end.
    async fn finished(
        self: &Arc<Self>,
        run: &PipelineRun,
        status: RunStatus,
        reason: Option<String>,
    ) {
        let recorded = self
            .store
            .update_pipeline_run(
                &run.id,
                &RunChange {
                    state: status.as_str().into(),
                    reason,
                    ended_ms: Some(now_ms()),
                    ..RunChange::default()
                },
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(run = %run.id, "cannot record the end of a pipeline run: {e}");
        }
        let mut state = self.state.lock().await;
        if let Some(entry) = state.pipelines.get_mut(&run.pipeline) {
            entry.active.retain(|a| a.id != run.id);
            self.drain(entry);
        }
        let listeners: Vec<(String, usize)> = state
            .pipelines
            .iter()
            .flat_map(|(name, entry)| {
                entry
                    .spec
                    .triggers
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| match t {
                        Trigger::Pipeline(p) => {
                            p.name == run.pipeline
                                && p.status.as_deref().is_none_or(|s| s == status.as_str())
                        }
                        _ => false,
                    })
                    .map(|(i, _)| (name.clone(), i))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (name, index) in listeners {
            let fire = Fire {
                index,
                dedup_key: run.id.clone(),
                kind: "pipeline",
                cause: json!({"pipeline": run.pipeline, "pipeline_run": run.id, "status": status.as_str()}),
                chain: run_chain(run),
                cursor: None,
            };
            if let Err(e) = self.fire(&mut state, &name, fire).await {
                tracing::error!(pipeline = %name, "cannot record a pipeline trigger event: {e}");
            }
        }
    }

    /// Takes one trigger event through the loop guard and the policy, and records it: with its
    /// run (started, queued, or started after canceling the running one) or as suppressed.
    async fn fire(self: &Arc<Self>, state: &mut State, name: &str, fire: Fire) -> Result<()> {
        let Some(entry) = state.pipelines.get_mut(name) else {
            return Ok(());
        };
        let now = now_ms();
        let decision = if policy::loop_guard(&entry.spec.policy, name, &fire.chain) {
            Decision::Suppress(Reason::LoopGuard)
        } else {
            policy::decide(&entry.spec.policy, &entry.load(now), now, false)
        };
        let cursor = fire.cursor.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
        let mut event = TriggerEvent {
            id: 0,
            pipeline: name.to_owned(),
            trigger_index: i64::try_from(fire.index).unwrap_or(i64::MAX),
            dedup_key: fire.dedup_key,
            outcome: "fired".into(),
            reason: None,
            run_id: None,
            at_ms: now,
        };
        if let Decision::Suppress(reason) = decision {
            event.outcome = "suppressed".into();
            event.reason = Some(reason.as_str().into());
            self.store
                .record_trigger_event(&event, None, cursor)
                .await?;
            return Ok(());
        }
        let mut chain = fire.chain;
        chain.push(name.to_owned());
        let run = new_run(entry, fire.kind, &fire.cause, &json!({}), &chain, now);
        event.run_id = Some(run.id.clone());
        if let Decision::Queue = decision {
            event.reason = Some("queued: concurrency".into());
        }
        if !self
            .store
            .record_trigger_event(&event, Some(&run), cursor)
            .await?
        {
            return Ok(());
        }
        entry.trigger_starts_ms.push(now);
        let queued = Queued {
            run,
            spec: entry.spec.clone(),
            repo: entry.version.repo.clone(),
        };
        match decision {
            Decision::Queue => entry.queue.push_back(queued),
            Decision::CancelAndStart(ids) => {
                for active in entry.active.iter_mut().filter(|a| ids.contains(&a.id)) {
                    active.canceling = true;
                    active.cancel.cancel();
                }
                self.launch(entry, queued);
            }
            _ => self.launch(entry, queued),
        }
        Ok(())
    }
}
