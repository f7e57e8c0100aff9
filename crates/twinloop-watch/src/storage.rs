//! A monitor's persistence through `MonitorStore`: spec and state as JSON (the store's
//! `MonitorRecord` is this module's format), metric points, labels and events.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use twinloop_core::monitoring::{Label as StoredLabel, MetricPoint, MonitorEvent, MonitorRecord};
use twinloop_meta::MonitorStore;

use crate::alerts::RuleState;
use crate::error::MonitorError;
use crate::spec::MonitorSpec;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

impl MonitorState {
    /// The rules that are firing, by name.
    pub fn firing(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|(_, r)| r.state == "firing")
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Ground truth for a logged prediction: one value, or one per row of a batched request.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub request_id: String,
    pub value: Value,
    /// Milliseconds since the epoch; `None`: when it is stored.
    pub time_ms: Option<i64>,
}

/// One stored event; `payload` is the JSON text it was recorded with.
pub type Event = MonitorEvent;

/// How many events a listing returns at most.
const EVENTS_PAGE: i64 = 1000;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn MonitorStore>,
}

impl Storage {
    pub fn new(store: Arc<dyn MonitorStore>) -> Storage {
        Storage { store }
    }

    /// The stored monitors; one whose spec or state cannot be read is skipped with a log line.
    pub async fn load(&self) -> Result<Vec<(MonitorSpec, MonitorState)>, MonitorError> {
        let records = self.store.monitors().await.map_err(MonitorError::Store)?;
        Ok(records.into_iter().filter_map(decode).collect())
    }

    /// Saves spec and state; a failure is logged, not returned: the monitor goes on in memory
    /// and the next window saves it again.
    pub async fn save(&self, spec: &MonitorSpec, state: &MonitorState) {
        let record = match encode(spec, state) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(monitor = %spec.name, error = %e, "cannot encode the monitor");
                return;
            }
        };
        if let Err(e) = self.store.put_monitor(&record).await {
            tracing::error!(monitor = %spec.name, error = %e, "cannot save the monitor");
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), MonitorError> {
        self.store
            .delete_monitor(name)
            .await
            .map(|_| ())
            .map_err(MonitorError::Store)
    }

    /// The finite metrics of one window, as its points.
    pub async fn put_window(
        &self,
        monitor: &str,
        start_us: i64,
        end_us: i64,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), MonitorError> {
        let points = window_points(monitor, start_us, end_us, metrics);
        self.store
            .put_points(&points)
            .await
            .map_err(MonitorError::Store)
    }

    pub async fn points(
        &self,
        monitor: &str,
        limit: usize,
    ) -> Result<Vec<MetricPoint>, MonitorError> {
        self.store
            .points(monitor, i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(MonitorError::Store)
    }

    pub async fn put_labels(&self, labels: &[Label], now_ms: i64) -> Result<(), MonitorError> {
        let rows: Vec<StoredLabel> = labels
            .iter()
            .map(|l| StoredLabel {
                request_id: l.request_id.clone(),
                label: l.value.to_string(),
                time: l.time_ms.unwrap_or(now_ms),
            })
            .collect();
        self.store
            .put_labels(&rows)
            .await
            .map_err(MonitorError::Store)
    }

    /// The labels of `request_ids` that exist (one that is not valid JSON is left out).
    pub async fn labels(
        &self,
        request_ids: &[String],
    ) -> Result<BTreeMap<String, Value>, MonitorError> {
        let labels = self
            .store
            .labels(request_ids)
            .await
            .map_err(MonitorError::Store)?;
        Ok(labels
            .into_iter()
            .filter_map(|l| Some((l.request_id, serde_json::from_str(&l.label).ok()?)))
            .collect())
    }

    /// Events after `after`, of one monitor or all, oldest first.
    pub async fn events(
        &self,
        monitor: Option<&str>,
        after: i64,
    ) -> Result<Vec<Event>, MonitorError> {
        self.store
            .monitor_events(monitor, after, EVENTS_PAGE)
            .await
            .map_err(MonitorError::Store)
    }
}

#[async_trait::async_trait]
impl crate::actions::EventLog for Storage {
    async fn record(&self, monitor: &str, kind: &str, payload: &str) {
        if let Err(e) = self.store.add_monitor_event(monitor, kind, payload).await {
            tracing::error!(monitor, kind, error = %e, "cannot record a monitor event");
        }
    }
}

fn encode(spec: &MonitorSpec, state: &MonitorState) -> Result<MonitorRecord, serde_json::Error> {
    Ok(MonitorRecord {
        name: spec.name.clone(),
        spec: serde_json::to_string(spec)?,
        state: serde_json::to_string(state)?,
        update_time: 0,
    })
}

fn decode(record: MonitorRecord) -> Option<(MonitorSpec, MonitorState)> {
    match (
        serde_json::from_str::<MonitorSpec>(&record.spec),
        serde_json::from_str::<MonitorState>(&record.state),
    ) {
        (Ok(spec), Ok(state)) => Some((spec, state)),
        _ => {
            tracing::error!(monitor = %record.name, "stored monitor is unreadable; skipped");
            None
        }
    }
}

/// Non-finite values (a log loss of a window with one class) are kept in the state's `last`
/// but are no points: a series holds numbers only.
fn window_points(
    monitor: &str,
    start_us: i64,
    end_us: i64,
    metrics: &BTreeMap<String, f64>,
) -> Vec<MetricPoint> {
    metrics
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| MetricPoint {
            monitor: monitor.to_string(),
            window_start: start_us,
            window_end: end_us,
            metric: k.clone(),
            value: *v,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MonitorSpec {
        serde_json::from_value(serde_json::json!({
            "name": "m", "deployment": "d", "reference": "r.csv", "window": {"rows": 10}}))
        .unwrap()
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let state = MonitorState {
            cursor_us: 5,
            windows: 2,
            last: BTreeMap::from([("rows".to_string(), 10.0)]),
            last_window: Some((1, 5)),
            reference_path: "/r.csv".into(),
            ..MonitorState::default()
        };
        let record = encode(&spec(), &state).unwrap();
        assert_eq!(record.name, "m");
        assert_eq!(decode(record), Some((spec(), state)));
    }

    #[test]
    fn an_unreadable_record_is_skipped() {
        let record = MonitorRecord {
            name: "m".into(),
            spec: "{".into(),
            state: "{}".into(),
            update_time: 0,
        };
        assert_eq!(decode(record), None);
    }

    #[test]
    fn only_finite_metrics_become_points() {
        let metrics = BTreeMap::from([
            ("rows".to_string(), 3.0),
            ("log_loss".to_string(), f64::NAN),
        ]);
        let points = window_points("m", 1, 2, &metrics);
        assert_eq!(points.len(), 1);
        assert_eq!(
            (points[0].metric.as_str(), points[0].window_end),
            ("rows", 2)
        );
    }
}
