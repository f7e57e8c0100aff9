//! A pipeline run as tracking and lineage see it. The run is an MLflow parent run in the
//! pipeline's experiment; each step attempt a nested run (which a step's own `mlflow` client
//! resumes through `MLFLOW_RUN_ID`), and so a lineage execution; each stored output an artifact
//! node keyed by its content digest, so the step that reads it links to the same node; the
//! pipeline run a context holding its executions. Recording is best effort: a store that fails
//! is logged and the run goes on, because the steps' results do not depend on it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use twinloop_core::lineage::{EventKind, NewNode, NodeKind, NodeRef};
use twinloop_core::tracking::{Metric, NewRun, Param, RunStatus as MlflowStatus, RunUpdate, Tag};

use crate::services::Services;
use crate::spec::OutputKind;
use crate::state::{RunStatus, StepOutputs, StepState};

/// Where a run is recorded; `None` parts mean it is not.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    target: Option<Target>,
}

#[derive(Clone)]
struct Target {
    services: Services,
    experiment_id: String,
    parent_run: String,
    context: Option<NodeRef>,
    run_id: String,
}

/// An attempt's run in tracking.
#[derive(Debug, Clone)]
pub(crate) struct TrackedAttempt {
    pub run_id: String,
    pub experiment_id: String,
    pub tracking_uri: Option<String>,
}

fn warn(what: &str, error: &twinloop_core::Error) {
    tracing::warn!(error = %error, "cannot record {what}; the run goes on");
}

fn mlflow_status(state: StepState) -> MlflowStatus {
    match state {
        StepState::Succeeded | StepState::Cached | StepState::Skipped => MlflowStatus::Finished,
        StepState::Canceled => MlflowStatus::Killed,
        _ => MlflowStatus::Failed,
    }
}

fn node_type(kind: OutputKind) -> &'static str {
    match kind {
        OutputKind::File => "File",
        OutputKind::Dir => "Directory",
        OutputKind::Metrics => "Metrics",
        OutputKind::Value => "Value",
    }
}

/// Files and directories are artifacts; metrics and values are properties of the step that
/// produced them (two steps answering `true` share no artifact).
fn is_artifact(kind: OutputKind) -> bool {
    matches!(kind, OutputKind::File | OutputKind::Dir)
}

/// The tracking run of the step that produced the file with this content digest, found
/// through lineage: a model version registered from it belongs to the run that trained it.
pub(crate) async fn producing_run(services: &Services, digest: &str) -> Option<String> {
    let store = &services.store;
    let node = store.resolve_node(&format!("cas:{digest}")).await.ok()?;
    let graph = store
        .lineage_graph(node.node, twinloop_core::lineage::Direction::Upstream, 1)
        .await
        .ok()?;
    graph
        .nodes
        .iter()
        .filter_map(|n| n.external_id.as_deref()?.strip_prefix("run:"))
        .next()
        .map(str::to_owned)
}

/// The event that started a run, as a lineage artifact its run read: a monitor's alert (one
/// node per monitor event, however many runs it led to), a registry event, a tick, a data
/// snapshot. A run started by hand has no such cause.
fn cause_node(cause: &Value) -> Option<NewNode> {
    let kind = cause.get("kind")?.as_str()?;
    if kind == "manual" {
        return None;
    }
    let payload = cause.get("payload").cloned().unwrap_or(Value::Null);
    let external_id = match payload.get("monitor_event_id").and_then(Value::as_i64) {
        Some(id) => format!("monitor_event:{id}"),
        None => {
            let digest = crate::cache::digest::bytes_digest(payload.to_string().as_bytes());
            format!("trigger:{kind}:{}", &digest[..16])
        }
    };
    Some(NewNode {
        node_type: format!("{kind}_trigger"),
        name: external_id.clone(),
        uri: None,
        external_id: Some(external_id),
        properties: Some(payload.to_string()),
    })
}

