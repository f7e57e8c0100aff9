//! One step attempt: the step protocol of section 4 (environment, context file, messages),
//! the process group it runs in and its end (exit, timeout or cancel), then its outputs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::process::{Child, Command};

use super::prepare::{Prepared, ResolvedInput};
use super::{Cancel, kill};
use crate::cache::Cas;
use crate::expr::to_text;
use crate::spec::{OutputKind, Step};
use crate::state::{OutputRecord, StepState};

/// A `value` output's JSON may not be larger than this.
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// What one attempt needs, owned, so that it runs in its own task.
pub(crate) struct AttemptJob<'a> {
    pub step: &'a Step,
    /// How events and records name it: the step's id, or `<step>[<index>]` for an item.
    pub name: &'a str,
    /// A `foreach:` item's index.
    pub item: Option<usize>,
    pub prepared: &'a Prepared,
    pub pipeline: &'a str,
    pub run_id: &'a str,
    pub attempt: u32,
    pub dir: PathBuf,
    pub repo: &'a Path,
    pub cas: &'a Cas,
    pub kill_grace: Duration,
    pub cancel: &'a Cancel,
    pub services: Option<&'a crate::services::Services>,
    /// The attempt's run in tracking, when the pipeline run is recorded there.
    pub tracked: Option<&'a crate::record::TrackedAttempt>,
    pub recorder: &'a crate::record::Recorder,
    pub trigger: Option<&'a crate::state::TriggerContext>,
    /// The named executors, for a step whose `executor:` is one of them.
    pub executors: &'a super::executor::Executors,
    /// The attempt is one a remote executor still runs from before a restart: follow it by this
    /// id instead of starting it again.
    pub reattach: Option<&'a str>,
}

pub(crate) struct AttemptEnd {
    pub state: StepState,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, OutputRecord>,
    /// Files in the outputs directory that no output declares: reported, then removed.
    pub dropped: Vec<String>,
}

impl AttemptEnd {
    pub(crate) fn failed(state: StepState, exit_code: Option<i32>, reason: String) -> AttemptEnd {
        AttemptEnd {
            state,
            exit_code,
            reason: Some(reason),
            outputs: BTreeMap::new(),
            dropped: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct Context<'a> {
    run_id: &'a str,
    pipeline: &'a str,
    step: &'a str,
    attempt: u32,
    params: &'a BTreeMap<String, Value>,
    /// A `foreach:` item's element.
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a Value>,
    /// What started the run (`kind` and `payload`: the alert, the registry event, the tick).
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<&'a crate::state::TriggerContext>,
    inputs: BTreeMap<&'a str, ContextInput>,
    outputs: BTreeMap<&'a str, ContextOutput>,
}

#[derive(Serialize)]
struct ContextInput {
    path: PathBuf,
    digest: String,
    kind: Option<OutputKind>,
}

#[derive(Serialize)]
struct ContextOutput {
    path: PathBuf,
    kind: OutputKind,
}

/// The step protocol's variable suffix of a name: `train_set` → `TRAIN_SET` (every executor
/// spells `TWINLOOP_INPUT_<NAME>` and the like with it).
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) async fn run_attempt(job: AttemptJob<'_>) -> AttemptEnd {
    if let Some(uses) = &job.step.uses {
        return super::builtin::run_builtin(&job, uses).await;
    }
    if let Some(name) = &job.step.executor {
        return super::remote::run_remote(&job, name).await;
    }
    let mut command = match setup(&job) {
        Ok(command) => command,
        Err(e) => {
            return AttemptEnd::failed(
                StepState::Failed,
                None,
                format!("cannot start the step: {e}"),
            );
        }
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return AttemptEnd::failed(
                StepState::Failed,
                None,
                format!("cannot start the step's shell: {e}"),
            );
        }
    };
    let timeout = job.step.timeout.unwrap_or(Duration::MAX);
    let status = tokio::select! {
        status = child.wait() => status,
        () = tokio::time::sleep(timeout) => {
            kill::kill_tree(&mut child, job.kill_grace).await;
            let reason = format!("timed out after {}", humanize(timeout));
            return AttemptEnd::failed(StepState::TimedOut, None, reason);
        }
        () = job.cancel.canceled() => {
            kill::kill_tree(&mut child, job.kill_grace).await;
            return AttemptEnd::failed(StepState::Canceled, None, "canceled".into());
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            return AttemptEnd::failed(
                StepState::Failed,
                None,
                format!("cannot wait for the step: {e}"),
            );
        }
    };
    if !status.success() {
        let reason = status.code().map_or_else(
            || "killed by a signal".to_owned(),
            |c| format!("exited with {c}"),
        );
        return AttemptEnd::failed(StepState::Failed, status.code(), reason);
    }
    match collect_outputs(&job) {
        Ok((outputs, dropped)) => AttemptEnd {
            state: StepState::Succeeded,
            exit_code: Some(0),
            reason: None,
            outputs,
            dropped,
        },
        Err(e) => AttemptEnd::failed(StepState::Failed, Some(0), e),
    }
}

