//! The monitors of a server: created and listed through the native API, evaluated by a
//! background tick that closes windows over the prediction log, stores their metric series,
//! moves alert rules and carries out their actions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use twinloop_artifacts::ArtifactStore;
use twinloop_core::monitoring::{Label, MetricPoint, MonitorRecord};
use twinloop_core::time::{now_ms, now_us};
use twinloop_core::webhook::{self, Attempt, DeliveryLog, Outcome, WebhookTransport};
use twinloop_meta::{MonitorStore, RegistryStore, TrackingStore};
use twinloop_monitor::io::{Table, read_table};
use twinloop_monitor::{Options, run_drift};

use crate::alerts::{RuleState, Transition, step};
use crate::frame::to_table;
use crate::log::{Logged, read_after};
use crate::performance::{join, metrics as performance};
use crate::spec::{Action, AlertRule, MonitorSpec, Window};

/// What monitors need of the deployments: the server implements it with its deployment manager.
#[async_trait]
pub trait Deployments: Send + Sync {
    /// The rollback action.
    async fn rollback(&self, deployment: &str) -> Result<String, String>;
    /// The registered model and version answering most of the deployment's traffic.
    fn serving(&self, deployment: &str) -> Option<(String, String)>;
}

/// `reference: "training"`: the dataset the serving version's run logged as its training input.
pub const TRAINING_REFERENCE: &str = "training";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MonitorError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MonitorState {
    /// Predictions up to this time (µs) are in closed windows.
    pub cursor_us: i64,
    pub windows: u64,
    #[serde(default)]
    pub rules: BTreeMap<String, RuleState>,
    /// The last window's metrics and bounds (µs).
    #[serde(default)]
    pub last: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_window: Option<(i64, i64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The reference file in use (the spec's path, or the one found through lineage).
    #[serde(default)]
    pub reference_path: String,
}

struct Watched {
    spec: MonitorSpec,
    state: MonitorState,
    reference: Arc<Table>,
}

/// How a monitor's windows relate to the log: segments reach the store up to `flush_lag` after
/// their rows, and a window waits `label_delay` more for its labels.
pub struct Monitors {
    store: Arc<dyn MonitorStore>,
    registry: Arc<dyn RegistryStore>,
    tracking: Arc<dyn TrackingStore>,
    artifacts: ArtifactStore,
    deployments: Arc<dyn Deployments>,
    flush_lag: Duration,
    watched: Mutex<BTreeMap<String, Watched>>,
    /// Held while a monitor's windows are evaluated, so that a deletion waits for the window in
    /// flight instead of having its points and events written after it.
    evaluating: Mutex<()>,
    /// Alert webhooks go out through the server's HTTP transport.
    webhooks: Arc<dyn WebhookTransport>,
}

fn unknown_monitor(name: &str) -> MonitorError {
    MonitorError::NotFound(format!(
        "no monitor {name:?} (hint: `twinloop monitor list` lists the monitors)"
    ))
}

fn failed(e: impl std::fmt::Display) -> MonitorError {
    MonitorError::Failed(e.to_string())
}

async fn load_reference(path: &str) -> Result<Arc<Table>, MonitorError> {
    let p = std::path::PathBuf::from(path);
    let table = tokio::task::spawn_blocking(move || read_table(&p))
        .await
        .map_err(failed)?
        .map_err(|e| MonitorError::Invalid(format!("reference: {e}")))?;
    Ok(Arc::new(table))
}

impl Monitors {
    pub fn new(
        store: Arc<dyn MonitorStore>,
        registry: Arc<dyn RegistryStore>,
        tracking: Arc<dyn TrackingStore>,
        artifacts: ArtifactStore,
        deployments: Arc<dyn Deployments>,
        webhooks: Arc<dyn WebhookTransport>,
        flush_lag: Duration,
    ) -> Arc<Monitors> {
        Arc::new(Monitors {
            store,
            registry,
            tracking,
            artifacts,
            deployments,
            flush_lag,
            watched: Mutex::new(BTreeMap::new()),
            evaluating: Mutex::new(()),
            webhooks,
        })
    }

    /// The reference file of `spec`: its path, or for `"training"` the training dataset that the
    /// run of the deployment's serving version logged (lineage: version → run → dataset input).
    async fn reference_path(&self, spec: &MonitorSpec) -> Result<String, MonitorError> {
        if spec.reference != TRAINING_REFERENCE {
            return Ok(spec.reference.clone());
        }
        let invalid = MonitorError::Invalid;
        let (model, version) = self.deployments.serving(&spec.deployment).ok_or_else(|| {
            invalid(format!(
                "reference \"training\": no deployment {:?} is serving",
                spec.deployment
            ))
        })?;
        let mv = self
            .registry
            .get_model_version(&model, &version)
            .await
            .map_err(|e| invalid(e.message))?;
        let run_id = Some(mv.run_id).filter(|r| !r.is_empty()).ok_or_else(|| {
            invalid(format!(
                "reference \"training\": {model} version {version} has no run to find its training set through"
            ))
        })?;
        let run = self
            .tracking
            .get_run(&run_id)
            .await
            .map_err(|e| invalid(e.message))?;
        run.inputs
            .iter()
            .filter(|i| {
                i.tags
                    .iter()
                    .any(|t| t.key == "mlflow.data.context" && t.value == "training")
            })
            .find_map(|i| {
                let source: Value = serde_json::from_str(&i.dataset.source).ok()?;
                let uri = source.get("uri")?.as_str()?;
                Some(uri.strip_prefix("file://").unwrap_or(uri).to_string())
            })
            .ok_or_else(|| {
                invalid(format!(
                    "reference \"training\": run {run_id} of {model} version {version} logged no training \
                     dataset with a file uri (hint: twinloop features get-historical --run-id, or give the \
                     reference's path)"
                ))
            })
    }

    /// Loads the stored monitors (one whose reference cannot be read is skipped, with a log line).
    pub async fn restore(&self) -> Result<(), MonitorError> {
        let mut watched = self.watched.lock().await;
        for record in self.store.monitors().await.map_err(|e| failed(e.message))? {
            let (Ok(spec), Ok(state)) = (
                serde_json::from_str::<MonitorSpec>(&record.spec),
                serde_json::from_str::<MonitorState>(&record.state),
            ) else {
                tracing::error!(monitor = %record.name, "stored monitor is unreadable; skipped");
                continue;
            };
            let path = if state.reference_path.is_empty() {
                spec.reference.clone()
            } else {
                state.reference_path.clone()
            };
            match load_reference(&path).await {
                Ok(reference) => {
                    watched.insert(
                        spec.name.clone(),
                        Watched {
                            spec,
                            state,
                            reference,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(monitor = %record.name, error = %e, "cannot load the monitor's reference")
                }
            }
        }
        Ok(())
    }

    async fn persist(&self, w: &Watched) {
        let record = MonitorRecord {
            name: w.spec.name.clone(),
            spec: serde_json::to_string(&w.spec).expect("specs serialise"),
            state: serde_json::to_string(&w.state).expect("states serialise"),
            update_time: 0,
        };
        if let Err(e) = self.store.put_monitor(&record).await {
            tracing::error!(monitor = %w.spec.name, error = %e.message, "cannot save the monitor");
        }
    }

    /// Starts watching from now.
    pub async fn create(&self, spec: MonitorSpec) -> Result<Value, MonitorError> {
        spec.validate().map_err(MonitorError::Invalid)?;
        if self.deployments.serving(&spec.deployment).is_none() {
            return Err(MonitorError::NotFound(format!(
                "no deployment {:?} is serving, so there is nothing to watch (hint: `twinloop deploy status` lists the deployments)",
                spec.deployment
            )));
        }
        let reference_path = self.reference_path(&spec).await?;
        let reference = load_reference(&reference_path).await?;
        let mut watched = self.watched.lock().await;
        if watched.contains_key(&spec.name) {
            return Err(MonitorError::Invalid(format!(
                "monitor {:?} already exists",
                spec.name
            )));
        }
        let state = MonitorState {
            cursor_us: now_us(),
            rules: spec
                .rules
                .iter()
                .map(|r| (r.name.clone(), RuleState::default()))
                .collect(),
            reference_path,
            ..MonitorState::default()
        };
        let w = Watched {
            spec,
            state,
            reference,
        };
        self.persist(&w).await;
        let name = w.spec.name.clone();
        watched.insert(name.clone(), w);
        drop(watched);
        self.status(&name, 0).await
    }

    /// Stops the monitor and deletes it with its history (metric points and events): a monitor
    /// created later under the same name starts empty.
    pub async fn delete(&self, name: &str) -> Result<(), MonitorError> {
        let Some(gone) = self.watched.lock().await.remove(name) else {
            return Err(unknown_monitor(name));
        };
        let _no_window_in_flight = self.evaluating.lock().await;
        // The gauges cannot be removed from the exporter; a deleted monitor must at least not
        // go on reporting a firing alert.
        for rule in gone.state.rules.keys() {
            metrics::gauge!("twinloop_monitor_alert_firing", "monitor" => name.to_string(), "rule" => rule.clone())
                .set(0.0);
        }
        self.store
            .delete_monitor(name)
            .await
            .map_err(|e| failed(e.message))?;
        Ok(())
    }

    pub async fn list(&self) -> Value {
        let watched = self.watched.lock().await;
        let all: Vec<Value> = watched
            .values()
            .map(|w| json!({"name": w.spec.name, "deployment": w.spec.deployment, "windows": w.state.windows,
                "firing": w.state.rules.iter().filter(|(_, r)| r.state == "firing").map(|(n, _)| n.clone()).collect::<Vec<_>>()}))
            .collect();
        json!({"monitors": all})
    }

    /// Spec, state, the last `windows` closed windows (oldest first) and the latest points of
    /// each metric (oldest first).
    pub async fn status(&self, name: &str, windows: usize) -> Result<Value, MonitorError> {
        let (spec, state) = {
            let watched = self.watched.lock().await;
            let w = watched.get(name).ok_or_else(|| unknown_monitor(name))?;
            (w.spec.clone(), w.state.clone())
        };
        // Windows differ in how many metrics they hold (labels arrive, columns drift): leave
        // room beyond the last window's count, and one window more that may come back cut.
        let per_window = state.last.len() + 64;
        let limit = ((windows + 1) * per_window).max(2000);
        let points = self
            .store
            .points(name, limit as i64)
            .await
            .map_err(|e| failed(e.message))?;
        let recent = recent_windows(&spec, &points, points.len() == limit, windows);
        let mut series: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in points {
            series
                .entry(p.metric)
                .or_default()
                .push(json!([p.window_end, p.value]));
        }
        Ok(json!({"name": name, "spec": spec, "state": state, "windows": recent, "series": series}))
    }

    pub async fn alerts(&self, name: &str) -> Result<Value, MonitorError> {
        let rules = {
            let watched = self.watched.lock().await;
            watched
                .get(name)
                .ok_or_else(|| unknown_monitor(name))?
                .state
                .rules
                .clone()
        };
        let events = self
            .store
            .monitor_events(Some(name), 0, 1000)
            .await
            .map_err(|e| failed(e.message))?;
        let events: Vec<Value> = events
            .into_iter()
            .map(|e| json!({"id": e.id, "kind": e.kind, "time": e.time, "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null)}))
            .collect();
        Ok(json!({"name": name, "rules": rules, "events": events}))
    }

    /// Events of every monitor after `after` (retraining triggers among them), oldest first.
    pub async fn events(&self, after: i64) -> Result<Value, MonitorError> {
        let events = self
            .store
            .monitor_events(None, after, 1000)
            .await
            .map_err(|e| failed(e.message))?;
        Ok(
            json!({"events": events.into_iter().map(|e| json!({"id": e.id, "monitor": e.monitor, "kind": e.kind, "time": e.time,
            "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null)})).collect::<Vec<_>>()}),
        )
    }

    /// Ground truth, `[{request_id, label, timestamp?}]`; posting a request id again replaces it.
    pub async fn put_labels(&self, labels: Vec<Value>) -> Result<usize, MonitorError> {
        let now = now_ms();
        let mut rows = Vec::with_capacity(labels.len());
        for (i, l) in labels.iter().enumerate() {
            let id = l
                .get("request_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    MonitorError::Invalid(format!(
                        "labels[{i}]: request_id must be a non-empty string"
                    ))
                })?;
            let label = l
                .get("label")
                .filter(|v| !v.is_null())
                .ok_or_else(|| MonitorError::Invalid(format!("labels[{i}]: label is missing")))?;
            let time = match l.get("timestamp") {
                None | Some(Value::Null) => now,
                Some(t) => t.as_i64().ok_or_else(|| {
                    MonitorError::Invalid(format!(
                        "labels[{i}]: timestamp must be milliseconds since the epoch"
                    ))
                })?,
            };
            rows.push(Label {
                request_id: id.to_string(),
                label: label.to_string(),
                time,
            });
        }
        self.store
            .put_labels(&rows)
            .await
            .map_err(|e| failed(e.message))?;
        Ok(rows.len())
    }

    /// Evaluates closed windows every `every` until the process ends.
    pub fn start(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                me.tick().await;
            }
        });
    }

    pub async fn tick(&self) {
        let names: Vec<String> = self.watched.lock().await.keys().cloned().collect();
        for name in names {
            let _evaluating = self.evaluating.lock().await;
            if let Err(e) = self.advance(&name).await {
                tracing::warn!(monitor = %name, error = %e, "monitor window failed");
                if let Some(w) = self.watched.lock().await.get_mut(&name) {
                    w.state.error = Some(e.to_string());
                }
            }
        }
    }

    /// Closes every window of `name` that is ready.
    async fn advance(&self, name: &str) -> Result<(), MonitorError> {
        let (spec, cursor, reference) = {
            let watched = self.watched.lock().await;
            let Some(w) = watched.get(name) else {
                return Ok(());
            };
            (w.spec.clone(), w.state.cursor_us, w.reference.clone())
        };
        let rows = read_after(&self.artifacts, &spec.deployment, cursor)
            .await
            .map_err(MonitorError::Failed)?;
        let now = now_us();
        let lag = self.flush_lag.as_micros() as i64;
        let delay = (spec.label_delay_s * 1e6) as i64;
        let mut windows: Vec<(i64, i64, Vec<Logged>)> = Vec::new();
        match spec.window {
            Window::Rows(n) => {
                let mut start = cursor;
                for chunk in rows.chunks(n) {
                    if chunk.len() < n {
                        break;
                    }
                    let end = chunk[n - 1].time_us;
                    if end + delay > now {
                        break;
                    }
                    windows.push((start, end, chunk.to_vec()));
                    start = end;
                }
            }
            Window::Seconds(s) => {
                let width = (s * 1e6) as i64;
                let mut start = cursor;
                while start + width + lag + delay <= now {
                    let end = start + width;
                    let inside: Vec<Logged> = rows
                        .iter()
                        .filter(|r| r.time_us > start && r.time_us <= end)
                        .cloned()
                        .collect();
                    windows.push((start, end, inside));
                    start = end;
                }
            }
        }
        for (start, end, rows) in windows {
            let metrics = self.evaluate(&spec, &reference, &rows).await;
            self.close(name, &spec, start, end, metrics).await?;
        }
        Ok(())
    }

    async fn evaluate(
        &self,
        spec: &MonitorSpec,
        reference: &Arc<Table>,
        rows: &[Logged],
    ) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("rows".to_string(), rows.len() as f64);
        if rows.is_empty() {
            return m;
        }
        let mut latencies: Vec<i64> = rows.iter().map(|r| r.latency_us).collect();
        latencies.sort_unstable();
        let p99 = latencies
            [((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len()) - 1];
        m.insert("latency_p99_ms".into(), p99 as f64 / 1000.0);
        let current = to_table(rows, &spec.features, spec.prediction.as_deref());
        let reference = reference.clone();
        let drift = tokio::task::spawn_blocking(move || {
            run_drift(&reference, &current, &Options::default())
        })
        .await;
        match drift {
            Ok(Ok(report)) => {
                m.insert(
                    "dataset_drift".into(),
                    if report.dataset_drift { 1.0 } else { 0.0 },
                );
                m.insert(
                    "share_of_drifted_columns".into(),
                    report.share_of_drifted_columns,
                );
                m.insert("drifted_columns".into(), report.drifted_columns as f64);
                m.insert("quality_findings".into(), report.findings.len() as f64);
                let missing = report
                    .quality
                    .values()
                    .map(|q| q.missing_share_current)
                    .fold(0.0, f64::max);
                m.insert("max_missing_share".into(), missing);
                for (col, c) in &report.columns {
                    m.insert(format!("drift_score:{col}"), c.score);
                    if Some(col.as_str()) == spec.prediction.as_deref() {
                        m.insert("prediction_drift_score".into(), c.score);
                        m.insert(
                            "prediction_drifted".into(),
                            if c.drifted { 1.0 } else { 0.0 },
                        );
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(monitor = %spec.name, error = %e, "drift not computed"),
            Err(e) => tracing::error!(monitor = %spec.name, error = %e, "drift stopped"),
        }
        if let Some(prediction) = &spec.prediction {
            let ids: Vec<String> = rows.iter().map(|r| r.request_id.clone()).collect();
            if let Ok(labels) = self.store.labels(&ids).await {
                let labels: BTreeMap<String, Value> = labels
                    .into_iter()
                    .filter_map(|l| Some((l.request_id, serde_json::from_str(&l.label).ok()?)))
                    .collect();
                let pairs = join(rows, &labels, prediction, spec.probabilities.as_deref());
                for (k, v) in performance(&pairs, spec.task) {
                    if let Some(trained) = spec.training_metrics.get(&k) {
                        m.insert(format!("{k}_vs_training"), v - trained);
                    }
                    m.insert(k, v);
                }
            }
        }
        m
    }

    async fn close(
        &self,
        name: &str,
        spec: &MonitorSpec,
        start: i64,
        end: i64,
        metrics: BTreeMap<String, f64>,
    ) -> Result<(), MonitorError> {
        let points: Vec<MetricPoint> = metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| MetricPoint {
                monitor: name.to_string(),
                window_start: start,
                window_end: end,
                metric: k.clone(),
                value: *v,
            })
            .collect();
        self.store
            .put_points(&points)
            .await
            .map_err(|e| failed(e.message))?;
        for (k, v) in &metrics {
            metrics::gauge!("twinloop_monitor_value", "monitor" => name.to_string(), "metric" => k.clone()).set(*v);
        }
        let mut fired = Vec::new();
        {
            let mut watched = self.watched.lock().await;
            let Some(w) = watched.get_mut(name) else {
                return Ok(());
            };
            for rule in &spec.rules {
                let state = w.state.rules.entry(rule.name.clone()).or_default();
                if let Some(t) = step(rule, state, metrics.get(&rule.metric).copied()) {
                    fired.push((
                        rule.clone(),
                        t,
                        metrics.get(&rule.metric).copied().unwrap_or(f64::NAN),
                    ));
                }
                metrics::gauge!("twinloop_monitor_alert_firing", "monitor" => name.to_string(), "rule" => rule.name.clone())
                    .set(if state.state == "firing" { 1.0 } else { 0.0 });
            }
            w.state.cursor_us = end;
            w.state.windows += 1;
            w.state.last = metrics;
            w.state.last_window = Some((start, end));
            w.state.error = None;
            let snapshot = Watched {
                spec: w.spec.clone(),
                state: w.state.clone(),
                reference: w.reference.clone(),
            };
            drop(watched);
            self.persist(&snapshot).await;
        }
        for (rule, transition, value) in fired {
            self.act(spec, &rule, transition, value, start, end).await;
        }
        Ok(())
    }

    async fn event(&self, monitor: &str, kind: &str, payload: &Value) {
        if let Err(e) = self
            .store
            .add_monitor_event(monitor, kind, &payload.to_string())
            .await
        {
            tracing::error!(monitor, kind, error = %e.message, "cannot record a monitor event");
        }
    }

    async fn act(
        &self,
        spec: &MonitorSpec,
        rule: &AlertRule,
        transition: Transition,
        value: f64,
        start: i64,
        end: i64,
    ) {
        let alert = json!({
            "monitor": spec.name, "deployment": spec.deployment, "rule": rule.name, "state": transition.as_str(),
            "metric": rule.metric, "op": rule.op, "threshold": rule.threshold, "value": value,
            "window_start_us": start, "window_end_us": end,
        });
        self.event(
            &spec.name,
            &format!("alert_{}", transition.as_str()),
            &alert,
        )
        .await;
        if transition == Transition::Pending {
            return;
        }
        for action in &rule.actions {
            match action {
                Action::Webhook { url, secret } => {
                    self.deliver(&spec.name, url, secret, &alert).await
                }
                Action::Rollback if transition == Transition::Firing => {
                    let outcome = self.deployments.rollback(&spec.deployment).await;
                    let payload = match &outcome {
                        Ok(m) => {
                            json!({"deployment": spec.deployment, "rule": rule.name, "ok": true, "message": m})
                        }
                        Err(m) => {
                            json!({"deployment": spec.deployment, "rule": rule.name, "ok": false, "message": m})
                        }
                    };
                    self.event(&spec.name, "rollback", &payload).await;
                }
                Action::Retrain if transition == Transition::Firing => {
                    self.event(&spec.name, "retrain_requested", &alert).await;
                }
                _ => {}
            }
        }
    }

    /// POSTs the alert through the signed-webhook contract (`twinloop_core::webhook`): every
    /// attempt is a `webhook_delivery` event, and an alert no attempt delivered is one log line.
    async fn deliver(&self, monitor: &str, url: &str, secret: &str, alert: &Value) {
        let body = alert.to_string();
        // Receivers written before alerts were signed like registry events read this name.
        let headers = [(
            "x-twinloop-signature",
            webhook::signature(secret, body.as_bytes()),
        )];
        let log = AlertDeliveries {
            monitors: self,
            monitor,
            url,
            alert,
        };
        let outcome = webhook::deliver(
            self.webhooks.as_ref(),
            &log,
            url,
            secret,
            &headers,
            body.as_bytes(),
        )
        .await;
        if let Outcome::Failed { last_error } = outcome {
            tracing::warn!(monitor, url, rule = %alert["rule"], attempts = webhook::ATTEMPTS, last_error, "alert webhook not delivered; giving up on this alert");
        }
    }
}

/// One alert's deliveries to one URL, kept as the monitor's `webhook_delivery` events.
struct AlertDeliveries<'a> {
    monitors: &'a Monitors,
    monitor: &'a str,
    url: &'a str,
    alert: &'a Value,
}

#[async_trait]
impl DeliveryLog for AlertDeliveries<'_> {
    async fn record(&self, a: &Attempt) {
        let payload = json!({
            "url": self.url, "rule": self.alert["rule"], "state": self.alert["state"],
            "attempt": a.attempt, "status_code": a.status_code, "error": a.error, "delivered": a.delivered,
        });
        self.monitors
            .event(self.monitor, "webhook_delivery", &payload)
            .await;
    }
}

/// The last `n` windows in `points` (ordered by window start), oldest first, each with its
/// metrics and the rules whose condition held in it. `truncated`: the points were cut at the
/// query's limit, so the oldest window may be incomplete and is left out.
fn recent_windows(
    spec: &MonitorSpec,
    points: &[MetricPoint],
    truncated: bool,
    n: usize,
) -> Vec<Value> {
    let mut windows: Vec<(i64, i64, BTreeMap<&str, f64>)> = Vec::new();
    for p in points {
        match windows.last_mut() {
            Some((start, _, metrics)) if *start == p.window_start => {
                metrics.insert(&p.metric, p.value);
            }
            _ => windows.push((
                p.window_start,
                p.window_end,
                BTreeMap::from([(p.metric.as_str(), p.value)]),
            )),
        }
    }
    if truncated && !windows.is_empty() {
        windows.remove(0);
    }
    let skip = windows.len().saturating_sub(n);
    windows
        .into_iter()
        .skip(skip)
        .map(|(start, end, metrics)| {
            let held: Vec<&str> = spec
                .rules
                .iter()
                .filter(|r| metrics.get(r.metric.as_str()).is_some_and(|v| r.holds(*v)))
                .map(|r| r.name.as_str())
                .collect();
            json!({"start_us": start, "end_us": end, "metrics": metrics, "rules_holding": held})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(start: i64, metric: &str, value: f64) -> MetricPoint {
        MetricPoint {
            monitor: "m".into(),
            window_start: start,
            window_end: start + 10,
            metric: metric.into(),
            value,
        }
    }

    fn spec() -> MonitorSpec {
        serde_json::from_value(json!({
            "name": "m", "deployment": "d", "reference": "r.csv", "window": {"rows": 10},
            "rules": [{"name": "drift", "metric": "share_of_drifted_columns", "op": ">=", "threshold": 0.5},
                      {"name": "accuracy", "metric": "accuracy", "op": "<", "threshold": 0.8}]}))
        .unwrap()
    }

    #[test]
    fn recent_windows_group_points_and_name_the_rules_that_held() {
        let points = [
            point(0, "rows", 10.0),
            point(0, "share_of_drifted_columns", 0.0),
            point(10, "rows", 0.0),
            point(20, "accuracy", 0.5),
            point(20, "rows", 10.0),
            point(20, "share_of_drifted_columns", 0.75),
        ];
        let windows = recent_windows(&spec(), &points, false, 2);
        assert_eq!(
            Value::Array(windows),
            json!([
                {"start_us": 10, "end_us": 20, "metrics": {"rows": 0.0}, "rules_holding": []},
                {"start_us": 20, "end_us": 30,
                 "metrics": {"accuracy": 0.5, "rows": 10.0, "share_of_drifted_columns": 0.75},
                 "rules_holding": ["drift", "accuracy"]}
            ])
        );
    }

    #[test]
    fn a_window_cut_by_the_query_limit_is_left_out() {
        let points = [
            point(0, "share_of_drifted_columns", 0.9),
            point(10, "rows", 5.0),
        ];
        let windows = recent_windows(&spec(), &points, true, 10);
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0]["start_us"], 10);
    }
}
