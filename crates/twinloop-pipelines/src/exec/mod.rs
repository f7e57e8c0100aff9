//! The engine: topological scheduling with `max_parallel` slots, the cache, retries with
//! backoff, timeouts and cancellation that end the step's whole process tree, `when`,
//! `fail_fast` and `finally`. It reports [`Event`]s as it goes and returns a [`RunReport`].
//! A step runs locally (`attempt.rs`, under the `step-exec` launcher) unless its `executor:`
//! names one of [`RunOptions::executors`], which runs it through the [`executor::Executor`]
//! trait (`remote.rs`).

mod attempt;
mod builtin;
pub mod executor;
pub(crate) mod foreach;
mod kill;
pub mod launch;
pub(crate) mod prepare;
pub(crate) mod remote;
mod step;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cache::{Cas, Execution, Index, KeyDoc};
use crate::error::Error;
use crate::record::Recorder;
use crate::resume::Resume;
use crate::spec::{Pipeline, Step};
use crate::state::{OutputRecord, RunScope, RunStatus, StepOutputs, StepState, TriggerContext};
use prepare::{Prepared, prepare};
use step::{StepEnd, StepJob};

pub use attempt::env_name;

/// Stops a run: running steps' process trees get SIGTERM (then SIGKILL), nothing new starts
/// except `finally:` steps. Cheap to clone; every clone cancels the same run.
#[derive(Clone)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Cancel {
        Cancel(Arc::new(watch::channel(false).0))
    }
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_canceled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`Cancel::cancel`] was called.
    pub async fn canceled(&self) {
        let mut receiver = self.0.subscribe();
        if receiver.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What happens during a run, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
    },
    StepStarted {
        step: String,
        attempt: u32,
    },
    /// Attempt `attempt` failed; the next starts after `delay`.
    StepRetrying {
        step: String,
        attempt: u32,
        delay: Duration,
        reason: String,
    },
    StepFinished {
        step: String,
        state: StepState,
        reason: Option<String>,
    },
    RunFinished {
        run_id: String,
        status: RunStatus,
    },
}

type Callback = dyn Fn(Event) + Send + Sync;

/// Where a run sends its [`Event`]s: a callback, or nowhere.
#[derive(Clone, Default)]
pub struct Events(Option<Arc<Callback>>);

impl Events {
    pub fn new(callback: impl Fn(Event) + Send + Sync + 'static) -> Events {
        Events(Some(Arc::new(callback)))
    }

    pub(crate) fn send(&self, event: Event) {
        if let Some(callback) = &self.0 {
            callback(event);
        }
    }
}

pub struct RunOptions {
    /// The working directory of every step; relative paths in the pipeline are under it.
    pub repo: PathBuf,
    /// Holds the store of outputs, the cache index and the runs' logs.
    pub home: PathBuf,
    /// `-p name=value` overrides.
    pub params: Vec<(String, String)>,
    pub no_cache: bool,
    /// Steps re-executed whatever the cache holds, with everything downstream of them.
    pub refresh: Vec<String>,
    pub max_parallel: usize,
    /// Rehash cached outputs before reusing them.
    pub verify: bool,
    /// A run of this pipeline whose `SUCCEEDED` and `CACHED` steps are reused whatever the cache
    /// settings.
    pub resume: Option<String>,
    /// Between SIGTERM and SIGKILL when a step times out or the run is canceled.
    pub kill_grace: Duration,
    pub cancel: Cancel,
    pub events: Events,
    /// The run's id when the caller must know it before the run starts (a server records the
    /// run first); a new one otherwise.
    pub run_id: Option<String>,
    /// What started the run, for `trigger.kind` and `trigger.payload.*`.
    pub trigger: Option<TriggerContext>,
    /// The store, artifacts and deployments built-ins use and the run is recorded in.
    pub services: Option<crate::services::Services>,
    /// The named executors (`twinloop.yaml`) steps with `executor:` run on; a step naming one
    /// that is not here fails the run before anything starts.
    pub executors: executor::Executors,
}