pub(crate) fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The step protocol of one attempt, staged: its directories made, its inputs materialized,
/// its context file written. Local and remote attempts run with exactly these variables.
pub(crate) struct Protocol {
    /// Every variable, in the order they apply (a later one of the same name wins).
    pub vars: Vec<(String, OsString)>,
    /// Input name → the path the step reads it at (`TWINLOOP_INPUT_<NAME>`).
    pub inputs: BTreeMap<String, PathBuf>,
    /// Output name → the path the step writes it to (`TWINLOOP_OUTPUT_<NAME>`).
    pub outputs: BTreeMap<String, PathBuf>,
}

fn setup(job: &AttemptJob<'_>) -> std::io::Result<Command> {
    let protocol = stage(job)?;
    // Through `twinloop step-exec` when this binary has it, so the tree dies with the engine.
    let mut command = super::launch::shell(&job.prepared.command, job.kill_grace);
    command
        .current_dir(job.repo)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(job.dir.join("stdout.log"))?)
        .stderr(std::fs::File::create(job.dir.join("stderr.log"))?)
        // Its own process group, so that a timeout or cancel reaches the whole tree.
        .process_group(0);
    for (name, value) in protocol.vars {
        command.env(name, value);
    }
    Ok(command)
}

/// Stages the attempt's step protocol in its directory.
pub(crate) fn stage(job: &AttemptJob<'_>) -> std::io::Result<Protocol> {
    let outputs_dir = job.dir.join("outputs");
    let inputs_dir = job.dir.join("inputs");
    std::fs::create_dir_all(&outputs_dir)?;
    std::fs::create_dir_all(&inputs_dir)?;
    let mut protocol = Protocol {
        vars: Vec::new(),
        inputs: BTreeMap::new(),
        outputs: BTreeMap::new(),
    };
    let mut var = |name: String, value: OsString| protocol.vars.push((name, value));
    var("TWINLOOP_RUN_ID".into(), job.run_id.into());
    var("TWINLOOP_STEP".into(), job.step.id.clone().into());
    var("TWINLOOP_ATTEMPT".into(), job.attempt.to_string().into());
    var(
        "TWINLOOP_CONTEXT".into(),
        job.dir.join("context.json").into(),
    );
    var(
        "TWINLOOP_MESSAGES".into(),
        job.dir.join("messages.jsonl").into(),
    );
    var("TWINLOOP_OUTPUTS".into(), outputs_dir.clone().into());
    let mut context = Context {
        run_id: job.run_id,
        pipeline: job.pipeline,
        step: &job.step.id,
        attempt: job.attempt,
        params: &job.prepared.params,
        item: job.prepared.item.as_ref(),
        trigger: job.trigger,
        inputs: BTreeMap::new(),
        outputs: BTreeMap::new(),
    };
    for (name, value) in &job.prepared.params {
        var(
            format!("TWINLOOP_PARAM_{}", env_name(name)),
            to_text(value).into(),
        );
    }
    // The step's own `mlflow` client resumes its run: `start_run()` picks up MLFLOW_RUN_ID.
    if let Some(tracked) = job.tracked
        && let Some(uri) = &tracked.tracking_uri
    {
        var("MLFLOW_TRACKING_URI".into(), uri.into());
        var(
            "MLFLOW_EXPERIMENT_ID".into(),
            tracked.experiment_id.clone().into(),
        );
        var("MLFLOW_RUN_ID".into(), tracked.run_id.clone().into());
    }
    for (name, input) in &job.prepared.inputs {
        let (path, digest, kind) = match input {
            ResolvedInput::Stored { kind, digest } => {
                let path = job
                    .cas
                    .materialize_input(*kind, digest, &inputs_dir, name)?;
                (path, digest, Some(*kind))
            }
            ResolvedInput::External { path, digest } => (path.clone(), digest, None),
        };
        var(
            format!("TWINLOOP_INPUT_{}", env_name(name)),
            path.clone().into(),
        );
        protocol.inputs.insert(name.clone(), path.clone());
        context.inputs.insert(
            name,
            ContextInput {
                path,
                digest: digest.clone(),
                kind,
            },
        );
    }
    for (name, kind) in &job.step.outputs {
        let path = outputs_dir.join(name);
        if *kind == OutputKind::Dir {
            std::fs::create_dir_all(&path)?;
        }
        var(
            format!("TWINLOOP_OUTPUT_{}", env_name(name)),
            path.clone().into(),
        );
        protocol.outputs.insert(name.clone(), path.clone());
        context
            .outputs
            .insert(name, ContextOutput { path, kind: *kind });
    }
    for (name, value) in &job.prepared.vars {
        var(name.clone(), value.into());
    }
    let json = serde_json::to_vec_pretty(&context).map_err(std::io::Error::other)?;
    std::fs::write(job.dir.join("context.json"), json)?;
    Ok(protocol)
}

