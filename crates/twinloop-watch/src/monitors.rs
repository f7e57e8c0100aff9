//! The monitors of a server: created and listed through the native API, evaluated by a
//! background tick that closes windows over the prediction log (`windows`), computes their
//! metrics (`evaluate`), stores them (`storage`), moves alert rules (`alerts`) and carries out
//! their actions (`actions`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use twinloop_artifacts::ArtifactStore;
use twinloop_core::location::LocationPolicy;
use twinloop_core::time::{now_ms, now_us};
use twinloop_core::webhook::WebhookTransport;
use twinloop_meta::lease::LeaseKeeper;
use twinloop_meta::{RegistryStore, StoreHandle, TrackingStore};
use twinloop_monitor::io::Table;

use crate::actions::{Actions, Alert, Deployments};
use crate::alerts::{RuleState, Transition, step};
use crate::error::MonitorError;
use crate::evaluate::window_metrics;
use crate::log::read_after;
use crate::reference;
use crate::spec::{AlertRule, MonitorSpec};
use crate::storage::{Event, Label, MonitorState, Storage};
use crate::view::{AlertHistory, MonitorStatus, MonitorSummary, recent_windows, series};
use crate::windows::{Due, Timing, due};

struct Watched {
    spec: MonitorSpec,
    state: MonitorState,
    reference: Arc<Table>,
}

/// Segments reach the store up to `flush_lag` after their rows: time windows wait for it.
pub struct Monitors {
    storage: Storage,
    /// Which files may be references (the server's allowed roots).
    locations: LocationPolicy,
    registry: Arc<dyn RegistryStore>,
    tracking: Arc<dyn TrackingStore>,
    artifacts: ArtifactStore,
    deployments: Arc<dyn Deployments>,
    actions: Actions,
    flush_lag: Duration,
    watched: Mutex<BTreeMap<String, Watched>>,
    /// Held while a monitor's windows are evaluated, so that a deletion waits for the window in
    /// flight instead of having its points and events written after it.
    evaluating: Mutex<()>,
}

fn unknown_monitor(name: &str) -> MonitorError {
    MonitorError::NotFound(format!(
        "no monitor {name:?} (hint: `twinloop monitor list` lists the monitors)"
    ))
}

fn firing_gauge(monitor: &str, rule: &str, firing: bool) {
    metrics::gauge!("twinloop_monitor_alert_firing", "monitor" => monitor.to_string(), "rule" => rule.to_string())
        .set(if firing { 1.0 } else { 0.0 });
}

impl Monitors {
    /// Monitors and their history are kept in `store`, whose registry and runs also lead to a
    /// serving version's training set. Alert webhooks go out through `webhooks`, the server's HTTP
    /// transport.
    pub fn new(
        store: StoreHandle,
        artifacts: ArtifactStore,
        deployments: Arc<dyn Deployments>,
        webhooks: Arc<dyn WebhookTransport>,
        locations: LocationPolicy,
        flush_lag: Duration,
    ) -> Arc<Monitors> {
        let storage = Storage::new(store.clone());
        Arc::new(Monitors {
            actions: Actions {
                events: Arc::new(storage.clone()),
                deployments: deployments.clone(),
                webhooks,
            },
            storage,
            locations,
            registry: store.clone(),
            tracking: store,
            artifacts,
            deployments,
            flush_lag,
            watched: Mutex::new(BTreeMap::new()),
            evaluating: Mutex::new(()),
        })
    }

    /// Loads the stored monitors (one whose reference cannot be read is skipped, with a log line).
    pub async fn restore(&self) -> Result<(), MonitorError> {
        self.load_stored(false).await
    }

