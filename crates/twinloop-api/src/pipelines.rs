//! Wire types of the native API: registered pipelines (`/pipelines`), their runs (`/runs`) and
//! triggers (`/triggers`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The body of `POST /pipelines`: a pipeline file's text and the repository its steps run in
/// (a directory on the server's machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyPipeline {
    /// How errors name the file (`pipelines/train.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
}

/// What changed from the registered version: the plan diff `apply` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineDiff {
    pub policy_changed: bool,
    pub steps_added: Vec<String>,
    pub steps_changed: Vec<String>,
    pub steps_removed: Vec<String>,
    pub triggers_added: Vec<String>,
    pub triggers_removed: Vec<String>,
}

/// The answer of `POST /pipelines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineApplied {
    /// Whether a new version was recorded (an unchanged file makes none).
    pub created: bool,
    pub diff: PipelineDiff,
    pub pipeline: Pipeline,
}

/// A registered pipeline: its newest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    pub applied_ms: i64,
    pub digest: String,
    pub file: String,
    pub name: String,
    pub repo: String,
    /// The file's text; left out of listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    pub version: i64,
}

/// The answer of `GET /pipelines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineList {
    pub pipelines: Vec<Pipeline>,
}

/// The body of `POST /pipelines/{name}/runs`: `-p` overrides, each value read as YAML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRun {
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// A pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRun {
    /// What started it: the monitor event and its alert, the registry event, the tick, the user.
    pub cause: serde_json::Value,
    /// The pipelines whose runs led to this one, this one last (the loop guard reads it).
    pub chain: Vec<String>,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
    pub id: String,
    pub params: serde_json::Value,
    pub pipeline: String,
    pub reason: Option<String>,
    pub started_ms: Option<i64>,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELED` or `REJECTED`.
    pub state: String,
    /// `manual`, `cron`, `every`, `monitor`, `registry` or `pipeline`.
    pub trigger: String,
    pub version: i64,
}

/// The answer of `GET /runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRunList {
    pub runs: Vec<PipelineRun>,
}

/// A recorded trigger event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerEvent {
    pub at_ms: i64,
    /// The event's identity for exactly-once: a monitor or registry event id, a tick.
    pub dedup_key: String,
    pub id: i64,
    /// `fired`, `suppressed` or `missed`.
    pub outcome: String,
    /// Why it was suppressed (`cooldown`, `concurrency`, `max_runs_per_day`, `loop_guard`) or
    /// missed.
    pub reason: Option<String>,
    pub run_id: Option<String>,
}

/// One trigger of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub description: String,
    pub index: i64,
    pub kind: String,
    /// The next tick of a schedule.
    pub next_ms: Option<i64>,
    /// Its events are recorded as suppressed (`paused`) instead of starting runs.
    pub paused: bool,
    pub pipeline: String,
    /// Newest first.
    pub recent: Vec<TriggerEvent>,
}

/// The body of `POST /triggers/pause` and `/triggers/resume`: one trigger of a pipeline, or
/// all of them when `index` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

/// The answer of `GET /triggers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerList {
    pub triggers: Vec<Trigger>,
}

/// What a run under way did, as `GET /pipelines/events` streams it (server-sent events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineEvent {
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// `run_started`, `step_started`, `step_retrying`, `step_finished` or `run_finished`.
    pub kind: String,
    pub pipeline: String,
    /// Why a step was skipped, failed or is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub run_id: String,
    /// A step's or the run's end state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// The first event (`event: lost`) of a `GET /pipelines/events` that resumed after an event the
/// server no longer keeps (too old, or sent by an earlier server process): the events between
/// are gone, so re-read the runs (`GET /runs`); the stream goes on from the oldest kept event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineEventsLost {
    /// The event id the client resumed after.
    pub after: String,
    /// The oldest event still kept, which comes next; absent when none is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn events_round_trip() {
        round_trips::<PipelineEvent>(
            r#"{"at_ms":1764300000000,"attempt":2,"kind":"step_retrying","pipeline":"p","reason":"exited with 1","run_id":"r","step":"train"}"#,
        );
        round_trips::<PipelineEvent>(
            r#"{"at_ms":1,"kind":"run_finished","pipeline":"p","run_id":"r","state":"REJECTED"}"#,
        );
        round_trips::<PipelineEventsLost>(
            r#"{"after":"1764300000000-12","oldest":"1764300000000-40"}"#,
        );
        round_trips::<PipelineEventsLost>(r#"{"after":"1764299999999-3"}"#);
    }

    #[test]
    fn apply_and_pipelines_round_trip() {
        round_trips::<ApplyPipeline>(
            r#"{"file":"pipelines/train.yaml","repo":"/srv/repo","spec":"pipeline: train\n"}"#,
        );
        round_trips::<ApplyPipeline>("{}");
        round_trips::<PipelineApplied>(
            r#"{"created":true,"diff":{"policy_changed":false,"steps_added":["a"],"steps_changed":[],"steps_removed":[],"triggers_added":["every 2s"],"triggers_removed":[]},"pipeline":{"applied_ms":1764300000000,"digest":"ab12","file":"p.yaml","name":"train","repo":"/srv/repo","version":1}}"#,
        );
        round_trips::<PipelineList>(
            r#"{"pipelines":[{"applied_ms":1,"digest":"ab","file":"p.yaml","name":"train","repo":"/r","spec":"pipeline: train\n","version":2}]}"#,
        );
        round_trips::<StartRun>(r#"{"params":{"lr":"0.2"}}"#);
        round_trips::<TriggerTarget>(r#"{"index":0,"pipeline":"train"}"#);
        round_trips::<TriggerTarget>(r#"{"pipeline":"train"}"#);
    }

    #[test]
    fn runs_and_triggers_round_trip() {
        round_trips::<PipelineRunList>(
            r#"{"runs":[{"cause":{"alert":{"rule":"drift"},"monitor":"m","monitor_event_id":7},"chain":["train"],"created_ms":10,"ended_ms":null,"id":"0123abcd","params":{},"pipeline":"train","reason":null,"started_ms":11,"state":"RUNNING","trigger":"monitor","version":1}]}"#,
        );
        round_trips::<TriggerList>(
            r#"{"triggers":[{"description":"every 2s","index":0,"kind":"every","next_ms":12000,"paused":false,"pipeline":"train","recent":[{"at_ms":10000,"dedup_key":"10000","id":3,"outcome":"suppressed","reason":"cooldown","run_id":null}]}]}"#,
        );
    }
}
