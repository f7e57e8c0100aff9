//! What the quickstart asks its server, over the same HTTP APIs a user's client uses: apply and
//! run the pipeline, create the monitor, and wait for each turn of the loop, with a deadline on
//! every wait so that a loop that does not close fails instead of hanging.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use twinloop_api::deployments::Deployment;
use twinloop_api::monitors::{EventList, MonitorStatus};
use twinloop_api::pipelines::{
    ApplyPipeline, PipelineApplied, PipelineRun, PipelineRunList, StartRun,
};
use twinloop_features::progress::Progress;
use twinloop_features::store::FeatureStore;

use super::data::FEATURES;
use super::summary::{Stage, Summary};
use crate::client::Api;

const PIPELINE: &str = "fraud-train";
const MONITOR: &str = "fraud-watch";
const RULE: &str = "auc_drop";
const POLL: Duration = Duration::from_millis(250);

pub struct Loop {
    pub api: Arc<Api>,
}

/// Polls `check` until it gives a value, or fails with `what` after `limit`.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!(
                "the loop did not close: no {what} within {}s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn terminal(state: &str) -> bool {
    matches!(state, "SUCCEEDED" | "FAILED" | "CANCELED" | "REJECTED")
}

impl Loop {
    /// Applies the feature definitions (in the server's store) and materializes the online
    /// store over the data's days.
    pub async fn features(&self, dir: &Path, meta: twinloop_meta::StoreHandle) -> Result<String> {
        let store =
            FeatureStore::with_store(dir, meta).map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let plan = store
            .apply()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let online = store
            .online_store()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let end = twinloop_core::time::now_us();
        let done = store
            .materialize(online.as_ref(), 0, end, &[], &Progress::none())
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let rows: u64 = done.iter().map(|m| m.window_rows).sum();
        Ok(format!(
            "{} definitions applied; {rows} rows materialized online",
            plan.added.len() + plan.changed.len()
        ))
    }

    pub async fn apply(&self, dir: &Path) -> Result<PipelineApplied> {
        let file = "pipelines/fraud-train.yaml";
        let spec = std::fs::read_to_string(dir.join(file))?;
        let body = ApplyPipeline {
            file: Some(file.into()),
            repo: Some(dir.display().to_string()),
            spec: Some(spec),
        };
        self.api
            .post_as("/api/twinloop/v1/pipelines", &body, "applying the pipeline")
            .await
    }

    pub async fn run_manually(&self) -> Result<PipelineRun> {
        self.api
            .post_as(
                &format!("/api/twinloop/v1/pipelines/{PIPELINE}/runs"),
                &StartRun::default(),
                "starting the pipeline",
            )
            .await
    }

    async fn run(&self, id: &str) -> Result<PipelineRun> {
        self.api
            .get_as(&format!("/api/twinloop/v1/runs/{id}"), &[], "reading a run")
            .await
    }

    pub async fn wait_for_run(&self, run: &PipelineRun, limit: Duration) -> Result<PipelineRun> {
        wait_for(limit, &format!("end of run {}", run.id), || async {
            let now = self.run(&run.id).await?;
            Ok(terminal(&now.state).then_some(now))
        })
        .await
    }

    /// The run a trigger started after `after` (the first, manual run).
    pub async fn wait_for_triggered_run(
        &self,
        after: &str,
        limit: Duration,
    ) -> Result<PipelineRun> {
        wait_for(limit, "run started by the monitor's event", || async {
            let list: PipelineRunList = self
                .api
                .get_as(
                    "/api/twinloop/v1/runs",
                    &[("pipeline", PIPELINE)],
                    "listing runs",
                )
                .await?;
            Ok(list
                .runs
                .into_iter()
                .find(|r| r.id != after && r.trigger == "monitor"))
        })
        .await
    }

    /// The version `champion` points at, if set.
    pub async fn champion(&self) -> Result<Option<String>> {
        let answer: Result<Value> = self
            .api
            .get_as(
                "/api/2.0/mlflow/registered-models/alias",
                &[("name", "fraud"), ("alias", "champion")],
                "reading the champion",
            )
            .await;
        Ok(answer
            .ok()
            .and_then(|v| v["model_version"]["version"].as_str().map(str::to_owned)))
    }

    async fn deployment(&self) -> Result<Option<Deployment>> {
        Ok(self
            .api
            .get_as(
                "/api/twinloop/v1/deployments/fraud",
                &[],
                "reading the deployment",
            )
            .await
            .ok())
    }

