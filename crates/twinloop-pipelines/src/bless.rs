//! The gate override (design §7 "Override"): `twinloop pipeline bless RUN_ID --step STEP
//! --reason TEXT`. A person overrides a gate (`model.evaluate@1` or `model.gate@1`) that judged
//! and did not bless.
//! The override is an execution of the gate step appended to that run's record in the cache
//! index, its outputs the gate's with `blessed = true` and `reasons` gaining "overridden by
//! <who>: <why>", so `run --resume RUN_ID` reuses the gate as blessed and the steps its
//! `blessed` output guards run. Who, when and why are kept in `<home>/cache/overrides.jsonl`,
//! and, when the run is in the store's lineage, as a `gate_override` execution that reads the
//! gate's blessing.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use twinloop_core::lineage::{EventKind, NewNode, NodeKind};
use twinloop_meta::StoreHandle;

use crate::builtins::Builtin;
use crate::cache::{Cas, Execution, Index};
use crate::spec::OutputKind;
use crate::state::{OutputRecord, StepState};

/// One override, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub pipeline: String,
    pub run_id: String,
    pub step: String,
    pub who: String,
    pub at_ms: i64,
    pub reason: String,
}

impl Override {
    /// The line the gate's `reasons` gain.
    pub fn note(&self) -> String {
        format!("overridden by {}: {}", self.who, self.reason)
    }
}

/// What `bless` is asked.
pub struct Request<'a> {
    pub run_id: &'a str,
    pub step: &'a str,
    pub reason: &'a str,
    /// The person: `$USER`, or `whoami`.
    pub who: &'a str,
}

/// What `bless` did.
#[derive(Debug)]
pub struct Blessed {
    pub record: Override,
    /// The `gate_override` lineage execution (`execution:12`), when it was recorded.
    pub lineage: Option<String>,
    /// Why lineage holds no override, when it does not.
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlessError {
    #[error("no run {0:?} in the cache index")]
    UnknownRun(String),
    #[error("run {run_id} has no step {step:?} (its steps: {})", steps.join(", "))]
    UnknownStep {
        run_id: String,
        step: String,
        steps: Vec<String>,
    },
    #[error(
        "step {step} is {what}, not a gate ({}, {}): it has no blessing to override",
        Builtin::ModelEvaluate,
        Builtin::ModelGate
    )]
    NotAGate { step: String, what: String },
    #[error(
        "step {step} of run {run_id} ended {state}: the gate never judged, so there is nothing to override"
    )]
    NotJudged {
        run_id: String,
        step: String,
        state: StepState,
    },
    #[error("step {step} of run {run_id} blessed its candidate: there is nothing to override")]
    AlreadyBlessed { run_id: String, step: String },
    #[error("step {step} of run {run_id} was already {}", record.note())]
    AlreadyOverridden {
        run_id: String,
        step: String,
        record: Box<Override>,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BlessError {
    let context = context.into();
    move |source| BlessError::Io { context, source }
}

fn overrides_path(home: &Path) -> PathBuf {
    home.join("cache").join("overrides.jsonl")
}

/// The overrides recorded for a run, oldest first; lines that do not parse are skipped.
pub fn overrides(home: &Path, run_id: &str) -> std::io::Result<Vec<Override>> {
    let text = match std::fs::read_to_string(overrides_path(home)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<Override>(line).ok())
        .filter(|o| o.run_id == run_id)
        .collect())
}

/// Records the override of `request.step` in run `request.run_id`; `store` is where the run's
/// lineage may be.
pub async fn bless(
    home: &Path,
    request: &Request<'_>,
    store: Option<&StoreHandle>,
) -> Result<Blessed, BlessError> {
    let mut index = Index::open(home).map_err(io("cannot read the cache index"))?;
    let gate = judged_gate(&index, request)?;
    if gate.outputs.get("blessed").and_then(|o| o.value.as_ref()) == Some(&Value::Bool(true)) {
        let previous = overrides(home, request.run_id)
            .map_err(io("cannot read the overrides"))?
            .into_iter()
            .rfind(|o| o.step == request.step);
        return Err(match previous {
            Some(record) => BlessError::AlreadyOverridden {
                run_id: request.run_id.to_owned(),
                step: request.step.to_owned(),
                record: Box::new(record),
            },
            None => BlessError::AlreadyBlessed {
                run_id: request.run_id.to_owned(),
                step: request.step.to_owned(),
            },
        });
    }
    let record = Override {
        pipeline: gate.pipeline.clone(),
        run_id: request.run_id.to_owned(),
        step: request.step.to_owned(),
        who: request.who.to_owned(),
        at_ms: twinloop_core::time::now_ms(),
        reason: request.reason.to_owned(),
    };
    let execution = overridden(&gate, &record, &Cas::new(home))?;
    index
        .record(execution)
        .map_err(io("cannot write the cache index"))?;
    append(home, &record)?;
    let blessing = gate.outputs.get("blessing").map(|o| o.digest.as_str());
    let (lineage, note) = match store {
        None => (
            None,
            Some("no metadata store: lineage not recorded".to_owned()),
        ),
        Some(store) => match record_lineage(store, &record, blessing).await {
            Ok(node) => (Some(node), None),
            Err(why) => (None, Some(why)),
        },
    };
    Ok(Blessed {
        record,
        lineage,
        note,
    })
}

