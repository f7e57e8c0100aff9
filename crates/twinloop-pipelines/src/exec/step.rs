//! A step's attempts: the first, then retries with exponential backoff until one succeeds, the
//! retries run out, or the run is canceled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::attempt::{AttemptJob, run_attempt};
use super::prepare::Prepared;
use super::{AttemptReport, Cancel, Event, Events};
use crate::cache::Cas;
use crate::spec::Step;
use crate::state::{OutputRecord, StepState};

pub(crate) struct StepJob {
    pub step: Step,
    /// How events and tracking name it: the step's id, or `<step>[<index>]` for a `foreach:` item.
    pub name: String,
    /// A `foreach:` item's index.
    pub item: Option<usize>,
    pub pipeline: String,
    pub run_id: String,
    /// `<home>/runs/<run>/<step>` (`…/<step>/<index>` for an item); each attempt gets a
    /// numbered directory in it.
    pub dir: PathBuf,
    pub repo: PathBuf,
    pub cas: Cas,
    pub kill_grace: Duration,
    pub cancel: Cancel,
    pub events: Events,
    pub services: Option<crate::services::Services>,
    pub recorder: crate::record::Recorder,
    pub trigger: Option<crate::state::TriggerContext>,
    pub executors: super::executor::Executors,
    /// An attempt of the run being resumed that its executor still runs: the first attempt
    /// follows it (with its number and directory) instead of starting a new one.
    pub reattach: Option<super::remote::Running>,
}

pub(crate) struct StepEnd {
    pub state: StepState,
    pub reason: Option<String>,
    pub attempts: Vec<AttemptReport>,
    pub outputs: BTreeMap<String, OutputRecord>,
    pub dropped: Vec<String>,
}

impl StepJob {
    pub async fn run(&self, prepared: &Prepared) -> StepEnd {
        let mut attempts = Vec::new();
        let mut attempt = self.reattach.as_ref().map_or(1, |r| r.record.attempt);
        let mut reattach = self.reattach.as_ref();
        loop {
            self.events.send(Event::StepStarted {
                step: self.name.clone(),
                attempt,
            });
            let dir =
                reattach.map_or_else(|| self.dir.join(attempt.to_string()), |r| r.dir.clone());
            let tracked = self.recorder.attempt(&self.name, attempt).await;
            let started_ms = twinloop_core::time::now_ms();
            let end = run_attempt(AttemptJob {
                step: &self.step,
                name: &self.name,
                item: self.item,
                prepared,
                pipeline: &self.pipeline,
                run_id: &self.run_id,
                attempt,
                dir: dir.clone(),
                repo: &self.repo,
                cas: &self.cas,
                kill_grace: self.kill_grace,
                cancel: &self.cancel,
                services: self.services.as_ref(),
                tracked: tracked.as_ref(),
                recorder: &self.recorder,
                trigger: self.trigger.as_ref(),
                executors: &self.executors,
                reattach: reattach.map(|r| r.record.id.as_str()),
            })
            .await;
            reattach = None;
            if let Some(tracked) = &tracked {
                self.recorder
                    .attempt_ended(
                        tracked,
                        &self.name,
                        end.state,
                        &prepared.digests(),
                        &end.outputs,
                    )
                    .await;
            }
            attempts.push(AttemptReport {
                attempt,
                state: end.state,
                exit_code: end.exit_code,
                started_ms,
                ended_ms: twinloop_core::time::now_ms(),
                stdout: dir.join("stdout.log"),
                stderr: dir.join("stderr.log"),
            });
            let retry = matches!(end.state, StepState::Failed | StepState::TimedOut)
                && attempt <= self.step.retries.max;
            if !retry {
                return StepEnd {
                    state: end.state,
                    reason: end.reason,
                    attempts,
                    outputs: end.outputs,
                    dropped: end.dropped,
                };
            }
            let delay = self.step.retries.delay_after(attempt);
            self.events.send(Event::StepRetrying {
                step: self.name.clone(),
                attempt,
                delay,
                reason: end.reason.unwrap_or_default(),
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cancel.canceled() => {
                    return StepEnd {
                        state: StepState::Canceled,
                        reason: Some("canceled while waiting to retry".into()),
                        attempts,
                        outputs: BTreeMap::new(),
                        dropped: Vec::new(),
                    };
                }
            }
            attempt += 1;
        }
    }
}
