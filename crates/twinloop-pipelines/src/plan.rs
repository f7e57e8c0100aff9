//! `plan`: what a run would do with each step and why, creating no executions. A step is
//! `RUN` (naming what changed since the newest execution of the same step), `CACHED` (from
//! which run: a cache hit, or the run `--resume` names), `SKIPPED`, or `UNKNOWN` when it reads
//! an output that only running upstream steps will produce. A `foreach:` step is `CACHED` when
//! every item is, and otherwise `RUN` naming each item that runs and why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::cache::{Cas, Index};
use crate::error::Error;
use crate::exec::foreach;
use crate::exec::prepare::{Prepared, prepare};
use crate::exec::{Start, cache_off};
use crate::expr::Ref;
use crate::resume::Resume;
use crate::spec::{Foreach, Input, Pipeline, Step};
use crate::state::{OutputRecord, RunScope, StepOutputs, StepState};

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
    let now = twinloop_core::time::now_ms();
    let ctx = Ctx {
        pipeline,
        options,
        index: &index,
        cas: &cas,
        resume: resume.as_ref(),
        refresh: &refresh,
        now,
    };
    let mut states: BTreeMap<String, StepState> = BTreeMap::new();
    let mut outputs: BTreeMap<String, BTreeMap<String, OutputRecord>> = BTreeMap::new();
    let mut planned = Vec::new();
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
                item: None,
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
            } else if let Some(foreach) = &step.foreach {
                let (decision, collected) = ctx.foreach(step, foreach, &scope);
                if let Some(collected) = collected {
                    outputs.insert(step.id.clone(), collected);
                }
                decision
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
                            Decision::Run {
                                reasons: ctx.run_reasons(&step.id, &prepared),
                            }
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

/// What every step's plan reads.
struct Ctx<'a> {
    pipeline: &'a Pipeline,
    options: &'a PlanOptions,
    index: &'a Index,
    cas: &'a Cas,
    resume: Option<&'a Resume>,
    refresh: &'a BTreeSet<String>,
    now: i64,
}

impl Ctx<'_> {
    /// Why a step (or item, `name`) that is no cache hit runs: what changed since its newest
    /// execution, or why that one cannot be reused.
    fn run_reasons(&self, name: &str, prepared: &Prepared) -> Vec<String> {
        match self.index.newest(&self.pipeline.name, name) {
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
        }
    }

    /// A `foreach:` step: `CACHED` (with its collected outputs, for downstream plans) when every
    /// item would be reused, else `RUN` with a reason per item that executes.
    fn foreach(
        &self,
        step: &Step,
        foreach: &Foreach,
        scope: &RunScope<'_>,
    ) -> (Decision, Option<StepOutputs>) {
        let items = match foreach::list(foreach, scope) {
            Ok(items) => items,
            Err(reason) => return (Decision::Unknown { reason }, None),
        };
        if items.is_empty() {
            let reasons =
                vec!["foreach: the list is empty; the step succeeds with empty lists".into()];
            return (Decision::Run { reasons }, None);
        }
        let mut reused: Vec<(String, StepOutputs)> = Vec::new();
        let mut reasons = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match self.item(step, index, item, scope) {
                Ok(hit) => reused.push(hit),
                Err(why) => reasons.push(format!(
                    "item {index} ({}): {why}",
                    crate::expr::to_text(item)
                )),
            }
        }
        if !reasons.is_empty() {
            return (Decision::Run { reasons }, None);
        }
        let outputs: Vec<&StepOutputs> = reused.iter().map(|(_, o)| o).collect();
        match foreach::collect(step, &outputs, self.cas) {
            Ok(collected) => {
                let from_run = reused
                    .first()
                    .map(|(run, _)| run.clone())
                    .unwrap_or_default();
                (Decision::Cached { from_run }, Some(collected.outputs))
            }
            Err(e) => (Decision::Run { reasons: vec![e] }, None),
        }
    }

    /// One item: `Ok` the run and outputs it would reuse, `Err` why it executes.
    fn item(
        &self,
        step: &Step,
        index: usize,
        item: &Value,
        scope: &RunScope<'_>,
    ) -> Result<(String, StepOutputs), String> {
        let name = foreach::item_name(&step.id, index);
        if let Some(resume) = self.resume
            && let Some(previous) = resume.reusable(&name, self.cas, self.options.verify)
            && foreach::same_item(previous, item)
        {
            return Ok((resume.run_id.clone(), previous.outputs.clone()));
        }
        let scope = RunScope {
            item: Some(item),
            run_id: scope.run_id,
            run_status: scope.run_status,
            params: scope.params,
            states: scope.states,
            outputs: scope.outputs,
            trigger: scope.trigger,
        };
        let prepared = prepare(step, &self.options.repo, &scope)?;
        if let Some(off) = cache_off(step, self.options.no_cache, self.refresh) {
            return Err(off);
        }
        let max_age = step.cache.max_age;
        match self.index.hit(
            &prepared.key,
            max_age,
            self.cas,
            self.options.verify,
            self.now,
        ) {
            Some(hit) => Ok((hit.run_id.clone(), hit.outputs.clone())),
            None => Err(self.run_reasons(&name, &prepared).join("; ")),
        }
    }
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
            Input::Path(_) | Input::Expr(_) => None,
        })
        .collect();
    reads.extend(
        step.refs()
            .into_iter()
            .chain(step.foreach_refs())
            .filter_map(|r| match r {
                Ref::Output { step, .. } | Ref::Status(step) => Some(step),
                _ => None,
            }),
    );
    reads
        .into_iter()
        .find(|up| states.get(up) != Some(&StepState::Cached))
        .map(|up| Decision::Unknown {
            reason: format!("depends on the output of {up}, which runs first"),
        })
}