/// The run's newest execution of the step, checked to be a gate that judged.
fn judged_gate(index: &Index, request: &Request<'_>) -> Result<Execution, BlessError> {
    let executions: Vec<&Execution> = index
        .executions()
        .iter()
        .filter(|e| e.run_id == request.run_id)
        .collect();
    if executions.is_empty() {
        return Err(BlessError::UnknownRun(request.run_id.to_owned()));
    }
    let Some(gate) = executions
        .iter()
        .rev()
        .find(|e| e.step == request.step)
        .copied()
    else {
        let mut steps: Vec<String> = executions.iter().map(|e| e.step.clone()).collect();
        steps.sort();
        steps.dedup();
        return Err(BlessError::UnknownStep {
            run_id: request.run_id.to_owned(),
            step: request.step.to_owned(),
            steps,
        });
    };
    let uses = gate
        .doc
        .command
        .split_whitespace()
        .next()
        .and_then(|first| first.strip_prefix("uses:"));
    if !uses
        .and_then(|name| Builtin::parse(name).ok())
        .is_some_and(Builtin::is_gate)
    {
        return Err(BlessError::NotAGate {
            step: request.step.to_owned(),
            what: uses.map_or_else(|| "a `run:` step".to_owned(), str::to_owned),
        });
    }
    let judged = gate.state.ok()
        && gate
            .outputs
            .get("blessed")
            .is_some_and(|o| matches!(o.value, Some(Value::Bool(_))));
    if !judged {
        return Err(BlessError::NotJudged {
            run_id: request.run_id.to_owned(),
            step: request.step.to_owned(),
            state: gate.state,
        });
    }
    Ok(gate.clone())
}

/// The gate's execution as the override leaves it: blessed, with the override among its reasons.
fn overridden(gate: &Execution, record: &Override, cas: &Cas) -> Result<Execution, BlessError> {
    let mut reasons = gate
        .outputs
        .get("reasons")
        .and_then(|o| o.value.clone())
        .and_then(|v| match v {
            Value::Array(items) => Some(items),
            _ => None,
        })
        .unwrap_or_default();
    reasons.push(Value::String(record.note()));
    let mut outputs = gate.outputs.clone();
    for (name, value) in [
        ("blessed", Value::Bool(true)),
        ("reasons", Value::Array(reasons)),
    ] {
        let bytes = serde_json::to_vec(&value).map_err(|e| BlessError::Io {
            context: format!("cannot encode {name}"),
            source: std::io::Error::other(e),
        })?;
        let digest = cas
            .put_bytes(&bytes)
            .map_err(io(format!("cannot store {name}")))?;
        outputs.insert(
            name.to_owned(),
            OutputRecord {
                kind: OutputKind::Value,
                digest,
                value: Some(value),
            },
        );
    }
    Ok(Execution {
        state: StepState::Succeeded,
        finished_ms: record.at_ms,
        outputs,
        ..gate.clone()
    })
}

fn append(home: &Path, record: &Override) -> Result<(), BlessError> {
    let path = overrides_path(home);
    let mut line = serde_json::to_vec(record).map_err(|e| BlessError::Io {
        context: "cannot encode the override".into(),
        source: std::io::Error::other(e),
    })?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(&line))
        .map_err(io(format!("cannot write {}", path.display())))
}

/// A `gate_override` execution reading the gate's blessing, in the run's context. `Err` says
/// why it could not be recorded: the override stands without it, as a run's other records do.
async fn record_lineage(
    store: &StoreHandle,
    record: &Override,
    blessing: Option<&str>,
) -> Result<String, String> {
    let Some(digest) = blessing else {
        return Err("the gate recorded no blessing: lineage not recorded".into());
    };
    let blessing = match store.resolve_node(&format!("cas:{digest}")).await {
        Ok(node) => node,
        Err(e) if e.kind == twinloop_core::ErrorKind::NotFound => {
            return Err(format!(
                "run {} is not in this store's lineage: lineage not recorded",
                record.run_id
            ));
        }
        Err(e) => return Err(format!("cannot read lineage: {e}")),
    };
    let recorded = async {
        let execution = store
            .put_node(
                NodeKind::Execution,
                NewNode {
                    node_type: "gate_override".into(),
                    name: format!("{} override", record.step),
                    uri: None,
                    external_id: Some(format!("gate_override:{}/{}", record.run_id, record.step)),
                    properties: Some(
                        json!({
                            "pipeline": record.pipeline,
                            "run_id": record.run_id,
                            "step": record.step,
                            "who": record.who,
                            "at_ms": record.at_ms,
                            "reason": record.reason,
                        })
                        .to_string(),
                    ),
                },
            )
            .await?
            .node;
        store
            .put_event(blessing.node, execution, EventKind::Input)
            .await?;
        match store
            .resolve_node(&format!("pipeline_run:{}", record.run_id))
            .await
        {
            Ok(context) => store.put_membership(context.node, execution).await?,
            Err(e) if e.kind == twinloop_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        twinloop_core::Result::Ok(execution)
    };
    recorded
        .await
        .map(|node| node.to_string())
        .map_err(|e| format!("cannot record the override in lineage: {e}"))
}
