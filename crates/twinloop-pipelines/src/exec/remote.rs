//! One attempt of a `run:` step through a named [`Executor`] (`executor: NAME`).
//!
//! Staging is a shared volume (v1): the remote side sees the repository and the pipeline home at
//! the paths this process uses, so the attempt's directory is staged exactly as for a local
//! attempt (inputs materialized, the context file written) and the step protocol's variables
//! are the same. The command is the local launcher's `twinloop step-exec … -- sh -c CMD`, less
//! `--parent`, run in the repository. After [`Outcome::Succeeded`] the declared outputs are
//! checked and moved into the store by the same code as a local attempt's.
//!
//! The handle the executor answers is written to the attempt's directory (`executor.json`) as
//! soon as it is known, so that a run resumed after a crash (`--resume`, a server restart)
//! reattaches to an attempt still running instead of starting a second copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::attempt::{AttemptEnd, AttemptJob, collect_outputs, humanize, stage};
use super::executor::{AttemptSpec, Executor, Handle, Outcome};
use crate::state::StepState;

/// The record of a remote attempt, in its directory.
pub(crate) const RECORD_FILE: &str = "executor.json";

/// What the engine knows of a remote attempt: enough to find it again after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub pipeline: String,
    /// The step, or `<step>[<index>]` for a `foreach:` item.
    pub step: String,
    pub attempt: u32,
    /// The executor's name in `twinloop.yaml`.
    pub executor: String,
    /// Its kind (`k8s`, `ray`) and the id it gave the attempt (a Job name, a submission id).
    pub kind: String,
    pub id: String,
    /// The cache key the attempt was started with: a resumed run reattaches only to an attempt
    /// of the same inputs, code and params.
    pub key: String,
    /// Set once the engine saw the attempt end.
    pub ended: bool,
}

impl Record {
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let path = dir.join(RECORD_FILE);
        let partial = dir.join(format!("{RECORD_FILE}.partial"));
        std::fs::write(&partial, json)?;
        std::fs::rename(partial, path)
    }
}

/// An attempt of an earlier run that may still be running remotely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Running {
    pub record: Record,
    /// Its directory, where it writes its outputs.
    pub dir: PathBuf,
}

/// The newest unfinished remote attempt of each step of run directory `run_dir`, by step name.
pub(crate) fn running(run_dir: &Path) -> BTreeMap<String, Running> {
    let mut found: BTreeMap<String, Running> = BTreeMap::new();
    // `<step>/<attempt>/` and, for `foreach:` items, `<step>/<index>/<attempt>/`.
    let mut dirs = vec![(run_dir.to_owned(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if depth < 2 {
                dirs.push((path.clone(), depth + 1));
            }
            let Ok(bytes) = std::fs::read(path.join(RECORD_FILE)) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
                tracing::warn!(dir = %path.display(), "an unreadable remote attempt record");
                continue;
            };
            let newer = found
                .get(&record.step)
                .is_none_or(|r| r.record.attempt < record.attempt);
            if newer {
                found.insert(record.step.clone(), Running { record, dir: path });
            }
        }
    }
    found.retain(|_, r| !r.record.ended);
    found
}

