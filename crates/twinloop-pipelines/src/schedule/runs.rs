//! A run's life in the scheduler: settled when its replica is gone, taken through the policy when a
//! trigger fires, queued or launched into a slot, executed with the spec of its version, and
//! recorded when it ends (which frees the slot and may fire `pipeline:` triggers).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use twinloop_core::time::now_ms;
use twinloop_meta::pipelines::{PipelineRun, RunChange, TriggerEvent};

use super::policy::{self, Decision, Reason};
use super::{Active, Entry, Fire, Inner, QUEUED, Queued, RUNNING, Result, State, parse_version};
use crate::exec::{Cancel, RunOptions};
use crate::spec::{OnRestart, Trigger};
use crate::state::{RunStatus, StepState, TriggerContext};

/// A new run record of `entry`'s newest version, `QUEUED`.
pub(super) fn new_run(
    entry: &Entry,
    executor: &str,
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
        executor: Some(executor.to_owned()),
    }
}

/// The run that continues `interrupted` after a restart: same version, trigger, params and
/// chain; its cause says which run it resumes, and the executor reuses that run's finished steps.
fn resumed(interrupted: &PipelineRun, executor: &str, now: i64) -> PipelineRun {
    let cause = match serde_json::from_str::<Value>(&interrupted.cause) {
        Ok(Value::Object(mut map)) => {
            map.insert("resumed_from".into(), Value::String(interrupted.id.clone()));
            Value::Object(map)
        }
        Ok(other) => json!({"resumed_from": interrupted.id, "cause": other}),
        Err(_) => json!({"resumed_from": interrupted.id}),
    };
    PipelineRun {
        id: twinloop_core::ids::new_run_id(),
        state: QUEUED.into(),
        cause: cause.to_string(),
        reason: None,
        created_ms: now,
        started_ms: None,
        ended_ms: None,
        executor: Some(executor.to_owned()),
        ..interrupted.clone()
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
    if let Some(why) = &report.rejected {
        return Some(why.clone());
    }
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
    /// Brings this replica's view of the applied pipelines up to date with the store: a
    /// pipeline applied through another replica appears, a new version replaces the old one
    /// (runs under way keep the version they started with).
    pub(super) async fn reload(self: &Arc<Self>) -> Result<()> {
        let versions = self.store.pipelines().await?;
        let mut state = self.state.lock().await;
        for version in versions {
            if state
                .pipelines
                .get(&version.name)
                .is_some_and(|e| e.version.version == version.version)
            {
                continue;
            }
            let spec = match parse_version(&version) {
                Ok(spec) => Arc::new(spec),
                Err(e) => {
                    if state
                        .unparsable
                        .insert((version.name.clone(), version.version))
                    {
                        tracing::error!(
                            pipeline = %version.name,
                            "the registered pipeline no longer parses and will not be scheduled: {e}"
                        );
                    }
                    continue;
                }
            };
            if let Some(entry) = state.pipelines.get_mut(&version.name) {
                entry.version = version;
                entry.spec = spec;
                continue;
            }
            let mut entry = Entry::new(version, spec);
            let now = now_ms();
            let runs = self
                .store
                .pipeline_runs(Some(&entry.version.name), None, 1_000)
                .await?;
            entry.trigger_starts_ms = runs
                .iter()
                .filter(|r| r.trigger_kind != "manual" && now - r.created_ms < 86_400_000)
                .map(|r| r.created_ms)
                .collect();
            state.pipelines.insert(entry.version.name.clone(), entry);
        }
        Ok(())
    }

    /// Settles what replicas that are gone left (a previous server, a replica killed): their
    /// `RUNNING` runs failed (interrupted) and resumed here when the policy says so, their
    /// `QUEUED` runs queued here. A run is taken over only once its executor's lease has
    /// expired, and by one replica.
    pub(super) async fn settle(self: &Arc<Self>) -> Result<()> {
        let me = self.executor.name();
        let now = now_ms();
        let mut again = Vec::new();
        for run in self.store.orphaned_pipeline_runs(RUNNING, 10_000).await? {
            if !self.store.adopt_pipeline_run(&run.id, RUNNING, me).await? {
                continue;
            }
            let next = self.resumes(&run).await?.then(|| resumed(&run, me, now));
            let reason = match &next {
                Some(next) => format!(
                    "interrupted: the server stopped during the run; resumed as run {}",
                    next.id
                ),
                None => "interrupted: the server stopped during the run".into(),
            };
            tracing::info!(run = %run.id, pipeline = %run.pipeline, "{reason}");
            self.store
                .update_pipeline_run(
                    &run.id,
                    &RunChange {
                        state: RunStatus::Failed.as_str().into(),
                        reason: Some(reason),
                        ended_ms: Some(now),
                        ..RunChange::default()
                    },
                )
                .await?;
            if let Some(next) = next {
                self.store.create_pipeline_run(&next).await?;
                again.push(next);
            }
        }
        for run in self.store.orphaned_pipeline_runs(QUEUED, 10_000).await? {
            if self.store.adopt_pipeline_run(&run.id, QUEUED, me).await? {
                again.push(run);
            }
        }
        // The oldest first, as they were queued.
        again.sort_by_key(|r| r.created_ms);
        let mut state = self.state.lock().await;
        for run in again {
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
            self.drain(entry);
        }
        Ok(())
    }

    /// Whether the policy of the run's version says to resume it after a restart.
    async fn resumes(&self, run: &PipelineRun) -> Result<bool> {
        let version = self
            .store
            .pipeline_version(&run.pipeline, Some(run.version))
            .await?;
        Ok(version
            .and_then(|v| parse_version(&v).ok())
            .is_some_and(|spec| spec.policy.on_restart == OnRestart::Resume))
    }

    /// Starts queued runs while the pipeline has free slots.
    pub(super) fn drain(self: &Arc<Self>, entry: &mut Entry) {
        while entry.free_slot() && !self.stop.is_canceled() {
            let Some(next) = entry.queue.pop_front() else {
                break;
            };
            self.launch(entry, next);
        }
    }

    /// Takes a slot for `queued` and executes it in a task of its own.
    pub(super) fn launch(self: &Arc<Self>, entry: &mut Entry, queued: Queued) {
        let cancel = Cancel::default();
        entry.active.push(Active {
            id: queued.run.id.clone(),
            cancel: cancel.clone(),
            canceling: false,
        });
        let inner = self.clone();
        tokio::spawn(async move { inner.execute(queued, cancel).await });
    }

    pub(super) async fn execute(self: Arc<Self>, queued: Queued, cancel: Cancel) {
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
                let cause: Value = serde_json::from_str(&run.cause).unwrap_or(Value::Null);
                let resume = cause
                    .get("resumed_from")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let executors = self.executors(&repo);
                let options = |resume: Option<String>| {
                    let mut options = RunOptions::new(repo.clone(), repo.join(".twinloop"));
                    options.run_id = Some(run.id.clone());
                    options.trigger = Some(TriggerContext {
                        kind: run.trigger_kind.clone(),
                        payload: cause.clone(),
                    });
                    options.params = run_params(&run);
                    options.cancel = cancel.clone();
                    options.kill_grace = self.config.kill_grace;
                    options.services.clone_from(&self.config.services);
                    options.resume = resume;
                    options.executors = executors.clone().unwrap_or_default();
                    let (events, run_id, pipeline) =
                        (self.events.clone(), run.id.clone(), run.pipeline.clone());
                    options.events = crate::exec::Events::new(move |event| {
                        events.publish(super::RunEvent {
                            run_id: run_id.clone(),
                            pipeline: pipeline.clone(),
                            at_ms: now_ms(),
                            event,
                        });
                    });
                    if let Some(n) = self.config.max_parallel {
                        options.max_parallel = n;
                    }
                    options
                };
                let mut result = match &executors {
                    Err(e) => Err(crate::Error::Executors(e.clone())),
                    Ok(_) => crate::exec::run(&spec, options(resume.clone())).await,
                };
                // An interrupted run that finished no step left nothing to reuse: start afresh.
                if resume.is_some() && matches!(result, Err(crate::Error::UnknownRun(_))) {
                    result = crate::exec::run(&spec, options(None)).await;
                }
                match result {
                    Ok(report) => (report.status, end_reason(&report)),
                    Err(e) => (RunStatus::Failed, Some(e.to_string())),
                }
            }
        };
        self.finished(&run, state, reason).await;
    }

    /// The executors of the run's repository, built from its `twinloop.yaml` as it is now.
    fn executors(
        &self,
        repo: &std::path::Path,
    ) -> std::result::Result<crate::exec::executor::Executors, String> {
        let config = crate::config::RepoConfig::load(repo).map_err(|e| e.to_string())?;
        if config.executors.is_empty() {
            return Ok(crate::exec::executor::Executors::new());
        }
        let Some(build) = &self.config.executors else {
            return Err(
                "this server runs local steps only: it was started without executors".into(),
            );
        };
        build(&config).map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Records the run's end, frees its slot, starts what waits and fires `pipeline:` triggers
    /// that listen for this end.
    pub(super) async fn finished(
        self: &Arc<Self>,
        run: &PipelineRun,
        status: RunStatus,
        reason: Option<String>,
    ) {
        if status == RunStatus::Canceled && self.stop.is_canceled() {
            let mut state = self.state.lock().await;
            if let Some(entry) = state.pipelines.get_mut(&run.pipeline)
                && entry.active.iter().any(|a| a.id == run.id && !a.canceling)
            {
                // Ended by the server stopping, not by a user: it stays RUNNING in the store, so
                // the next start treats it as interrupted and `policy.on_restart` decides.
                entry.active.retain(|a| a.id != run.id);
                return;
            }
        }
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
            self.look_elsewhere(entry).await;
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
    pub(super) async fn fire(
        self: &Arc<Self>,
        state: &mut State,
        name: &str,
        fire: Fire,
    ) -> Result<()> {
        let Some(entry) = state.pipelines.get_mut(name) else {
            return Ok(());
        };
        let now = now_ms();
        let paused = match entry.spec.triggers.get(fire.index) {
            Some(trigger) => self.is_paused(name, fire.index, trigger).await?,
            None => false,
        };
        let decision = if paused {
            Decision::Suppress(Reason::Paused)
        } else if policy::loop_guard(&entry.spec.policy, name, &fire.chain) {
            Decision::Suppress(Reason::LoopGuard)
        } else {
            self.look_elsewhere(entry).await;
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
        let executor = self.executor.name();
        let run = new_run(
            entry,
            executor,
            fire.kind,
            &fire.cause,
            &json!({}),
            &chain,
            now,
        );
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
        // Only the last day counts (cooldown, max_runs_per_day): older starts are let go.
        entry.trigger_starts_ms.retain(|&t| now - t < 86_400_000);
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
                // Runs other replicas execute are stopped by them, asked through the store.
                for id in ids.iter().filter(|id| entry.elsewhere.contains(id)) {
                    self.store.request_pipeline_run_cancel(id).await?;
                }
                entry.elsewhere.retain(|id| !ids.contains(id));
                self.launch(entry, queued);
            }
            _ => self.launch(entry, queued),
        }
        Ok(())
    }
}