impl RunOptions {
    /// The defaults: one slot per core, 10 s of grace, the cache on.
    pub fn new(repo: PathBuf, home: PathBuf) -> RunOptions {
        RunOptions {
            repo,
            home,
            params: Vec::new(),
            no_cache: false,
            refresh: Vec::new(),
            max_parallel: std::thread::available_parallelism().map_or(1, usize::from),
            verify: false,
            resume: None,
            kill_grace: Duration::from_secs(10),
            cancel: Cancel::default(),
            events: Events::default(),
            run_id: None,
            trigger: None,
            services: None,
            executors: executor::Executors::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub pipeline: String,
    pub status: RunStatus,
    /// Why the run is `REJECTED`.
    pub rejected: Option<String>,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// In the pipeline's order, `finally:` steps last.
    pub steps: Vec<StepReport>,
}

impl RunReport {
    pub fn step(&self, id: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.step == id)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    pub state: StepState,
    /// Why it was skipped, failed or canceled.
    pub reason: Option<String>,
    /// The run whose execution a `CACHED` step reused.
    pub cached_from: Option<String>,
    pub key: Option<String>,
    pub attempts: Vec<AttemptReport>,
    pub outputs: BTreeMap<String, OutputRecord>,
    /// Files written to the outputs directory that no output declared; they were removed.
    pub dropped: Vec<String>,
    /// For one item of a `foreach:` step (reported as `<step>[<index>]`): its element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// A `foreach:` step's items in list order; the step's own `outputs` are theirs collected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<StepReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    pub attempt: u32,
    pub state: StepState,
    pub exit_code: Option<i32>,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// What a run and its `plan` both start from, so the two cannot disagree: the resolved params,
/// the cache index, the run `--resume` names, and the steps `--refresh` re-executes (with
/// everything downstream of them).
pub(crate) struct Start {
    pub params: BTreeMap<String, Value>,
    pub index: Index,
    pub resume: Option<Resume>,
    pub refresh: BTreeSet<String>,
}

impl Start {
    pub(crate) fn new(
        pipeline: &Pipeline,
        home: &Path,
        params: &[(String, String)],
        refresh: &[String],
        resume: Option<&str>,
    ) -> Result<Start, Error> {
        let params = pipeline.resolve_params(params)?;
        if let Some(id) = refresh.iter().find(|id| pipeline.step(id).is_none()) {
            return Err(Error::UnknownStep(id.clone()));
        }
        let index = Index::open(home).map_err(|e| {
            Error::io(
                format!("cannot read the cache index under {}", home.display()),
                e,
            )
        })?;
        let resume = resume
            .map(|r| Resume::load(&index, home, &pipeline.name, r))
            .transpose()?;
        Ok(Start {
            params,
            index,
            resume,
            refresh: downstream_of(pipeline, refresh),
        })
    }
}

/// Runs the pipeline to its end (success, failure or cancel) and reports every step.
pub async fn run(pipeline: &Pipeline, options: RunOptions) -> Result<RunReport, Error> {
    if let Some(step) = pipeline.steps.iter().find(|s| {
        s.executor
            .as_ref()
            .is_some_and(|e| !options.executors.contains_key(e))
    }) {
        return Err(Error::UnknownExecutor {
            step: step.id.clone(),
            executor: step.executor.clone().unwrap_or_default(),
        });
    }
    let Start {
        params,
        index,
        resume,
        refresh,
    } = Start::new(
        pipeline,
        &options.home,
        &options.params,
        &options.refresh,
        options.resume.as_deref(),
    )?;
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(twinloop_core::ids::new_run_id);
    let cause = options
        .trigger
        .as_ref()
        .map(|t| serde_json::json!({"kind": t.kind, "payload": t.payload}));
    let recorder = Recorder::start(
        options.services.as_ref(),
        &pipeline.name,
        &run_id,
        &params,
        cause.as_ref(),
    )
    .await;
    let mut runner = Runner {
        recorder,
        reused: Vec::new(),
        resume,
        refresh,
        cas: Cas::new(&options.home),
        pipeline,
        run_dir: options.home.join("runs").join(&run_id),
        run_id,
        options,
        params,
        index,
        states: BTreeMap::new(),
        outputs: BTreeMap::new(),
        reports: BTreeMap::new(),
        fanouts: BTreeMap::new(),
    };
    runner.go().await
}

/// Why a step's result may not be reused in this run, if it may not.
pub(crate) fn cache_off(step: &Step, no_cache: bool, refresh: &BTreeSet<String>) -> Option<String> {
    if no_cache {
        Some("--no-cache".into())
    } else if refresh.contains(&step.id) {
        Some("--refresh".into())
    } else if step.cacheable() {
        None
    } else if let Some(uses) = step.uses.as_ref().filter(|u| !u.builtin.cacheable()) {
        Some(format!(
            "{} is never cached: it acts outside its outputs or reads a moving baseline",
            uses.builtin
        ))
    } else if step.cache.mode == crate::spec::CacheMode::Off {
        Some("cache: false".into())
    } else {
        Some("cache off: a source step (no inputs) may read anything".into())
    }
}

/// `roots` and every step that depends on them, directly or not.
pub(crate) fn downstream_of(pipeline: &Pipeline, roots: &[String]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = roots.iter().cloned().collect();
    loop {
        let before = out.len();
        for step in &pipeline.steps {
            if step.upstream().iter().any(|u| out.contains(u)) {
                out.insert(step.id.clone());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

struct Runner<'a> {
    pipeline: &'a Pipeline,
    recorder: Recorder,
    /// Steps reused since the last flush: (step, run reused from, outputs), recorded in lineage
    /// outside the synchronous scheduling pass.
    reused: Vec<(String, String, StepOutputs)>,
    options: RunOptions,
    run_id: String,
    run_dir: PathBuf,
    params: BTreeMap<String, Value>,
    cas: Cas,
    index: Index,
    resume: Option<Resume>,
    refresh: BTreeSet<String>,
    states: BTreeMap<String, StepState>,
    outputs: BTreeMap<String, BTreeMap<String, OutputRecord>>,
    reports: BTreeMap<String, StepReport>,
    /// `foreach:` steps whose items are under way.
    fanouts: BTreeMap<String, Fanout>,
}

/// The executing tasks, each ending with the step's id, its item's index for a `foreach:`
/// step, what it ran with and its end.
type Running = JoinSet<(String, Option<usize>, Box<Prepared>, StepEnd)>;

/// What to do with a step whose upstream steps have finished.
enum Decision {
    Done(StepReport),
    /// A cache hit or a step of the resumed run: reported `CACHED` and recorded as such.
    Reuse(StepReport, Box<Execution>),
    Execute(Box<Prepared>),
    /// A `foreach:` step: its items, some decided already, the rest to execute.
    Fan(Fanout),
}

/// A `foreach:` step under way. Its items take the run's slots like steps, at most `limit` at
/// once; the step ends when every item has.
struct Fanout {
    /// Items waiting for a slot, in list order.
    queue: VecDeque<(usize, Box<Prepared>)>,
    running: usize,
    limit: usize,
    /// Items reused from the cache or the resumed run (by index), to record when the fan-out
    /// starts.
    reused: Vec<(usize, StepReport, Box<Execution>)>,
    /// Ended items by index.
    done: BTreeMap<usize, StepReport>,
}

impl Runner<'_> {
    async fn go(&mut self) -> Result<RunReport, Error> {
        let started_ms = twinloop_core::time::now_ms();
        std::fs::create_dir_all(&self.run_dir)
            .map_err(|e| Error::io(format!("cannot create {}", self.run_dir.display()), e))?;
        self.options.events.send(Event::RunStarted {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.name.clone(),
        });
        let order = crate::validate::order(self.pipeline).unwrap_or_default();
        let (main, finally): (Vec<&Step>, Vec<&Step>) = order.into_iter().partition(|s| !s.finally);
        let cancel = self.options.cancel.clone();
        self.phase(main, None, &cancel).await?;
        let mut status = self.status();
        let rejected = self.rejection();
        if status == RunStatus::Succeeded && rejected.is_some() {
            status = RunStatus::Rejected;
        }
        if !finally.is_empty() {
            // Finally steps run even after a cancel: they are the cleanup.
            self.phase(finally, Some(status), &Cancel::default())
                .await?;
            if matches!(status, RunStatus::Succeeded | RunStatus::Rejected)
                && self.status() != RunStatus::Succeeded
            {
                status = RunStatus::Failed;
            }
        }
        self.recorder.finish(status).await;
        self.options.events.send(Event::RunFinished {
            run_id: self.run_id.clone(),
            status,
        });
        let steps = self
            .pipeline
            .steps
            .iter()
            .filter_map(|s| self.reports.remove(&s.id))
            .collect();
        Ok(RunReport {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.name.clone(),
            status,
            rejected: rejected.filter(|_| status == RunStatus::Rejected),
            started_ms,
            ended_ms: twinloop_core::time::now_ms(),
            steps,
        })
    }

    /// Why the run is rejected, if a gate or canary step said so.
    fn rejection(&self) -> Option<String> {
        self.pipeline.steps.iter().find_map(|step| {
            let uses = step.uses.as_ref()?;
            self.outputs
                .get(&step.id)
                .and_then(|outputs| uses.builtin.rejection(outputs))
                .map(|why| format!("step {}: {why}", step.id))
        })
    }

    fn status(&self) -> RunStatus {
        let mut status = RunStatus::Succeeded;
        for step in &self.pipeline.steps {
            match self.states.get(&step.id) {
                Some(StepState::Canceled) => return RunStatus::Canceled,
                Some(StepState::Failed | StepState::TimedOut) if !step.continue_on_error => {
                    status = RunStatus::Failed;
                }
                _ => {}
            }
        }
        if self.options.cancel.is_canceled() {
            RunStatus::Canceled
        } else {
            status
        }
    }

    /// Runs `pending` (main or `finally:` steps) until every one has an end state.
    async fn phase(
        &mut self,
        mut pending: Vec<&Step>,
        run_status: Option<RunStatus>,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        let mut running: Running = JoinSet::new();
        let mut stop: Option<(StepState, String)> = None;
        loop {
            if stop.is_none() && cancel.is_canceled() {
                stop = Some((StepState::Canceled, "the run was canceled".into()));
            }
            self.start_ready(
                &mut pending,
                &mut running,
                stop.as_ref(),
                run_status,
                cancel,
            )?;
            for (step, from, outputs) in std::mem::take(&mut self.reused) {
                self.recorder.reused(&step, &from, &outputs).await;
            }
            if running.is_empty() {
                // Pending steps are left only when their upstream is outside this phase and never
                // ran; validation forbids it, so end rather than wait forever.
                for step in pending.drain(..) {
                    let reason = Some("upstream never ran".into());
                    self.finish(step_report(step, StepState::Skipped, reason));
                }
                return Ok(());
            }
            tokio::select! {
                joined = running.join_next() => {
                    let Some(joined) = joined else { continue };
                    let (id, item, prepared, end) = joined
                        .map_err(|e| Error::io("a step task failed", std::io::Error::other(e)))?;
                    if stop.is_none() && self.stops_the_run(&id, end.state) {
                        let name = item.map_or_else(|| id.clone(), |i| foreach::item_name(&id, i));
                        let reason = format!("not started: step {name} {} (fail_fast)", end.state);
                        stop = Some((StepState::Skipped, reason));
                    }
                    self.executed(&id, item, &prepared, end)?;
                }
                () = cancel.canceled(), if stop.as_ref().is_none_or(|(s, _)| *s != StepState::Canceled) => {
                    stop = Some((StepState::Canceled, "the run was canceled".into()));
                }
            }
        }
    }

    /// Decides every pending step whose upstream steps have ended, and starts executions while
    /// slots are free; after a stop, ends them with the stop's state instead.
    fn start_ready(
        &mut self,
        pending: &mut Vec<&Step>,
        running: &mut Running,
        stop: Option<&(StepState, String)>,
        run_status: Option<RunStatus>,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        match stop {
            Some((state, reason)) => self.drain(*state, reason)?,
            None => self.fill(running, cancel),
        }
        let mut i = 0;
        while i < pending.len() {
            let step = pending[i];
            let ready = step.upstream().iter().all(|u| {
                self.states
                    .get(u)
                    .is_some_and(|s| !matches!(s, StepState::Running | StepState::Retrying))
            });
            if !ready {
                i += 1;
                continue;
            }
            if let Some((state, reason)) = stop {
                pending.remove(i);
                self.finish(step_report(step, *state, Some(reason.clone())));
                continue;
            }
            if running.len() >= self.options.max_parallel.max(1) {
                return Ok(());
            }
            pending.remove(i);
            match self.decide(step, run_status) {
                Decision::Done(report) => self.finish(report),
                Decision::Reuse(report, execution) => {
                    self.record_reuse(*execution)?;
                    self.finish(report);
                }
                Decision::Execute(prepared) => {
                    self.states.insert(step.id.clone(), StepState::Running);
                    self.spawn(step, None, prepared, running, cancel);
                }
                Decision::Fan(mut fanout) => {
                    for (index, report, execution) in std::mem::take(&mut fanout.reused) {
                        self.record_reuse(*execution)?;
                        self.item_ended(&mut fanout, index, report);
                    }
                    self.states.insert(step.id.clone(), StepState::Running);
                    self.fanouts.insert(step.id.clone(), fanout);
                    self.fill(running, cancel);
                    self.complete_if_done(&step.id)?;
                }
            }
        }
        Ok(())
    }

    /// Starts queued items of `foreach:` steps while the run's slots and each step's
    /// `max_parallel` allow, steps in file order, items in list order.
    fn fill(&mut self, running: &mut Running, cancel: &Cancel) {
        let slots = self.options.max_parallel.max(1);
        let pipeline = self.pipeline;
        for step in &pipeline.steps {
            while running.len() < slots {
                let Some(fanout) = self.fanouts.get_mut(&step.id) else {
                    break;
                };
                if fanout.running >= fanout.limit {
                    break;
                }
                let Some((index, prepared)) = fanout.queue.pop_front() else {
                    break;
                };
                fanout.running += 1;
                self.spawn(step, Some(index), prepared, running, cancel);
            }
        }
    }

    /// After a stop, ends the items no slot was given with the stop's state, and the
    /// `foreach:` steps that have no item left running.
    fn drain(&mut self, state: StepState, reason: &str) -> Result<(), Error> {
        let ids: Vec<String> = self.fanouts.keys().cloned().collect();
        for id in ids {
            let Some(mut fanout) = self.fanouts.remove(&id) else {
                continue;
            };
            for (index, prepared) in std::mem::take(&mut fanout.queue) {
                let mut report = item_report(&id, index, prepared.item.clone());
                report.state = state;
                report.reason = Some(reason.to_owned());
                self.item_ended(&mut fanout, index, report);
            }
            self.fanouts.insert(id.clone(), fanout);
            self.complete_if_done(&id)?;
        }
        Ok(())
    }

    /// Reports an item's end and keeps it for its step.
    fn item_ended(&self, fanout: &mut Fanout, index: usize, report: StepReport) {
        self.options.events.send(Event::StepFinished {
            step: report.step.clone(),
            state: report.state,
            reason: report.reason.clone(),
        });
        fanout.done.insert(index, report);
    }

    /// Ends a `foreach:` step once none of its items is queued or running: the worst of their
    /// states, and their outputs collected in item order.
    fn complete_if_done(&mut self, id: &str) -> Result<(), Error> {
        let done = self
            .fanouts
            .get(id)
            .is_some_and(|f| f.queue.is_empty() && f.running == 0);
        if !done {
            return Ok(());
        }
        let Some(fanout) = self.fanouts.remove(id) else {
            return Ok(());
        };
        let pipeline = self.pipeline;
        let Some(step) = pipeline.step(id) else {
            return Ok(());
        };
        let items: Vec<StepReport> = fanout.done.into_values().collect();
        let mut report = step_report(step, foreach::worst(items.iter().map(|i| i.state)), None);
        if let Some(bad) = items.iter().find(|i| !i.state.ok()) {
            let why = bad.reason.clone().unwrap_or_else(|| bad.state.to_string());
            report.reason = Some(format!("item {}: {why}", bad.step));
        } else {
            let outputs: Vec<&StepOutputs> = items.iter().map(|i| &i.outputs).collect();
            match foreach::collect(step, &outputs, &self.cas).and_then(|c| {
                c.store(&self.cas)
                    .map_err(|e| format!("cannot store the collected outputs: {e}"))
            }) {
                Ok(outputs) => report.outputs = outputs,
                Err(e) => {
                    report.state = StepState::Failed;
                    report.reason = Some(e);
                }
            }
        }
        if report.state == StepState::Cached {
            report.cached_from = items.first().and_then(|i| i.cached_from.clone());
        }
        report.items = items;
        self.finish(report);
        Ok(())
    }

    /// Starts the step, or one item of it (its logs under `<step>/<index>/`).
    fn spawn(
        &self,
        step: &Step,
        item: Option<usize>,
        prepared: Box<Prepared>,
        running: &mut Running,
        cancel: &Cancel,
    ) {
        let (name, dir) = match item {
            Some(index) => (
                foreach::item_name(&step.id, index),
                self.run_dir.join(&step.id).join(index.to_string()),
            ),
            None => (step.id.clone(), self.run_dir.join(&step.id)),
        };
        let reattach = self
            .resume
            .as_ref()
            .and_then(|r| r.running(&name, &prepared.key))
            .cloned();
        let job = StepJob {
            step: step.clone(),
            name,
            item,
            pipeline: self.pipeline.name.clone(),
            run_id: self.run_id.clone(),
            dir,
            repo: self.options.repo.clone(),
            cas: self.cas.clone(),
            kill_grace: self.options.kill_grace,
            cancel: cancel.clone(),
            events: self.options.events.clone(),
            services: self.options.services.clone(),
            recorder: self.recorder.clone(),
            trigger: self.options.trigger.clone(),
            executors: self.options.executors.clone(),
            reattach,
        };
        running.spawn(async move {
            let end = job.run(&prepared).await;
            (job.step.id, item, prepared, end)
        });
    }

    /// Whether a step that ended in `state` stops scheduling (`fail_fast`).
    fn stops_the_run(&self, id: &str, state: StepState) -> bool {
        matches!(state, StepState::Failed | StepState::TimedOut)
            && self.pipeline.fail_fast
            && self.pipeline.step(id).is_some_and(|s| !s.continue_on_error)
    }

    fn decide(&self, step: &Step, run_status: Option<RunStatus>) -> Decision {
        for up in step.upstream() {
            let Some(up_step) = self.pipeline.step(&up) else {
                continue;
            };
            // A finally step runs whatever happened to the steps it reads; it only waits for them.
            if step.finally && !up_step.finally {
                continue;
            }
            let state = self.states.get(&up).copied().unwrap_or(StepState::Pending);
            if !state.ok() {
                return Decision::Done(step_report(
                    step,
                    StepState::Skipped,
                    Some(format!("upstream step {up} is {state}")),
                ));
            }
        }
        let scope = self.scope(run_status, None);
        if let Some(when) = &step.when
            && !crate::expr::truthy(&when.eval(&scope))
        {
            return Decision::Done(step_report(
                step,
                StepState::Skipped,
                Some(format!("when is false: {}", when.source)),
            ));
        }
        if let Some(foreach) = &step.foreach {
            return match foreach::list(foreach, &scope) {
                Ok(items) => Decision::Fan(self.fan_out(step, foreach, items, run_status)),
                Err(e) => Decision::Done(step_report(step, StepState::Failed, Some(e))),
            };
        }
        if let Some(resume) = &self.resume
            && let Some(previous) = resume.reusable(&step.id, &self.cas, self.options.verify)
        {
            let (mut report, execution) =
                self.reuse(&step.id, previous, &resume.run_id, previous.doc.clone());
            report.reason = resume.note(&step.id);
            return Decision::Reuse(report, execution);
        }
        self.prepare_or_reuse(step, &step.id, &scope)
    }

    /// What expressions read now; `item` for one item of a `foreach:` step.
    fn scope<'s>(&'s self, run_status: Option<RunStatus>, item: Option<&'s Value>) -> RunScope<'s> {
        RunScope {
            run_id: &self.run_id,
            run_status,
            params: &self.params,
            states: &self.states,
            outputs: &self.outputs,
            trigger: self.options.trigger.as_ref(),
            item,
        }
    }

    /// The step (or item, named `name`): prepared to execute, a cache hit to reuse, or
    /// `FAILED` when it cannot be prepared.
    fn prepare_or_reuse(&self, step: &Step, name: &str, scope: &RunScope<'_>) -> Decision {
        let prepared = match prepare(step, &self.options.repo, scope) {
            Ok(p) => p,
            Err(e) => return Decision::Done(named_report(name, StepState::Failed, Some(e))),
        };
        if self.cache_enabled(step) {
            let max_age = step.cache.max_age;
            let now = twinloop_core::time::now_ms();
            if let Some(hit) =
                self.index
                    .hit(&prepared.key, max_age, &self.cas, self.options.verify, now)
            {
                let (report, execution) = self.reuse(name, hit, &hit.run_id, prepared.doc);
                return Decision::Reuse(report, execution);
            }
        }
        Decision::Execute(Box::new(prepared))
    }

    /// Each item of a `foreach:` step decided: reused from the resumed run (when it ran with
    /// the same element) or the cache, failed to prepare, or queued to execute.
    fn fan_out(
        &self,
        step: &Step,
        foreach: &crate::spec::Foreach,
        items: Vec<Value>,
        run_status: Option<RunStatus>,
    ) -> Fanout {
        let mut fanout = Fanout {
            queue: VecDeque::new(),
            running: 0,
            limit: foreach.max_parallel.unwrap_or(usize::MAX),
            reused: Vec::new(),
            done: BTreeMap::new(),
        };
        for (index, item) in items.into_iter().enumerate() {
            let name = foreach::item_name(&step.id, index);
            if let Some(resume) = &self.resume
                && let Some(previous) = resume.reusable(&name, &self.cas, self.options.verify)
                && foreach::same_item(previous, &item)
            {
                let (mut report, execution) =
                    self.reuse(&name, previous, &resume.run_id, previous.doc.clone());
                report.item = Some(item);
                fanout.reused.push((index, report, execution));
                continue;
            }
            let scope = self.scope(run_status, Some(&item));
            match self.prepare_or_reuse(step, &name, &scope) {
                Decision::Execute(prepared) => fanout.queue.push_back((index, prepared)),
                Decision::Reuse(mut report, execution) => {
                    report.item = Some(item);
                    fanout.reused.push((index, report, execution));
                }
                Decision::Done(mut report) => {
                    report.item = Some(item);
                    fanout.done.insert(index, report);
                }
                Decision::Fan(_) => {}
            }
        }
        fanout
    }

    /// Reuses `previous`, an execution of run `from`, as this run's `CACHED` step or item
    /// (`name`).
    fn reuse(
        &self,
        name: &str,
        previous: &Execution,
        from: &str,
        doc: KeyDoc,
    ) -> (StepReport, Box<Execution>) {
        let mut report = named_report(name, StepState::Cached, None);
        report.cached_from = Some(from.to_owned());
        report.key = Some(previous.key.clone());
        report.outputs = previous.outputs.clone();
        let execution = Execution {
            pipeline: self.pipeline.name.clone(),
            step: name.to_owned(),
            run_id: self.run_id.clone(),
            key: previous.key.clone(),
            doc,
            state: StepState::Cached,
            finished_ms: twinloop_core::time::now_ms(),
            outputs: previous.outputs.clone(),
            cached_from: Some(from.to_owned()),
        };
        (report, Box::new(execution))
    }

    /// Records a reused step or item in the index, and notes it for lineage.
    fn record_reuse(&mut self, execution: Execution) -> Result<(), Error> {
        if let Some(from) = &execution.cached_from {
            let note = (
                execution.step.clone(),
                from.clone(),
                execution.outputs.clone(),
            );
            self.reused.push(note);
        }
        self.record(execution)
    }

    fn record(&mut self, execution: Execution) -> Result<(), Error> {
        self.index
            .record(execution)
            .map_err(|e| Error::io("cannot write the cache index", e))
    }

    fn cache_enabled(&self, step: &Step) -> bool {
        cache_off(step, self.options.no_cache, &self.refresh).is_none()
    }

    fn finish(&mut self, report: StepReport) {
        self.options.events.send(Event::StepFinished {
            step: report.step.clone(),
            state: report.state,
            reason: report.reason.clone(),
        });
        self.states.insert(report.step.clone(), report.state);
        if report.state.ok() {
            self.outputs
                .insert(report.step.clone(), report.outputs.clone());
        }
        self.reports.insert(report.step.clone(), report);
    }

    /// Records an executed step or item: in the report and, unless canceled, in the cache
    /// index; the last item of a `foreach:` step ends the step.
    fn executed(
        &mut self,
        id: &str,
        item: Option<usize>,
        prepared: &Prepared,
        end: StepEnd,
    ) -> Result<(), Error> {
        let name = item.map_or_else(|| id.to_owned(), |i| foreach::item_name(id, i));
        if end.state != StepState::Canceled {
            self.record(Execution {
                pipeline: self.pipeline.name.clone(),
                step: name.clone(),
                run_id: self.run_id.clone(),
                key: prepared.key.clone(),
                doc: prepared.doc.clone(),
                state: end.state,
                finished_ms: twinloop_core::time::now_ms(),
                outputs: end.outputs.clone(),
                cached_from: None,
            })?;
        }
        let report = StepReport {
            step: name,
            state: end.state,
            reason: end.reason,
            cached_from: None,
            key: Some(prepared.key.clone()),
            attempts: end.attempts,
            outputs: end.outputs,
            dropped: end.dropped,
            item: prepared.item.clone(),
            items: Vec::new(),
        };
        if item.is_none() {
            self.finish(report);
            return Ok(());
        }
        let Some(mut fanout) = self.fanouts.remove(id) else {
            return Ok(());
        };
        fanout.running = fanout.running.saturating_sub(1);
        self.item_ended(&mut fanout, item.unwrap_or_default(), report);
        self.fanouts.insert(id.to_owned(), fanout);
        self.complete_if_done(id)
    }
}

fn step_report(step: &Step, state: StepState, reason: Option<String>) -> StepReport {
    named_report(&step.id, state, reason)
}

fn named_report(name: &str, state: StepState, reason: Option<String>) -> StepReport {
    StepReport {
        step: name.to_owned(),
        state,
        reason,
        cached_from: None,
        key: None,
        attempts: Vec::new(),
        outputs: BTreeMap::new(),
        dropped: Vec::new(),
        item: None,
        items: Vec::new(),
    }
}

/// The report of item `index` of step `id`, before it ends.
fn item_report(id: &str, index: usize, item: Option<Value>) -> StepReport {
    let mut report = named_report(&foreach::item_name(id, index), StepState::Pending, None);
    report.item = item;
    report
}
