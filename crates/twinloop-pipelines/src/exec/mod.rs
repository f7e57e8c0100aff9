//! The local executor: topological scheduling with `max_parallel` slots, the cache, retries with
//! backoff, timeouts and cancellation that end the step's whole process tree, `when`,
//! `fail_fast` and `finally`. It reports [`Event`]s as it goes and returns a [`RunReport`].

mod attempt;
mod builtin;
mod kill;
pub(crate) mod prepare;
mod step;

use std::collections::{BTreeMap, BTreeSet};
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
            .map(|r| Resume::load(&index, &pipeline.name, r))
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
}

/// The executing steps' tasks, each ending with the step's id, what it ran with and its end.
type Running = JoinSet<(String, Box<Prepared>, StepEnd)>;

/// What to do with a step whose upstream steps have finished.
enum Decision {
    Done(StepReport),
    /// A cache hit or a step of the resumed run: reported `CACHED` and recorded as such.
    Reuse(StepReport, Box<Execution>),
    Execute(Box<Prepared>),
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
                    let (id, prepared, end) = joined
                        .map_err(|e| Error::io("a step task failed", std::io::Error::other(e)))?;
                    if stop.is_none() && self.stops_the_run(&id, end.state) {
                        let reason = format!("not started: step {id} {} (fail_fast)", end.state);
                        stop = Some((StepState::Skipped, reason));
                    }
                    self.executed(&id, &prepared, end)?;
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
                    if let Some(from) = &execution.cached_from {
                        let note = (step.id.clone(), from.clone(), execution.outputs.clone());
                        self.reused.push(note);
                    }
                    self.record(*execution)?;
                    self.finish(report);
                }
                Decision::Execute(prepared) => self.spawn(step, prepared, running, cancel),
            }
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        step: &Step,
        prepared: Box<Prepared>,
        running: &mut Running,
        cancel: &Cancel,
    ) {
        self.states.insert(step.id.clone(), StepState::Running);
        let job = StepJob {
            step: step.clone(),
            pipeline: self.pipeline.name.clone(),
            run_id: self.run_id.clone(),
            dir: self.run_dir.join(&step.id),
            repo: self.options.repo.clone(),
            cas: self.cas.clone(),
            kill_grace: self.options.kill_grace,
            cancel: cancel.clone(),
            events: self.options.events.clone(),
            services: self.options.services.clone(),
            recorder: self.recorder.clone(),
        };
        running.spawn(async move {
            let end = job.run(&prepared).await;
            (job.step.id, prepared, end)
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
        let scope = RunScope {
            run_id: &self.run_id,
            run_status,
            params: &self.params,
            states: &self.states,
            outputs: &self.outputs,
            trigger: self.options.trigger.as_ref(),
        };
        if let Some(when) = &step.when
            && !crate::expr::truthy(&when.eval(&scope))
        {
            return Decision::Done(step_report(
                step,
                StepState::Skipped,
                Some(format!("when is false: {}", when.source)),
            ));
        }
        if let Some(resume) = &self.resume
            && let Some(previous) = resume.reusable(&step.id, &self.cas, self.options.verify)
        {
            return self.reuse(step, previous, &resume.run_id, previous.doc.clone());
        }
        let prepared = match prepare(step, &self.options.repo, &scope) {
            Ok(p) => p,
            Err(e) => return Decision::Done(step_report(step, StepState::Failed, Some(e))),
        };
        if self.cache_enabled(step) {
            let max_age = step.cache.max_age;
            let now = twinloop_core::time::now_ms();
            if let Some(hit) =
                self.index
                    .hit(&prepared.key, max_age, &self.cas, self.options.verify, now)
            {
                return self.reuse(step, hit, &hit.run_id, prepared.doc);
            }
        }
        Decision::Execute(Box::new(prepared))
    }

    /// Reuses `previous`, an execution of run `from`, as this run's `CACHED` step.
    fn reuse(&self, step: &Step, previous: &Execution, from: &str, doc: KeyDoc) -> Decision {
        let mut report = step_report(step, StepState::Cached, None);
        report.cached_from = Some(from.to_owned());
        report.key = Some(previous.key.clone());
        report.outputs = previous.outputs.clone();
        let execution = Execution {
            pipeline: self.pipeline.name.clone(),
            step: step.id.clone(),
            run_id: self.run_id.clone(),
            key: previous.key.clone(),
            doc,
            state: StepState::Cached,
            finished_ms: twinloop_core::time::now_ms(),
            outputs: previous.outputs.clone(),
            cached_from: Some(from.to_owned()),
        };
        Decision::Reuse(report, Box::new(execution))
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

    /// Records an executed step: in the report and, unless canceled, in the cache index.
    fn executed(&mut self, id: &str, prepared: &Prepared, end: StepEnd) -> Result<(), Error> {
        if end.state != StepState::Canceled {
            self.record(Execution {
                pipeline: self.pipeline.name.clone(),
                step: id.to_owned(),
                run_id: self.run_id.clone(),
                key: prepared.key.clone(),
                doc: prepared.doc.clone(),
                state: end.state,
                finished_ms: twinloop_core::time::now_ms(),
                outputs: end.outputs.clone(),
                cached_from: None,
            })?;
        }
        self.finish(StepReport {
            step: id.to_owned(),
            state: end.state,
            reason: end.reason,
            cached_from: None,
            key: Some(prepared.key.clone()),
            attempts: end.attempts,
            outputs: end.outputs,
            dropped: end.dropped,
        });
        Ok(())
    }
}

fn step_report(step: &Step, state: StepState, reason: Option<String>) -> StepReport {
    StepReport {
        step: step.id.clone(),
        state,
        reason,
        cached_from: None,
        key: None,
        attempts: Vec::new(),
        outputs: BTreeMap::new(),
        dropped: Vec::new(),
    }
}