    /// Reads the stored monitors: all of them, or (`only_new`) those this process does not
    /// watch yet, as one created through another replica.
    async fn load_stored(&self, only_new: bool) -> Result<(), MonitorError> {
        let mut watched = self.watched.lock().await;
        for (spec, state) in self.storage.load().await? {
            if only_new && watched.contains_key(&spec.name) {
                continue;
            }
            let path = if state.reference_path.is_empty() {
                &spec.reference
            } else {
                &state.reference_path
            };
            match reference::load(path, &self.locations, &self.artifacts, &*self.tracking).await {
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
                    tracing::error!(monitor = %spec.name, error = %e, "cannot load the monitor's reference");
                }
            }
        }
        Ok(())
    }

    /// Starts watching from now; answers the new monitor's status.
    pub async fn create(&self, spec: MonitorSpec) -> Result<MonitorStatus, MonitorError> {
        spec.validate()?;
        if self.deployments.serving(&spec.deployment).is_none() {
            return Err(MonitorError::NotFound(format!(
                "no deployment {:?} is serving, so there is nothing to watch (hint: `twinloop deploy status` lists the deployments)",
                spec.deployment
            )));
        }
        let reference_path = reference::path(
            &spec,
            self.deployments.as_ref(),
            self.registry.as_ref(),
            self.tracking.as_ref(),
        )
        .await?;
        let reference = reference::load(
            &reference_path,
            &self.locations,
            &self.artifacts,
            &*self.tracking,
        )
        .await?;
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
        self.storage.save(&spec, &state).await;
        let name = spec.name.clone();
        watched.insert(
            name.clone(),
            Watched {
                spec,
                state,
                reference,
            },
        );
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
            firing_gauge(name, rule, false);
        }
        self.storage.delete(name).await
    }

    pub async fn list(&self) -> Vec<MonitorSummary> {
        let watched = self.watched.lock().await;
        watched
            .values()
            .map(|w| MonitorSummary {
                name: w.spec.name.clone(),
                deployment: w.spec.deployment.clone(),
                windows: w.state.windows,
                firing: w.state.firing(),
            })
            .collect()
    }

    /// Spec, state, the last `windows` closed windows (oldest first) and the latest points of
    /// each metric (oldest first).
    pub async fn status(&self, name: &str, windows: usize) -> Result<MonitorStatus, MonitorError> {
        let (spec, state) = {
            let watched = self.watched.lock().await;
            let w = watched.get(name).ok_or_else(|| unknown_monitor(name))?;
            (w.spec.clone(), w.state.clone())
        };
        // Windows differ in how many metrics they hold (labels arrive, columns drift): leave
        // room beyond the last window's count, and one window more that may come back cut.
        let per_window = state.last.len() + 64;
        let limit = ((windows + 1) * per_window).max(2000);
        let points = self.storage.points(name, limit).await?;
        let recent = recent_windows(&spec, &points, points.len() == limit, windows);
        Ok(MonitorStatus {
            name: name.to_string(),
            spec,
            state,
            windows: recent,
            series: series(points),
        })
    }

    pub async fn alerts(&self, name: &str) -> Result<AlertHistory, MonitorError> {
        let rules = {
            let watched = self.watched.lock().await;
            let w = watched.get(name).ok_or_else(|| unknown_monitor(name))?;
            w.state.rules.clone()
        };
        let events = self.storage.events(Some(name), 0).await?;
        Ok(AlertHistory {
            name: name.to_string(),
            rules,
            events,
        })
    }

    /// Events of every monitor after `after` (retraining triggers among them), oldest first.
    pub async fn events(&self, after: i64) -> Result<Vec<Event>, MonitorError> {
        self.storage.events(None, after).await
    }

    /// Ground truth; posting a request id again replaces its label. Answers how many were stored.
    pub async fn put_labels(&self, labels: &[Label]) -> Result<usize, MonitorError> {
        self.storage.put_labels(labels, now_ms()).await?;
        Ok(labels.len())
    }

    /// Evaluates closed windows every `every` until [`Ticking::stop`], while this process holds
    /// `lease` (always without one): among replicas on one database, one evaluates and acts.
    pub fn start(self: &Arc<Self>, every: Duration, lease: Option<Arc<LeaseKeeper>>) -> Ticking {
        let me = self.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut held = None;
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {
                        let Some(lease) = &lease else {
                            me.tick().await;
                            continue;
                        };
                        let token = lease.token();
                        if token.is_some() {
                            // A new holder continues from what the last one stored, and
                            // watches monitors created through other replicas.
                            let reload = if held != token {
                                Some(false)
                            } else {
                                ticks.is_multiple_of(10).then_some(true)
                            };
                            if let Some(only_new) = reload
                                && let Err(e) = me.load_stored(only_new).await
                            {
                                tracing::warn!(error = %e, "cannot read the stored monitors");
                            }
                            me.tick().await;
                            ticks += 1;
                        }
                        held = token;
                    }
                    _ = stopped.changed() => return,
                }
            }
        });
        Ticking { stop, task }
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
        let rows = read_after(&self.artifacts, &spec.deployment, cursor).await?;
        let timing = Timing {
            now_us: now_us(),
            flush_lag_us: self.flush_lag.as_micros() as i64,
            label_delay_us: (spec.label_delay_s * 1e6) as i64,
        };
        for window in due(spec.window, cursor, &rows, timing) {
            let labels = match &spec.prediction {
                Some(_) => {
                    let ids: Vec<String> =
                        window.rows.iter().map(|r| r.request_id.clone()).collect();
                    self.storage.labels(&ids).await.ok()
                }
                None => None,
            };
            let metrics = window_metrics(&spec, &reference, &window.rows, labels.as_ref()).await;
            self.close(&spec, &window, metrics).await?;
        }
        Ok(())
    }

    /// Stores a window's points, moves the rules, saves the state, then acts on transitions.
    async fn close(
        &self,
        spec: &MonitorSpec,
        window: &Due,
        metrics: BTreeMap<String, f64>,
    ) -> Result<(), MonitorError> {
        let (name, start, end) = (spec.name.as_str(), window.start_us, window.end_us);
        self.storage.put_window(name, start, end, &metrics).await?;
        for (k, v) in &metrics {
            metrics::gauge!("twinloop_monitor_value", "monitor" => name.to_string(), "metric" => k.clone()).set(*v);
        }
        let mut fired: Vec<(&AlertRule, Transition, f64)> = Vec::new();
        let state = {
            let mut watched = self.watched.lock().await;
            let Some(w) = watched.get_mut(name) else {
                return Ok(());
            };
            for rule in &spec.rules {
                let value = metrics.get(&rule.metric).copied();
                let state = w.state.rules.entry(rule.name.clone()).or_default();
                if let Some(t) = step(rule, state, value) {
                    fired.push((rule, t, value.unwrap_or(f64::NAN)));
                }
                firing_gauge(name, &rule.name, state.state == "firing");
            }
            w.state.cursor_us = end;
            w.state.windows += 1;
            w.state.last = metrics;
            w.state.last_window = Some((start, end));
            w.state.error = None;
            w.state.clone()
        };
        self.storage.save(spec, &state).await;
        for (rule, transition, value) in fired {
            let alert = Alert::new(spec, rule, transition, value, (start, end));
            self.actions.act(rule, transition, &alert).await;
        }
        Ok(())
    }
}

