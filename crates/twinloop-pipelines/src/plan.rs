//! `plan`: what a run would do with each step and why, creating no executions. A step is
//! `RUN` (naming what changed since the newest execution of the same step), `CACHED` (from
//! which run: a cache hit, or the run `--resume` names), `SKIPPED`, or `UNKNOWN` when it reads
//! an output that only running upstream steps will produce.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::cache::Cas;
use crate::error::Error;
use crate::exec::prepare::prepare;
use crate::exec::{Start, cache_off};
use crate::expr::Ref;
use crate::spec::{Input, Pipeline, Step};
use crate::state::{OutputRecord, RunScope, StepState};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Run { reasons: Vec<String> },
    Cached { from_run: String },
    Skipped { reason: String },
    Unknown { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedStep {
    pub step: String,
    #[serde(flatten)]
    pub decision: Decision,
}

pub struct PlanOptions {
    pub repo: PathBuf,
    pub home: PathBuf,
    pub params: Vec<(String, String)>,
    pub no_cache: bool,
    pub refresh: Vec<String>,
    pub verify: bool,
    /// The run `run --resume` would reuse steps of.
    pub resume: Option<String>,
}

/// Each step's decision, in the order a run would take them.
pub fn plan(pipeline: &Pipeline, options: &PlanOptions) -> Result<Vec<PlannedStep>, Error> {
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
    let cas = Cas::new(&options.home);
    let mut states: BTreeMap<String, StepState> = BTreeMap::new();
    let mut outputs: BTreeMap<String, BTreeMap<String, OutputRecord>> = BTreeMap::new();
    let mut planned = Vec::new();
    let now = twinloop_core::time::now_ms();
    for step in crate::validate::order(pipeline).unwrap_or_default() {
        let decision = if step.finally {
            Decision::Run {
                reasons: vec!["finally: runs after the other steps".into()],
            }
        } else if let Some(reason) = upstream_blocks(step, &states) {
            reason
        } else {
            let scope = RunScope {
                run_id: "",
                run_status: None,
                params: &params,
                states: &states,
                outputs: &outputs,
                trigger: None,
            };
            let when_false = step
                .when
                .as_ref()
                .is_some_and(|w| !crate::expr::truthy(&w.eval(&scope)));
            if when_false {
                let source = step
                    .when
                    .as_ref()
                    .map(|w| w.source.clone())
                    .unwrap_or_default();
                Decision::Skipped {
                    reason: format!("when is false: {source}"),
                }
            } else if let Some(resume) = &resume
                && let Some(previous) = resume.reusable(&step.id, &cas, options.verify)
            {
                outputs.insert(step.id.clone(), previous.outputs.clone());
                Decision::Cached {
                    from_run: resume.run_id.clone(),
                }
            } else {
                match prepare(step, &options.repo, &scope) {
                    Err(e) => Decision::Unknown { reason: e },
                    Ok(prepared) => {
                        if let Some(off) = cache_off(step, options.no_cache, &refresh) {
                            Decision::Run { reasons: vec![off] }
                        } else if let Some(hit) =
                            index.hit(&prepared.key, step.cache.max_age, &cas, options.verify, now)
                        {
                            outputs.insert(step.id.clone(), hit.outputs.clone());
                            Decision::Cached {
                                from_run: hit.run_id.clone(),
                            }
                        } else {
                            let reasons = match index.newest(&pipeline.name, &step.id) {
                                None => vec!["never ran".to_owned()],
                                Some(previous) => {
                                    let changes = prepared.doc.changes(&previous.doc);
                                    if !changes.is_empty() {
                                        changes
                                    } else if !previous.state.ok() {
                                        vec![format!("its last execution {}", previous.state)]
                                    } else {
                                        vec!["its cached outputs are missing or expired".to_owned()]
                                    }
                                }
                            };
                            Decision::Run { reasons }
                        }
                    }
                }
            }
        };
        let state = match &decision {
            Decision::Run { .. } | Decision::Unknown { .. } => StepState::Pending,
            Decision::Cached { .. } => StepState::Cached,
            Decision::Skipped { .. } => StepState::Skipped,
        };
        states.insert(step.id.clone(), state);
        planned.push(PlannedStep {
            step: step.id.clone(),
            decision,
        });
    }
    Ok(planned)
}

/// SKIPPED when an upstream step will be skipped; UNKNOWN when the step reads something (an
/// output, a status) of a step that has yet to run.
fn upstream_blocks(step: &Step, states: &BTreeMap<String, StepState>) -> Option<Decision> {
    for up in step.upstream() {
        if states.get(&up) == Some(&StepState::Skipped) {
            return Some(Decision::Skipped {
                reason: format!("upstream step {up} is SKIPPED"),
            });
        }
    }
    let mut reads: Vec<String> = step
        .inputs
        .values()
        .filter_map(|i| match i {
            Input::Output { step, .. } => Some(step.clone()),
            Input::Path(_) => None,
        })
        .collect();
    reads.extend(step.refs().into_iter().filter_map(|r| match r {
        Ref::Output { step, .. } | Ref::Status(step) => Some(step),
        _ => None,
    }));
    reads
        .into_iter()
        .find(|up| states.get(up) != Some(&StepState::Cached))
        .map(|up| Decision::Unknown {
            reason: format!("depends on the output of {up}, which runs first"),
        })
}
