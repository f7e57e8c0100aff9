//! The scheduler of `twinloop server`: registered pipelines (`apply`), their runs (manual or
//! started by a trigger) and the triggers themselves. Sources are polled (`sources.rs`); every
//! trigger event goes through the policy (`policy.rs`) and is recorded — fired with its run in
//! one transaction, or suppressed with the reason, or missed. Runs execute through
//! [`crate::exec::run`] with the spec text of the version they were started for, so applying a
//! new version never changes a run under way.
//!
//! Among replicas on one database, the holder of the `pipelines` lease ([`Config::lease`]) polls
//! the triggers and settles what dead replicas left; every replica executes the runs started
//! through it (manual runs, the runs its triggers fired) and keeps its view of the applied
//! pipelines current. A run records its executor (the replica's own liveness lease), and only a
//! run whose executor's lease has expired is settled: `RUNNING` ones are marked `FAILED`
//! (interrupted), and with `policy.on_restart: resume` (the default) a new run continues each,
//! reusing the steps it finished (`--resume`); `QUEUED` ones are queued again, on the settler.

pub mod backlog;
mod data;
mod diff;
pub mod policy;
mod runs;
mod sources;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use twinloop_core::time::now_ms;
use twinloop_meta::StoreHandle;
use twinloop_meta::event_cursor::EventCursor;
use twinloop_meta::lease::LeaseKeeper;
use twinloop_meta::pipelines::{
    NewPipelineVersion, PipelineRun, PipelineVersion, RunChange, TriggerEvent,
};

use crate::error::Invalid;
use crate::exec::Cancel;
use crate::spec::{Pipeline, Trigger};
use crate::state::RunStatus;

pub use diff::{PlanDiff, diff};
use policy::{Decision, Load};
use runs::new_run;

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
    /// Reading or keeping a data trigger's files.
    #[error("{0}")]
    Io(String),
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
    /// Builds the executors of a run's repository (its `twinloop.yaml`); `None` runs only
    /// pipelines whose steps are all local.
    pub executors: Option<crate::exec::executor::BuildExecutors>,
    /// The lease under which one replica among those on the database polls triggers and
    /// settles runs; `None`: this scheduler is the only one, and settles at once on start.
    pub lease: Option<Arc<LeaseKeeper>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            poll: Duration::from_millis(250),
            max_parallel: None,
            kill_grace: Duration::from_secs(5),
            services: None,
            executors: None,
            lease: None,
        }
    }
}

/// The lease a server's scheduler polls triggers and settles runs under.
pub const LEASE: &str = "pipelines";

/// Every this many polls a replica rereads the applied pipelines, and the lease holder looks
/// for runs whose executor died.
const REFRESH_EVERY: u64 = 8;

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
    /// Its events are recorded as suppressed (`paused`) instead of starting runs.
    pub paused: bool,
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
    /// This process's liveness lease; its name is recorded as the executor of the runs it
    /// starts.
    executor: Arc<LeaseKeeper>,
    state: Mutex<State>,
    stop: Cancel,
    /// What the runs under way do, as it happens, numbered and the newest kept (the server
    /// streams it).
    events: backlog::Backlog,
}

/// One engine event of a run the scheduler executes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub run_id: String,
    pub pipeline: String,
    pub at_ms: i64,
    pub event: crate::exec::Event,
}

#[derive(Default)]
struct State {
    pipelines: BTreeMap<String, Entry>,
    /// Data triggers' polling state, by (pipeline, trigger index).
    watches: BTreeMap<(String, usize), data::Watch>,
    /// Registry and monitor triggers' place in their event logs, by (pipeline, cursor name):
    /// read from the stored cursor when the lease is taken, kept here so that an event
    /// committed late is still seen.
    event_cursors: BTreeMap<(String, String), EventCursor>,
    /// Stored versions that no longer parse, each reported once.
    unparsable: BTreeSet<(String, i64)>,
}

