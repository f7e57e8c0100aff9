//! Registered pipelines, their runs and their trigger events: the records `twinloop server`'s
//! scheduler keeps (`twinloop_pipelines::schedule`). Plain values; the spec stays the YAML text
//! it was applied as, so a run always executes the version it was started for.

use async_trait::async_trait;
use twinloop_core::Result;

/// One applied version of a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineVersion {
    pub name: String,
    /// 1, 2, …: a new one only when the spec's digest changed.
    pub version: i64,
    /// The YAML text as applied.
    pub spec: String,
    /// SHA-256 of `spec`, hex.
    pub digest: String,
    /// The repository the steps run in.
    pub repo: String,
    /// The file as errors name it.
    pub file: String,
    pub applied_ms: i64,
}

/// What `apply` records; the version number is assigned by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPipelineVersion {
    pub name: String,
    pub spec: String,
    pub digest: String,
    pub repo: String,
    pub file: String,
}

/// One run of a pipeline, whatever started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRun {
    pub id: String,
    pub pipeline: String,
    /// The pipeline version it executes.
    pub version: i64,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELED` or `REJECTED`.
    pub state: String,
    /// `manual`, `cron`, `every`, `monitor`, `registry`, `data` or `pipeline`.
    pub trigger_kind: String,
    /// JSON: what started it (the monitor event id and alert, the registry event, the tick, the
    /// user).
    pub cause: String,
    /// JSON object of `-p` overrides.
    pub params: String,
    /// JSON list of the pipelines whose runs led to this one, oldest first, this one last: the
    /// loop guard reads it.
    pub chain: String,
    /// Why it failed or was canceled.
    pub reason: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// The liveness lease of the replica that executes it (or will, when queued): while that
    /// lease lives, no other replica settles the run.
    pub executor: Option<String>,
}

/// A trigger event as recorded: it started a run (`fired`), was held back by the policy
/// (`suppressed`, with the reason) or was a schedule tick passed while the server was down
/// (`missed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerEvent {
    /// Assigned by the store; ignored on insert.
    pub id: i64,
    pub pipeline: String,
    /// The trigger's position in the pipeline's `triggers:`.
    pub trigger_index: i64,
    /// What makes the event itself: the monitor or registry event id, the tick time. A second
    /// event with the same (pipeline, trigger, key) is refused.
    pub dedup_key: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub run_id: Option<String>,
    pub at_ms: i64,
}

/// A run's state change; `None` fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunChange {
    pub state: String,
    pub reason: Option<String>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
}

#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Records `new` as the pipeline's next version, unless its newest version has the same
    /// digest. Returns the newest version and whether this call created it.
    async fn apply_pipeline(&self, new: &NewPipelineVersion) -> Result<(PipelineVersion, bool)>;
    /// The newest version of every pipeline, by name.
    async fn pipelines(&self) -> Result<Vec<PipelineVersion>>;
    /// One version, or the newest when `version` is `None`.
    async fn pipeline_version(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<PipelineVersion>>;
    /// Inserts a run nothing triggered (a manual run).
    async fn create_pipeline_run(&self, run: &PipelineRun) -> Result<()>;
    /// Exactly-once: records `event`, inserts `run` when given and moves the trigger's cursor
    /// when given, in one transaction. `false`, with nothing written, when an event with the
    /// same (pipeline, trigger index, dedup key) was recorded before.
    async fn record_trigger_event(
        &self,
        event: &TriggerEvent,
        run: Option<&PipelineRun>,
        cursor: Option<(&str, &str)>,
    ) -> Result<bool>;
    async fn update_pipeline_run(&self, id: &str, change: &RunChange) -> Result<()>;
    async fn pipeline_run(&self, id: &str) -> Result<Option<PipelineRun>>;
    /// Runs newest first, of one pipeline or all, in one state or any.
    async fn pipeline_runs(
        &self,
        pipeline: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PipelineRun>>;
    /// Trigger events newest first, of one pipeline or all.
    async fn trigger_events(&self, pipeline: Option<&str>, limit: i64)
    -> Result<Vec<TriggerEvent>>;
    /// A trigger's saved position (the last event id or tick it has seen), by name.
    /// Runs in `state` whose executor is gone: its liveness lease has expired, or it has none.
    /// Oldest first.
    async fn orphaned_pipeline_runs(&self, state: &str, limit: i64) -> Result<Vec<PipelineRun>>;
    /// Makes `executor` the run's executor if the run is still in `state` and still orphaned;
    /// answers whether it did. Of replicas racing to settle one run, one wins.
    async fn adopt_pipeline_run(&self, id: &str, state: &str, executor: &str) -> Result<bool>;
    /// Records that someone asked to cancel the run, if it is still `QUEUED` or `RUNNING`;
    /// answers whether it is. The replica executing it acts on the request.
    async fn request_pipeline_run_cancel(&self, id: &str) -> Result<bool>;
    /// The `QUEUED` or `RUNNING` runs of `executor` that someone asked to cancel.
    async fn pipeline_runs_to_cancel(&self, executor: &str) -> Result<Vec<String>>;
    async fn pipeline_cursor(&self, pipeline: &str, name: &str) -> Result<Option<String>>;
    async fn set_pipeline_cursor(&self, pipeline: &str, name: &str, value: &str) -> Result<()>;
}