/// The lineage node of stored content: one per digest, whoever produced or read it.
fn content_node(name: &str, kind: OutputKind, digest: &str) -> NewNode {
    NewNode {
        node_type: node_type(kind).into(),
        name: name.to_owned(),
        uri: Some(format!("cas:sha256:{digest}")),
        external_id: Some(format!("cas:{digest}")),
        properties: Some(json!({"sha256": digest}).to_string()),
    }
}

/// The node of bytes a step wrote that were already upstream of it (a copy, a passthrough, a
/// step that reproduces its input's content): the content's own node belongs to whoever first
/// produced it, and an output edge to it would close a cycle.
fn reproduced_node(name: &str, kind: OutputKind, digest: &str, execution: NodeRef) -> NewNode {
    NewNode {
        external_id: Some(format!("cas:{digest}@{execution}")),
        properties: Some(json!({"sha256": digest, "reproduced": true}).to_string()),
        ..content_node(name, kind, digest)
    }
}

/// Output events for a step's stored outputs: to the content's node, or to a node of its own
/// where the content is already upstream of the step.
async fn put_outputs(
    store: &twinloop_meta::StoreHandle,
    execution: NodeRef,
    step: &str,
    outputs: &StepOutputs,
) -> twinloop_core::Result<()> {
    for (name, output) in outputs.iter().filter(|(_, o)| is_artifact(o.kind)) {
        let name = format!("{step}.{name}");
        let node = store
            .put_node(
                NodeKind::Artifact,
                content_node(&name, output.kind, &output.digest),
            )
            .await?;
        if store.is_downstream(node.node, execution).await? {
            let own = reproduced_node(&name, output.kind, &output.digest, execution);
            let own = store.put_node(NodeKind::Artifact, own).await?;
            store
                .put_event(own.node, execution, EventKind::Output)
                .await?;
        } else {
            store
                .put_event(node.node, execution, EventKind::Output)
                .await?;
        }
    }
    Ok(())
}

impl Recorder {
    /// Opens the pipeline's experiment (created on first use) and the run's parent run.
    pub async fn start(
        services: Option<&Services>,
        pipeline: &str,
        run_id: &str,
        params: &BTreeMap<String, Value>,
        cause: Option<&Value>,
    ) -> Recorder {
        let Some(services) = services else {
            return Recorder::default();
        };
        match Self::open(services, pipeline, run_id, params, cause).await {
            Ok(target) => Recorder {
                target: Some(target),
            },
            Err(e) => {
                warn("the pipeline run in tracking", &e);
                Recorder::default()
            }
        }
    }

    async fn open(
        services: &Services,
        pipeline: &str,
        run_id: &str,
        params: &BTreeMap<String, Value>,
        cause: Option<&Value>,
    ) -> twinloop_core::Result<Target> {
        let store = &services.store;
        let experiment_id = match store.get_experiment_by_name(pipeline).await {
            Ok(e) => e.experiment_id,
            Err(e) if e.kind == twinloop_core::ErrorKind::NotFound => {
                let tags = [Tag::new("twinloop.pipeline", pipeline)];
                store.create_experiment(pipeline, None, &tags).await?
            }
            Err(e) => return Err(e),
        };
        let parent = store
            .create_run(NewRun {
                experiment_id: experiment_id.clone(),
                user_id: "twinloop-pipelines".into(),
                run_name: Some(format!("{pipeline} {run_id}")),
                start_time: Some(twinloop_core::time::now_ms()),
                tags: vec![
                    Tag::new("twinloop.pipeline", pipeline),
                    Tag::new("twinloop.pipeline_run", run_id),
                ],
            })
            .await?;
        let params: Vec<Param> = params
            .iter()
            .map(|(k, v)| Param {
                key: k.clone(),
                value: crate::expr::to_text(v),
            })
            .collect();
        store
            .log_batch(&parent.info.run_id, &[], &params, &[])
            .await?;
        let mut properties = json!({"pipeline": pipeline, "mlflow_run_id": parent.info.run_id});
        if let Some(cause) = cause {
            properties["cause"] = cause.clone();
        }
        let context = store
            .put_node(
                NodeKind::Context,
                NewNode {
                    node_type: "pipeline_run".into(),
                    name: format!("{pipeline} {run_id}"),
                    uri: None,
                    external_id: Some(format!("pipeline_run:{run_id}")),
                    properties: Some(properties.to_string()),
                },
            )
            .await?;
        if let Some(cause) = cause.and_then(cause_node) {
            let event = store.put_node(NodeKind::Artifact, cause).await?;
            let execution = store
                .resolve_node(&format!("run:{}", parent.info.run_id))
                .await?;
            store
                .put_event(event.node, execution.node, EventKind::Input)
                .await?;
        }
        Ok(Target {
            services: services.clone(),
            experiment_id,
            parent_run: parent.info.run_id,
            context: Some(context.node),
            run_id: run_id.to_owned(),
        })
    }

