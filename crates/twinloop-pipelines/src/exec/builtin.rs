//! One attempt of a `uses:` step: its inputs materialized and filled into `with:`, the built-in
//! run in process under the step's timeout and the run's cancel, its value outputs written as
//! messages so that outputs are collected and stored exactly as a command step's are.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::attempt::{AttemptEnd, AttemptJob, collect_outputs};
use super::prepare::ResolvedInput;
use crate::builtins::{self, Ctx, Log, with};
use crate::spec::{OutputKind, Uses};
use crate::state::StepState;

pub(crate) async fn run_builtin(job: &AttemptJob<'_>, uses: &Uses) -> AttemptEnd {
    let (with, log) = match setup(job) {
        Ok(ready) => ready,
        Err(e) => return AttemptEnd::failed(StepState::Failed, None, e),
    };
    let ctx = Ctx {
        builtin: uses.builtin,
        run_id: job.run_id,
        pipeline: job.pipeline,
        step: &job.step.id,
        repo: job.repo,
        with,
        outputs_dir: job.dir.join("outputs"),
        services: job.services,
        mlflow_run_id: job.tracked.map(|t| t.run_id.as_str()),
        log,
    };
    let timeout = job.step.timeout.unwrap_or(Duration::MAX);
    let values = tokio::select! {
        done = builtins::execute(&ctx) => done,
        () = tokio::time::sleep(timeout) => {
            let reason = format!("timed out after {}", super::attempt::humanize(timeout));
            return AttemptEnd::failed(StepState::TimedOut, None, reason);
        }
        () = job.cancel.canceled() => {
            return AttemptEnd::failed(StepState::Canceled, None, "canceled".into());
        }
    };
    let values = match values {
        Ok(values) => values,
        Err(reason) => {
            ctx.log.line(format!("error: {reason}"));
            return AttemptEnd::failed(StepState::Failed, None, reason);
        }
    };
    if let Err(e) = write_messages(&job.dir.join("messages.jsonl"), &values) {
        return AttemptEnd::failed(StepState::Failed, None, e);
    }
    match collect_outputs(job) {
        Ok((outputs, dropped)) => AttemptEnd {
            state: StepState::Succeeded,
            exit_code: None,
            reason: None,
            outputs,
            dropped,
        },
        Err(e) => AttemptEnd::failed(StepState::Failed, None, e),
    }
}

/// The attempt's directories and log, and `with:` with every input filled in.
fn setup(job: &AttemptJob<'_>) -> Result<(Value, Log), String> {
    let io = |e: std::io::Error| format!("cannot prepare the step: {e}");
    let inputs_dir = job.dir.join("inputs");
    std::fs::create_dir_all(job.dir.join("outputs")).map_err(io)?;
    std::fs::create_dir_all(&inputs_dir).map_err(io)?;
    std::fs::File::create(job.dir.join("stderr.log")).map_err(io)?;
    let log = Log::new(std::fs::File::create(job.dir.join("stdout.log")).map_err(io)?);
    let mut resolved: BTreeMap<String, Value> = BTreeMap::new();
    for (name, input) in &job.prepared.inputs {
        let value = match input {
            ResolvedInput::Stored {
                kind: OutputKind::Value | OutputKind::Metrics,
                digest,
            } => {
                let bytes = std::fs::read(job.cas.path(digest)).map_err(io)?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("input {name}: stored value is not JSON: {e}"))?
            }
            ResolvedInput::Stored { kind, digest } => {
                let path = job
                    .cas
                    .materialize_input(*kind, digest, &inputs_dir, name)
                    .map_err(io)?;
                Value::String(path.display().to_string())
            }
            ResolvedInput::External { path, .. } => Value::String(path.display().to_string()),
        };
        resolved.insert(name.clone(), value);
    }
    let mut with = job.prepared.with.clone().unwrap_or(Value::Null);
    with::fill(&mut with, &|name| resolved.get(name).cloned())?;
    Ok((with, log))
}

fn write_messages(path: &Path, values: &BTreeMap<String, Value>) -> Result<(), String> {
    let mut file =
        std::fs::File::create(path).map_err(|e| format!("cannot write the messages: {e}"))?;
    for (name, value) in values {
        let line = serde_json::json!({"output": name, "value": value});
        writeln!(file, "{line}").map_err(|e| format!("cannot write the messages: {e}"))?;
    }
    Ok(())
}
