//! The states of steps and runs, step outputs, and the [`Scope`] expressions read during a run.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expr::{Ref, Scope};
use crate::spec::OutputKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Cached,
    Failed,
    Retrying,
    Skipped,
    TimedOut,
    Canceled,
}

impl StepState {
    /// Whether downstream steps may use this step's outputs.
    pub fn ok(self) -> bool {
        matches!(self, StepState::Succeeded | StepState::Cached)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "PENDING",
            StepState::Running => "RUNNING",
            StepState::Succeeded => "SUCCEEDED",
            StepState::Cached => "CACHED",
            StepState::Failed => "FAILED",
            StepState::Retrying => "RETRYING",
            StepState::Skipped => "SKIPPED",
            StepState::TimedOut => "TIMED_OUT",
            StepState::Canceled => "CANCELED",
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Canceled,
    /// The gate did not bless the candidate or its canary rolled back: the pipeline did its
    /// job and the candidate lost. Not an error.
    Rejected,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
            RunStatus::Canceled => "CANCELED",
            RunStatus::Rejected => "REJECTED",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step output in the content-addressed store; `value` holds metrics and value outputs'
/// JSON for expressions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub kind: OutputKind,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A finished step's outputs by name.
pub type StepOutputs = BTreeMap<String, OutputRecord>;

/// What expressions see while a run is under way: params, finished steps, the run.
pub struct RunScope<'a> {
    pub run_id: &'a str,
    /// Set for `finally:` steps only.
    pub run_status: Option<RunStatus>,
    pub params: &'a BTreeMap<String, Value>,
    pub states: &'a BTreeMap<String, StepState>,
    pub outputs: &'a BTreeMap<String, BTreeMap<String, OutputRecord>>,
    /// What started the run; `None` reads as a manual run with no payload.
    pub trigger: Option<&'a TriggerContext>,
    /// The element of a `foreach:` step's item; `None` elsewhere.
    pub item: Option<&'a Value>,
}

/// What started a run, as `trigger.kind` and `trigger.payload.*` read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerContext {
    /// `manual`, `cron`, `every`, `monitor`, `registry`, `data` or `pipeline`.
    pub kind: String,
    /// The event: the alert, the registry event, the tick, the params of a manual run.
    pub payload: Value,
}

impl TriggerContext {
    /// The value at `path` inside the payload (`null` when absent).
    pub fn lookup(&self, path: &[String]) -> Value {
        lookup(&self.payload, path)
    }
}

/// The value at `path` inside `root`: object keys, array indexes; `null` when absent.
fn lookup(root: &Value, path: &[String]) -> Value {
    path.iter()
        .try_fold(root, |value, key| match value {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
        .cloned()
        .unwrap_or(Value::Null)
}

impl Scope for RunScope<'_> {
    fn get(&self, reference: &Ref) -> Value {
        match reference {
            Ref::Param(p) => self.params.get(p).cloned().unwrap_or(Value::Null),
            Ref::Output { step, output } => self
                .outputs
                .get(step)
                .and_then(|o| o.get(output))
                .and_then(|o| o.value.clone())
                .unwrap_or(Value::Null),
            Ref::Status(step) => self
                .states
                .get(step)
                .map_or(Value::Null, |s| Value::String(s.as_str().into())),
            Ref::RunId => Value::String(self.run_id.into()),
            Ref::RunStatus => self
                .run_status
                .map_or(Value::Null, |s| Value::String(s.as_str().into())),
            Ref::TriggerKind => Value::String(
                self.trigger
                    .map_or_else(|| "manual".to_owned(), |t| t.kind.clone()),
            ),
            Ref::TriggerPayload(path) => self.trigger.map_or(Value::Null, |t| t.lookup(path)),
            Ref::Item(path) => self.item.map_or(Value::Null, |item| lookup(item, path)),
        }
    }
}