    /// The nested run of one step attempt.
    pub async fn attempt(&self, step: &str, attempt: u32) -> Option<TrackedAttempt> {
        let target = self.target.as_ref()?;
        let created = target
            .services
            .store
            .create_run(NewRun {
                experiment_id: target.experiment_id.clone(),
                user_id: "twinloop-pipelines".into(),
                run_name: Some(if attempt == 1 {
                    step.to_owned()
                } else {
                    format!("{step} (attempt {attempt})")
                }),
                start_time: Some(twinloop_core::time::now_ms()),
                tags: vec![
                    Tag::new("mlflow.parentRunId", &target.parent_run),
                    Tag::new("twinloop.pipeline_run", &target.run_id),
                    Tag::new("twinloop.step", step),
                    Tag::new("twinloop.attempt", attempt.to_string()),
                ],
            })
            .await;
        let run = match created {
            Ok(run) => run,
            Err(e) => {
                warn("a step attempt in tracking", &e);
                return None;
            }
        };
        if let Some(context) = target.context {
            let node = target
                .services
                .store
                .resolve_node(&format!("run:{}", run.info.run_id))
                .await;
            match node {
                Ok(node) => {
                    if let Err(e) = target
                        .services
                        .store
                        .put_membership(context, node.node)
                        .await
                    {
                        warn("a step in its pipeline run", &e);
                    }
                }
                Err(e) => warn("a step's execution", &e),
            }
        }
        Some(TrackedAttempt {
            run_id: run.info.run_id,
            experiment_id: target.experiment_id.clone(),
            tracking_uri: target.services.tracking_uri.clone(),
        })
    }

    /// Notes on an attempt's run (its execution in lineage) which executor runs it and the id
    /// that executor gave it.
    pub async fn external(
        &self,
        tracked: &TrackedAttempt,
        executor: &str,
        handle: &crate::exec::executor::Handle,
    ) {
        let Some(target) = &self.target else {
            return;
        };
        let tags = [
            Tag::new("twinloop.executor", executor),
            Tag::new("twinloop.executor_kind", &handle.executor),
            Tag::new("twinloop.external_id", &handle.id),
        ];
        if let Err(e) = target
            .services
            .store
            .log_batch(&tracked.run_id, &[], &[], &tags)
            .await
        {
            warn("a remote attempt's handle", &e);
        }
    }

    /// Ends an attempt's run: its status, its metrics outputs as metrics, and lineage events
    /// for what it read (`inputs`: name → (kind, digest)) and wrote.
    pub async fn attempt_ended(
        &self,
        tracked: &TrackedAttempt,
        step: &str,
        state: StepState,
        inputs: &BTreeMap<String, (OutputKind, String)>,
        outputs: &StepOutputs,
    ) {
        let Some(target) = &self.target else {
            return;
        };
        let store = &target.services.store;
        let now = twinloop_core::time::now_ms();
        let metrics: Vec<Metric> = outputs
            .values()
            .filter(|o| o.kind == OutputKind::Metrics)
            .filter_map(|o| o.value.as_ref()?.as_object().cloned())
            .flatten()
            .filter_map(|(key, value)| {
                Some(Metric {
                    key,
                    value: value.as_f64()?,
                    timestamp: now,
                    step: 0,
                    model_id: None,
                    dataset_name: None,
                    dataset_digest: None,
                    run_id: None,
                })
            })
            .collect();
        if !metrics.is_empty()
            && let Err(e) = store.log_batch(&tracked.run_id, &metrics, &[], &[]).await
        {
            warn("a step's metrics", &e);
        }
        if let Err(e) = self.link(tracked, step, inputs, outputs).await {
            warn("a step's lineage", &e);
        }
        let update = RunUpdate {
            status: Some(mlflow_status(state)),
            end_time: Some(now),
            run_name: None,
        };
        if let Err(e) = store.update_run(&tracked.run_id, update).await {
            warn("a step attempt's end", &e);
        }
    }