pub(crate) async fn run_remote(job: &AttemptJob<'_>, name: &str) -> AttemptEnd {
    let Some(executor) = job.executors.get(name) else {
        return AttemptEnd::failed(
            StepState::Failed,
            None,
            format!("executor {name:?} is not configured in this process"),
        );
    };
    let executor = executor.as_ref();
    let handle = match job.reattach {
        Some(id) => executor.reattach(id).await.map_err(|e| {
            format!("executor {name}: cannot find the attempt it was running ({id}): {e}")
        }),
        None => start(job, executor)
            .await
            .map_err(|e| format!("executor {name}: cannot start the attempt: {e}")),
    };
    let handle = match handle {
        Ok(handle) => handle,
        Err(reason) => return AttemptEnd::failed(StepState::Failed, None, reason),
    };
    let mut record = Record {
        pipeline: job.pipeline.to_owned(),
        step: job.name.to_owned(),
        attempt: job.attempt,
        executor: name.to_owned(),
        kind: handle.executor.clone(),
        id: handle.id.clone(),
        key: job.prepared.key.clone(),
        ended: false,
    };
    if let Err(e) = record.write(&job.dir) {
        // Unrecorded, a crash would leave it running unseen and start a second copy.
        stop(executor, &handle, job).await;
        return AttemptEnd::failed(
            StepState::Failed,
            None,
            format!(
                "cannot record the attempt's handle in {}: {e}",
                job.dir.display()
            ),
        );
    }
    if let Some(tracked) = job.tracked {
        job.recorder.external(tracked, name, &handle).await;
    }
    // After a reattach the attempt has run for an unknown time: it gets the whole timeout again.
    let timeout = job.step.timeout.unwrap_or(Duration::MAX);
    let waited = tokio::select! {
        outcome = executor.wait(&handle) => Some(outcome),
        () = tokio::time::sleep(timeout) => {
            stop(executor, &handle, job).await;
            None
        }
        () = job.cancel.canceled() => {
            stop(executor, &handle, job).await;
            record.ended = true;
            keep_logs(executor, &handle, &job.dir).await;
            write_record(&record, &job.dir);
            return AttemptEnd::failed(StepState::Canceled, None, "canceled".into());
        }
    };
    keep_logs(executor, &handle, &job.dir).await;
    record.ended = true;
    write_record(&record, &job.dir);
    let outcome = match waited {
        None => {
            let reason = format!("timed out after {}", humanize(timeout));
            return AttemptEnd::failed(StepState::TimedOut, None, reason);
        }
        Some(Ok(outcome)) => outcome,
        Some(Err(e)) => {
            return AttemptEnd::failed(
                StepState::Failed,
                None,
                format!("executor {name}: lost the attempt {}: {e}", handle.id),
            );
        }
    };
    match outcome {
        Outcome::Succeeded => match collect_outputs(job) {
            Ok((outputs, dropped)) => AttemptEnd {
                state: StepState::Succeeded,
                exit_code: Some(0),
                reason: None,
                outputs,
                dropped,
            },
            Err(e) => AttemptEnd::failed(StepState::Failed, Some(0), e),
        },
        Outcome::Failed { exit_code, reason } => {
            AttemptEnd::failed(StepState::Failed, exit_code, reason)
        }
        Outcome::TimedOut { reason } => AttemptEnd::failed(StepState::TimedOut, None, reason),
        // Not stopped by this engine (a `ray job stop`, a deleted Job): a failure to retry.
        Outcome::Canceled { reason } => AttemptEnd::failed(
            StepState::Failed,
            None,
            format!("stopped outside twinloop: {reason}"),
        ),
    }
}

/// Stages the attempt and hands it to the executor.
async fn start(job: &AttemptJob<'_>, executor: &dyn Executor) -> Result<Handle, String> {
    let protocol = stage(job).map_err(|e| format!("cannot stage the step: {e}"))?;
    // There while the attempt runs, as a local attempt's are; they get the logs the executor
    // hands back once it ends.
    for log in ["stdout.log", "stderr.log"] {
        std::fs::File::create(job.dir.join(log))
            .map_err(|e| format!("cannot create {log}: {e}"))?;
    }
    let text = |value: &std::ffi::OsStr| value.to_string_lossy().into_owned();
    let located = |paths: &BTreeMap<String, PathBuf>| {
        paths
            .iter()
            .map(|(name, path)| (name.clone(), text(path.as_os_str())))
            .collect()
    };
    let spec = AttemptSpec {
        run_id: job.run_id.to_owned(),
        pipeline: job.pipeline.to_owned(),
        step: job.step.id.clone(),
        item: job.item,
        attempt: job.attempt,
        command: job.prepared.command.clone(),
        env: protocol
            .vars
            .iter()
            .map(|(name, value)| (name.clone(), text(value)))
            .collect(),
        image: None,
        resources: job.step.resources.clone(),
        timeout: job.step.timeout,
        inputs: located(&protocol.inputs),
        outputs: located(&protocol.outputs),
        repo: job.repo.to_owned(),
        // The repository is on the shared volume: there is no code to ship.
        code: Vec::new(),
        labels: BTreeMap::new(),
        workdir: Some(job.repo.to_owned()),
        launcher: super::launch::shared_launcher(),
        grace: job.kill_grace,
    };
    executor.start(&spec).await.map_err(|e| e.to_string())
}

/// Cancels the attempt; a failure is logged, the attempt ends as the engine decided anyway.
async fn stop(executor: &dyn Executor, handle: &Handle, job: &AttemptJob<'_>) {
    if let Err(e) = executor.cancel(handle).await {
        tracing::warn!(step = %job.name, id = %handle.id, error = %e, "cannot stop a remote attempt");
    }
}

/// The attempt's logs (stdout and stderr together, as executors keep them) into `stdout.log`.
async fn keep_logs(executor: &dyn Executor, handle: &Handle, dir: &Path) {
    let text = match executor.logs(handle).await {
        Ok(text) => text,
        Err(e) => format!("(the executor did not hand back the logs: {e})\n"),
    };
    if let Err(e) = std::fs::write(dir.join("stdout.log"), text) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot keep a remote attempt's logs");
    }
}

fn write_record(record: &Record, dir: &Path) {
    if let Err(e) = record.write(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot mark a remote attempt ended");
    }
}