/// A registered pipeline: its newest version and its runs in this process.
struct Entry {
    version: PipelineVersion,
    spec: Arc<Pipeline>,
    active: Vec<Active>,
    queue: VecDeque<Queued>,
    /// Creation times of trigger-started runs of the last day (cooldown, max_runs_per_day).
    trigger_starts_ms: Vec<i64>,
    /// Its `RUNNING` runs that other replicas execute, oldest first, as last read from the
    /// store: the concurrency policy counts them with this replica's own.
    elsewhere: Vec<String>,
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
            elsewhere: Vec::new(),
        }
    }

    /// Its active runs on every replica, oldest first on others, then this one's (those asked
    /// to stop left out).
    fn active(&self) -> Vec<String> {
        let here = self.active.iter().filter(|a| !a.canceling).map(|a| &a.id);
        let there = self
            .elsewhere
            .iter()
            .filter(|id| !self.active.iter().any(|a| &a.id == *id));
        there.chain(here).cloned().collect()
    }

    fn load(&self, now: i64) -> Load {
        Load {
            active: self.active(),
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
        self.active().len() < max.max(1)
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

/// `data:` triggers watch local paths: a glob or an object store prefix is refused rather than
/// never firing.
fn refuse_unsupported(pipeline: &Pipeline) -> Result<()> {
    for (i, trigger) in pipeline.triggers.iter().enumerate() {
        if let Trigger::Data(d) = trigger
            && (d.path.contains("://") || d.path.contains(['*', '?', '[']))
        {
            return Err(ScheduleError::NotSupported(format!(
                "{}: triggers[{i}]: data path {:?}: only a local file or directory is supported yet",
                pipeline.file, d.path
            )));
        }
    }
    Ok(())
}

impl Inner {
    /// One turn of the polling loop; `held` is the lease token of the last turn, and the
    /// answer is this turn's. Only the holder polls triggers and settles; a new holder first
    /// rereads the pipelines and the event cursors, and settles what was left.
    async fn round(self: &Arc<Self>, round: u64, held: Option<i64>) -> Option<i64> {
        let token = match &self.config.lease {
            Some(lease) => lease.token(),
            None => Some(0),
        };
        let taken = token.is_some() && token != held;
        if taken {
            self.state.lock().await.event_cursors.clear();
        }
        if taken || round.is_multiple_of(REFRESH_EVERY) {
            if let Err(e) = self.reload().await {
                tracing::warn!("cannot read the applied pipelines: {e}");
            }
            if token.is_some()
                && let Err(e) = self.settle().await
            {
                tracing::warn!("cannot settle the runs of replicas that are gone: {e}");
            }
        }
        if token.is_some() {
            self.poll().await;
        }
        self.act_on_requests().await;
        token
    }

    /// What other replicas ask of this one's runs: a cancel requested through any replica is
    /// acted on here, and a queued run starts once runs on other replicas have left it a slot.
    async fn act_on_requests(self: &Arc<Self>) {
        let mut state = self.state.lock().await;
        let busy = state
            .pipelines
            .values()
            .any(|e| !e.active.is_empty() || !e.queue.is_empty());
        if !busy {
            return;
        }
        match self
            .store
            .pipeline_runs_to_cancel(self.executor.name())
            .await
        {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = self.cancel_here(&mut state, &id).await {
                        tracing::warn!(run = %id, "cannot cancel the pipeline run: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read the cancel requests: {e}"),
        }
        for entry in state.pipelines.values_mut() {
            if !entry.queue.is_empty() {
                self.look_elsewhere(entry).await;
                self.drain(entry);
            }
        }
    }

    /// Rereads which of the pipeline's runs other replicas are running.
    async fn look_elsewhere(&self, entry: &mut Entry) {
        let me = self.executor.name();
        match self
            .store
            .pipeline_runs(Some(&entry.version.name), Some(RUNNING), 1000)
            .await
        {
            Ok(runs) => {
                entry.elsewhere = runs
                    .into_iter()
                    .rev()
                    .filter(|r| r.executor.as_deref() != Some(me))
                    .map(|r| r.id)
                    .collect();
            }
            Err(e) => {
                tracing::warn!(pipeline = %entry.version.name, "cannot read the runs of other replicas: {e}")
            }
        }
    }

    /// Cancels run `id` if this replica has it: a queued one at once, a running one by asking
    /// it to stop (it is recorded `CANCELED` when it has). Answers whether it had it.
    async fn cancel_here(&self, state: &mut State, id: &str) -> Result<bool> {
        for entry in state.pipelines.values_mut() {
            if let Some(active) = entry.active.iter_mut().find(|a| a.id == id) {
                active.canceling = true;
                active.cancel.cancel();
                return Ok(true);
            }
            if let Some(at) = entry.queue.iter().position(|q| q.run.id == id) {
                entry.queue.remove(at);
                self.store
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
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Waits until this replica is recorded as an executor in the store: a run may name it only
    /// then, or a lease holder would take the run for a dead replica's.
    async fn live(&self) -> Result<()> {
        tokio::time::timeout(Duration::from_secs(10), self.executor.acquired())
            .await
            .map(|_| ())
            .map_err(|_| {
                ScheduleError::Store(twinloop_core::Error::unavailable(
                    "cannot record this replica as a pipeline executor in the store",
                ))
            })
    }

    /// Fails with `NotFound` unless `name` is applied (rereading the store first, in case it
    /// was applied through another replica).
    async fn known(self: &Arc<Self>, name: &str) -> Result<()> {
        if self.state.lock().await.pipelines.contains_key(name) {
            return Ok(());
        }
        self.reload().await?;
        if self.state.lock().await.pipelines.contains_key(name) {
            return Ok(());
        }
        Err(ScheduleError::NotFound(format!(
            "no pipeline named {name:?}"
        )))
    }
}

impl Scheduler {
    /// Loads the registered pipelines, settles the runs replicas that are gone left behind (at
    /// once without a lease; under one, once this replica holds it), and starts polling the
    /// triggers' sources.
    pub async fn start(store: StoreHandle, config: Config) -> Result<Scheduler> {
        let name = format!("pipeline-executor:{}", twinloop_core::ids::new_uuid());
        let executor = LeaseKeeper::start(store.clone(), &name);
        let inner = Arc::new(Inner {
            store,
            config,
            executor,
            state: Mutex::new(State::default()),
            stop: Cancel::default(),
            events: backlog::Backlog::new(now_ms(), backlog::CAPACITY),
        });
        inner.reload().await?;
        // Under a lease, settling waits for the lease and nothing here needs the executor row
        // yet: the server answers before that write (on SQLite, after a crash, it can queue
        // behind the other leases and the first checkpoint). Without one, runs are settled now.
        if inner.config.lease.is_none() {
            inner.live().await?;
            inner.settle().await?;
        }
        let polling = inner.clone();
        tokio::spawn(async move {
            // Triggers start runs that name this replica: not before it is recorded.
            tokio::select! {
                () = polling.stop.canceled() => return,
                _ = polling.executor.acquired() => {}
            }
            let mut held = None;
            for round in 1u64.. {
                tokio::select! {
                    () = polling.stop.canceled() => break,
                    () = tokio::time::sleep(polling.config.poll) => {}
                }
                held = polling.round(round, held).await;
            }
        });
        Ok(Scheduler { inner })
    }

    /// Stops polling and ends the active runs' steps, waiting up to `wait` for them. The runs
    /// stay `RUNNING` in the store: the next start finds them interrupted and resumes or fails
    /// them as `policy.on_restart` says. Queued runs stay queued.
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
        if let Some(lease) = &self.inner.config.lease {
            lease.release().await;
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
                // Nothing runs here any more: what this replica leaves is settled at once.
                self.inner.executor.release().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The events of runs from now on, or after the event `after` (those still kept first, or
    /// word that they are lost). A slow reader never slows runs: it is refilled from what is kept.
    pub fn follow(&self, after: Option<backlog::EventId>) -> backlog::Follower {
        self.inner.events.follow(after)
    }

    /// Registers `spec` (the pipeline file's text; `file` is how errors name it) as the newest
    /// version of its pipeline, run in `repo`. An unchanged spec makes no new version.
    pub async fn apply(&self, spec: &str, file: &str, repo: &str) -> Result<Applied> {
        let pipeline = crate::spec::parse(file, spec)?;
        refuse_unsupported(&pipeline)?;
        // Steps run there, on this machine: it must be a directory that exists, named whole.
        let dir = std::path::Path::new(repo);
        if !dir.is_absolute() || !dir.is_dir() {
            return Err(ScheduleError::BadRequest(format!(
                "repo {repo:?} is not an absolute path of a directory on the server's machine (hint: twinloop pipeline apply sends its --repo, made absolute)"
            )));
        }
        let config = crate::config::RepoConfig::load(dir)
            .map_err(|e| ScheduleError::BadRequest(e.to_string()))?;
        crate::spec::check_executors(&pipeline, spec, &config.names())?;
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
        inner.init_cursors(&pipeline, repo).await?;
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
        inner.known(name).await?;
        inner.live().await?;
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
            inner.executor.name(),
            "manual",
            &json!({"user": "api"}),
            &Value::Object(params),
            &[name.to_owned()],
            now,
        );
        inner.store.create_pipeline_run(&run).await?;
        inner.look_elsewhere(entry).await;
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
    /// end; it is recorded `CANCELED` when it has). A run another replica executes is asked
    /// through the store: that replica acts on it within a poll.
    pub async fn cancel(&self, id: &str) -> Result<PipelineRun> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        let here = inner.cancel_here(&mut state, id).await?;
        drop(state);
        if here || inner.store.request_pipeline_run_cancel(id).await? {
            return self.run(id).await;
        }
        let run = self.run(id).await?;
        Err(ScheduleError::Conflict(format!(
            "run {id} is {}: nothing to cancel",
            run.state
        )))
    }

    /// Pauses (or resumes) one trigger of a pipeline, or all of them when `index` is `None`.
    /// A paused trigger still reads its source: each event is recorded as suppressed (`paused`),
    /// so resuming does not replay what came meanwhile. Answers the pipeline's triggers.
    pub async fn set_paused(
        &self,
        pipeline: &str,
        index: Option<usize>,
        paused: bool,
    ) -> Result<Vec<TriggerStatus>> {
        self.inner.known(pipeline).await?;
        {
            let state = self.inner.state.lock().await;
            let entry = state.pipelines.get(pipeline).ok_or_else(|| {
                ScheduleError::NotFound(format!("no pipeline named {pipeline:?}"))
            })?;
            let count = entry.spec.triggers.len();
            if let Some(i) = index.filter(|&i| i >= count) {
                return Err(ScheduleError::NotFound(format!(
                    "pipeline {pipeline} has {count} trigger(s): no trigger {i}"
                )));
            }
            for (i, trigger) in entry.spec.triggers.iter().enumerate() {
                if index.is_none_or(|wanted| wanted == i) {
                    self.inner.set_paused(pipeline, i, trigger, paused).await?;
                }
            }
        }
        self.triggers(Some(pipeline)).await
    }

    /// The triggers of one pipeline or all: next tick, newest events.
    pub async fn triggers(&self, pipeline: Option<&str>) -> Result<Vec<TriggerStatus>> {
        if let Some(name) = pipeline {
            self.inner.known(name).await?;
        }
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
                    paused: self.inner.is_paused(name, index, trigger).await?,
                    recent,
                });
            }
        }
        Ok(out)
    }
}