/// Checks that every declared output exists, moves it into the store and drops the rest.
pub(crate) fn collect_outputs(
    job: &AttemptJob<'_>,
) -> Result<(BTreeMap<String, OutputRecord>, Vec<String>), String> {
    let outputs_dir = job.dir.join("outputs");
    let messages = read_messages(&job.dir.join("messages.jsonl"))?;
    let mut records = BTreeMap::new();
    for (name, kind) in &job.step.outputs {
        let path = outputs_dir.join(name);
        let variable = format!("$TWINLOOP_OUTPUT_{}", env_name(name));
        let stored = match kind {
            OutputKind::File if path.is_file() => job.cas.put_file(&path).map(|d| (d, None)),
            OutputKind::File => {
                return Err(format!(
                    "output {name} (a file) was not written to {variable}"
                ));
            }
            OutputKind::Dir => job.cas.put_dir(&path).and_then(|d| {
                std::fs::remove_dir_all(&path)?;
                Ok((d, None))
            }),
            OutputKind::Metrics | OutputKind::Value => {
                let value = messages.get(name).ok_or_else(|| {
                    format!("output {name} was not sent: write {{\"output\": \"{name}\", \"value\": …}} to $TWINLOOP_MESSAGES")
                })?;
                check_value(name, *kind, value)?;
                let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
                job.cas.put_bytes(&bytes).map(|d| (d, Some(value.clone())))
            }
        };
        let (digest, value) = stored.map_err(|e| format!("cannot store output {name}: {e}"))?;
        records.insert(
            name.clone(),
            OutputRecord {
                kind: *kind,
                digest,
                value,
            },
        );
    }
    let mut dropped = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&outputs_dir) {
        for entry in entries.flatten() {
            dropped.push(entry.file_name().to_string_lossy().into_owned());
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an undeclared output");
            }
        }
    }
    dropped.sort();
    Ok((records, dropped))
}

fn check_value(name: &str, kind: OutputKind, value: &Value) -> Result<(), String> {
    if kind == OutputKind::Metrics {
        let numbers = value
            .as_object()
            .is_some_and(|o| o.values().all(Value::is_number));
        if !numbers {
            return Err(format!(
                "output {name} (metrics) must be a JSON object of numbers"
            ));
        }
    }
    let size = value.to_string().len();
    if size > MAX_VALUE_BYTES {
        return Err(format!(
            "output {name} is {size} bytes of JSON; the limit is {MAX_VALUE_BYTES}"
        ));
    }
    Ok(())
}

/// The `{"output": NAME, "value": …}` lines of the messages file; the last one of a name wins.
/// Lines without `output` are for later kinds of messages and are skipped.
fn read_messages(path: &Path) -> Result<BTreeMap<String, Value>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read $TWINLOOP_MESSAGES: {e}")),
    };
    let mut out = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut message: serde_json::Map<String, Value> = serde_json::from_str(line)
            .map_err(|e| format!("$TWINLOOP_MESSAGES line {}: {e}", i + 1))?;
        if let Some(Value::String(name)) = message.remove("output") {
            out.insert(name, message.remove("value").unwrap_or(Value::Null));
        }
    }
    Ok(out)
}

/// Waits for a child that must not outlive its attempt (used by the kill path).
pub(crate) async fn reap(child: &mut Child) {
    if let Err(e) = child.wait().await {
        tracing::warn!(error = %e, "cannot reap a step process");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_messages() {
        assert_eq!(env_name("train-set.v2"), "TRAIN_SET_V2");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages.jsonl");
        assert!(
            read_messages(&path).unwrap().is_empty(),
            "no file, no messages"
        );
        std::fs::write(
            &path,
            "{\"output\": \"auc\", \"value\": 0.8}\n\n{\"progress\": 0.5}\n{\"output\": \"auc\", \"value\": 0.9}\n",
        )
        .unwrap();
        assert_eq!(
            read_messages(&path).unwrap(),
            BTreeMap::from([("auc".into(), json!(0.9))])
        );
        std::fs::write(&path, "not json\n").unwrap();
        assert!(
            read_messages(&path)
                .unwrap_err()
                .starts_with("$TWINLOOP_MESSAGES line 1:")
        );
    }

    #[test]
    fn metrics_are_numbers_and_values_are_small() {
        assert!(check_value("m", OutputKind::Metrics, &json!({"auc": 0.9})).is_ok());
        assert!(check_value("m", OutputKind::Metrics, &json!({"auc": "high"})).is_err());
        assert!(check_value("m", OutputKind::Metrics, &json!([1])).is_err());
        assert!(check_value("v", OutputKind::Value, &json!(["any", 1])).is_ok());
        let big = Value::String("x".repeat(MAX_VALUE_BYTES));
        assert!(
            check_value("v", OutputKind::Value, &big)
                .unwrap_err()
                .contains("limit")
        );
    }
}