    async fn link(
        &self,
        tracked: &TrackedAttempt,
        step: &str,
        inputs: &BTreeMap<String, (OutputKind, String)>,
        outputs: &StepOutputs,
    ) -> twinloop_core::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let store = &target.services.store;
        let execution = store
            .resolve_node(&format!("run:{}", tracked.run_id))
            .await?
            .node;
        for (name, (kind, digest)) in inputs.iter().filter(|(_, (k, _))| is_artifact(*k)) {
            let node = store
                .put_node(NodeKind::Artifact, content_node(name, *kind, digest))
                .await?;
            store
                .put_event(node.node, execution, EventKind::Input)
                .await?;
        }
        put_outputs(store, execution, step, outputs).await
    }

    /// A step reused from run `from`: an execution in state `CACHED` pointing at it, linked to
    /// the same content.
    pub async fn reused(&self, step: &str, from: &str, outputs: &StepOutputs) {
        let Some(target) = &self.target else {
            return;
        };
        let store = &target.services.store;
        let recorded = async {
            let execution = store
                .put_node(
                    NodeKind::Execution,
                    NewNode {
                        node_type: "pipeline.step".into(),
                        name: step.to_owned(),
                        uri: None,
                        external_id: Some(format!("pipeline_step:{}/{step}", target.run_id)),
                        properties: Some(
                            json!({"state": "CACHED", "cached_from": format!("pipeline_step:{from}/{step}")})
                                .to_string(),
                        ),
                    },
                )
                .await?
                .node;
            if let Some(context) = target.context {
                store.put_membership(context, execution).await?;
            }
            put_outputs(store, execution, step, outputs).await
        };
        if let Err(e) = recorded.await {
            warn("a cached step", &e);
        }
    }

    /// Ends the parent run with the pipeline run's status.
    pub async fn finish(&self, status: RunStatus) {
        let Some(target) = &self.target else {
            return;
        };
        let status = match status {
            RunStatus::Succeeded | RunStatus::Rejected => MlflowStatus::Finished,
            RunStatus::Canceled => MlflowStatus::Killed,
            RunStatus::Failed | RunStatus::Running => MlflowStatus::Failed,
        };
        let store = &target.services.store;
        let tags = [Tag::new("twinloop.status", format!("{status:?}"))];
        if let Err(e) = store.log_batch(&target.parent_run, &[], &[], &tags).await {
            warn("the pipeline run's status", &e);
        }
        let update = RunUpdate {
            status: Some(status),
            end_time: Some(twinloop_core::time::now_ms()),
            run_name: None,
        };
        if let Err(e) = store.update_run(&target.parent_run, update).await {
            warn("the pipeline run's end", &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_one_node_per_event_and_a_manual_run_has_none() {
        let alert = json!({"kind": "monitor", "payload": {"monitor_event_id": 7, "alert": {}}});
        let node = cause_node(&alert).unwrap();
        assert_eq!(node.external_id.as_deref(), Some("monitor_event:7"));
        assert_eq!(node.node_type, "monitor_trigger");
        let tick = json!({"kind": "every", "payload": {"tick_ms": 1}});
        let again = cause_node(&tick).unwrap().external_id;
        assert_eq!(
            again,
            cause_node(&tick).unwrap().external_id,
            "stable per event"
        );
        assert!(again.unwrap().starts_with("trigger:every:"));
        assert!(cause_node(&json!({"kind": "manual", "payload": {}})).is_none());
    }
}