    /// Waits until the deployment serves `version` alone, following `@champion`.
    pub async fn wait_until_serving(&self, version: &str, limit: Duration) -> Result<()> {
        wait_for(
            limit,
            &format!("deployment serving v{version} as champion"),
            || async {
                let Some(d) = self.deployment().await? else {
                    return Ok(None);
                };
                let follows = d.spec.as_ref().is_some_and(|s| {
                    s.routes.len() == 1 && s.routes[0].alias.as_deref() == Some("champion")
                });
                let serves = d.state.serving.len() == 1 && d.state.serving[0].version == version;
                Ok((follows && serves).then_some(()))
            },
        )
        .await
    }

    /// Whether a canary ever ran on the deployment.
    pub async fn canary_started(&self) -> Result<bool> {
        Ok(self
            .deployment()
            .await?
            .is_some_and(|d| d.state.canary.is_some()))
    }

    pub async fn create_monitor(&self) -> Result<()> {
        let body = json!({
            "name": MONITOR,
            "deployment": "fraud",
            "reference": "training",
            "window": {"rows": 40},
            "features": {"input": FEATURES},
            "prediction": "label",
            "probabilities": "probabilities",
            "label_delay_s": 0.2,
            "rules": [
                {"name": RULE, "metric": "roc_auc", "op": "<", "threshold": 0.75,
                 "actions": [{"type": "retrain"}]},
                {"name": "input_drift", "metric": "share_of_drifted_columns", "op": ">=",
                 "threshold": 0.4},
            ],
        });
        let _: Value = self
            .api
            .post_as("/api/twinloop/v1/monitors", &body, "creating the monitor")
            .await?;
        Ok(())
    }

    async fn monitor(&self) -> Result<MonitorStatus> {
        self.api
            .get_as(
                &format!("/api/twinloop/v1/monitors/{MONITOR}"),
                &[],
                "reading the monitor",
            )
            .await
    }

    /// The ROC AUC of the monitor's first `n` closed windows, once it has them.
    pub async fn wait_for_windows(&self, n: usize, limit: Duration) -> Result<Vec<f64>> {
        wait_for(limit, &format!("{n} evaluated monitor windows"), || async {
            let status = self.monitor().await?;
            if let Some(e) = &status.state.error {
                bail!("the monitor cannot evaluate: {e}");
            }
            let aucs: Vec<f64> = status
                .windows
                .iter()
                .filter_map(|w| {
                    w.metrics
                        .get("roc_auc")
                        .map(|v| (v * 1000.0).round() / 1000.0)
                })
                .collect();
            Ok((aucs.len() >= n).then_some(aucs))
        })
        .await
    }

    pub async fn firing(&self) -> Result<bool> {
        let status = self.monitor().await?;
        Ok(status
            .state
            .rules
            .get(RULE)
            .is_some_and(|r| r.state == "firing"))
    }

    /// The id of the monitor's `retrain_requested` event.
    pub async fn wait_for_retrain_event(&self, limit: Duration) -> Result<i64> {
        wait_for(limit, "retrain_requested event", || async {
            let list: EventList = self
                .api
                .get_as(
                    "/api/twinloop/v1/monitors/events",
                    &[],
                    "reading monitor events",
                )
                .await?;
            Ok(list
                .events
                .iter()
                .find(|e| e.kind == "retrain_requested")
                .map(|e| e.id))
        })
        .await
    }

    pub async fn wait_until_resolved(&self, limit: Duration) -> Result<()> {
        wait_for(limit, "resolved alert", || async {
            Ok((!self.firing().await?).then_some(()))
        })
        .await
    }

    /// The bad-model scenario's end: the run was rejected by the gate, the champion stayed and
    /// no canary started.
    pub async fn rejected(
        &self,
        run: &PipelineRun,
        v1: &str,
        summary: &mut Summary,
        stage: Stage,
    ) -> Result<()> {
        if run.state != "REJECTED" {
            bail!(
                "the broken retrain should have been rejected by the gate, but its run ended {}: {}",
                run.state,
                run.reason.clone().unwrap_or_default()
            );
        }
        let champion = self.champion().await?;
        if champion.as_deref() != Some(v1) {
            bail!("the champion moved to {champion:?} although the gate rejected the candidate");
        }
        if self.canary_started().await? {
            bail!("a canary started although the gate rejected the candidate");
        }
        let why = run.reason.clone().unwrap_or_default();
        summary.done(
            stage,
            format!("REJECTED, as intended: {why}; champion stays v{v1}, no canary"),
        );
        summary.champion = Some(v1.to_owned());
        Ok(())
    }
}