/// The monitors' evaluation loop, stopped between two ticks (never inside one, so a window's
/// points and the monitor's state are written together) before the store closes.
pub struct Ticking {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticking {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the monitors' loop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use twinloop_core::webhook::NoAnswer;
    use twinloop_meta::{SqlStore, StoreUri};
    use twinloop_predlog::{Role, Row, Status, segment};

    use super::*;
    use crate::actions::RollbackError;

    struct Serving;

    #[async_trait]
    impl Deployments for Serving {
        async fn rollback(&self, deployment: &str) -> Result<String, RollbackError> {
            Ok(format!("{deployment} rolled back"))
        }
        fn serving(&self, _deployment: &str) -> Option<(String, String)> {
            Some(("fraud".into(), "1".into()))
        }
    }

    struct NoWebhooks;

    #[async_trait]
    impl WebhookTransport for NoWebhooks {
        async fn post(&self, _: &str, _: &[(&str, String)], _: &[u8]) -> Result<u16, NoAnswer> {
            Ok(200)
        }
    }

    fn row(time_us: i64, x: f64) -> Row {
        Row {
            time_us,
            request_id: format!("r{time_us}"),
            deployment: "fraud".into(),
            model_name: "fraud".into(),
            model_version: "1".into(),
            role: Role::Primary,
            status: Status::Ok,
            latency_us: 1000,
            inputs: format!(r#"{{"X":{{"datatype":"FP64","shape":[1,1],"data":[{x}]}}}}"#),
            outputs: Some(r#"{"y":{"datatype":"INT64","shape":[1],"data":[0]}}"#.into()),
            error: None,
        }
    }

    #[tokio::test]
    async fn a_tick_closes_full_windows_stores_them_and_acts_on_rules() {
        let dir = tempfile::tempdir().unwrap();
        let uri = StoreUri::Sqlite(dir.path().join("t.db"));
        let store = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
        let artifacts = ArtifactStore::open(dir.path().join("a").to_str().unwrap()).unwrap();
        let reference = dir.path().join("ref.csv");
        std::fs::write(&reference, "X\n1\n2\n3\n4\n").unwrap();
        let monitors = Monitors::new(
            store,
            artifacts.clone(),
            Arc::new(Serving),
            Arc::new(NoWebhooks),
            LocationPolicy::new([dir.path().display().to_string()], [""; 0], dir.path()).unwrap(),
            Duration::ZERO,
        );
        let spec: MonitorSpec = serde_json::from_value(serde_json::json!({
            "name": "m", "deployment": "fraud", "reference": reference.display().to_string(),
            "window": {"rows": 2},
            "rules": [{"name": "busy", "metric": "rows", "op": ">=", "threshold": 2,
                       "actions": [{"type": "rollback"}]}]}))
        .unwrap();
        let created = monitors.create(spec).await.unwrap();
        assert_eq!((created.state.windows, created.windows.len()), (0, 0));
        // Three rows after the monitor's start: one full window of two, one row left open.
        let t = created.state.cursor_us;
        let rows = [row(t + 1, 1.0), row(t + 2, 2.0), row(t + 3, 3.0)];
        segment::write(&artifacts, &segment::path("fraud", t + 1, 1), &rows)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        monitors.tick().await;

        let status = monitors.status("m", 10).await.unwrap();
        assert_eq!(status.state.error, None);
        assert_eq!(status.state.windows, 1);
        assert_eq!(status.state.cursor_us, t + 2);
        assert_eq!(status.windows.len(), 1);
        assert_eq!(status.windows[0].metrics["rows"], 2.0);
        assert_eq!(status.windows[0].rules_holding, ["busy"]);
        assert_eq!(status.series["rows"], [(t + 2, 2.0)]);
        let list = monitors.list().await;
        assert_eq!(list[0].firing, ["busy"]);
        let kinds: Vec<String> = monitors
            .alerts("m")
            .await
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["alert_firing", "rollback"]);

        monitors.delete("m").await.unwrap();
        assert!(matches!(
            monitors.status("m", 1).await,
            Err(MonitorError::NotFound(_))
        ));
        assert!(monitors.events(0).await.unwrap().is_empty());
    }
}
