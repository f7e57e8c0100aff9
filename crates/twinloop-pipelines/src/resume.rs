//! `--resume RUN_ID` (section 5 of the design): the steps that run ended `SUCCEEDED` or `CACHED`
//! are reused whatever the cache settings, once their outputs are found in the store as a cache
//! hit's are; the rest run again under a new run id. A gate overridden by `pipeline bless` is
//! reused through the override's execution, the newest of its step in the run. A remote attempt
//! the run left running (its executor's handle recorded, no end seen) is reattached to rather
//! than started again, when the step's cache key is still the one it was started with.

use std::collections::BTreeMap;
use std::path::Path;

use crate::bless::Override;
use crate::cache::{Cas, Execution, Index};
use crate::error::Error;
use crate::exec::remote::Running;

/// What a run being resumed left behind: its last execution of each step.
pub(crate) struct Resume {
    pub run_id: String,
    steps: BTreeMap<String, Execution>,
    /// The gates `pipeline bless` overrode, by step.
    overrides: BTreeMap<String, Override>,
    /// Remote attempts that had not ended when the run stopped, by step (or item) name.
    running: BTreeMap<String, Running>,
}

impl Resume {
    /// The run's executions; a run the index does not know, or a run of another pipeline, is an
    /// error rather than a resume that silently reuses nothing.
    pub(crate) fn load(
        index: &Index,
        home: &Path,
        pipeline: &str,
        run_id: &str,
    ) -> Result<Resume, Error> {
        let mut steps = BTreeMap::new();
        for execution in index.executions().iter().filter(|e| e.run_id == run_id) {
            if execution.pipeline != pipeline {
                return Err(Error::ResumeOtherPipeline {
                    run_id: run_id.to_owned(),
                    theirs: execution.pipeline.clone(),
                    ours: pipeline.to_owned(),
                });
            }
            steps.insert(execution.step.clone(), execution.clone());
        }
        let running = crate::exec::remote::running(&home.join("runs").join(run_id));
        if let Some(other) = running.values().find(|r| r.record.pipeline != pipeline) {
            return Err(Error::ResumeOtherPipeline {
                run_id: run_id.to_owned(),
                theirs: other.record.pipeline.clone(),
                ours: pipeline.to_owned(),
            });
        }
        if steps.is_empty() && running.is_empty() {
            return Err(Error::UnknownRun(run_id.to_owned()));
        }
        let overrides = crate::bless::overrides(home, run_id)
            .map_err(|e| Error::io("cannot read the gate overrides", e))?
            .into_iter()
            .map(|o| (o.step.clone(), o))
            .collect();
        Ok(Resume {
            run_id: run_id.to_owned(),
            steps,
            overrides,
            running,
        })
    }

    /// The remote attempt of `step` (or item) to reattach to: it had not ended, and the step
    /// about to run has the cache key it was started with.
    pub(crate) fn running(&self, step: &str, key: &str) -> Option<&Running> {
        self.running.get(step).filter(|r| r.record.key == key)
    }

    /// Why a reused step is what it is when a person said so: "overridden by who: why".
    pub(crate) fn note(&self, step: &str) -> Option<String> {
        self.overrides.get(step).map(Override::note)
    }

    /// The execution of `step` to reuse: it ended well and its every output is still in the
    /// store (rehashed with `verify`).
    pub(crate) fn reusable(&self, step: &str, cas: &Cas, verify: bool) -> Option<&Execution> {
        self.steps.get(step).filter(|e| {
            e.state.ok()
                && e.outputs
                    .values()
                    .all(|o| cas.present(o.kind, &o.digest, verify))
        })
    }
}
