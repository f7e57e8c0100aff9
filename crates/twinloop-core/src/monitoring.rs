//! Production monitoring records as the metadata store keeps them: monitors (spec and state as
//! JSON owned by twinloop-watch), their metric series, ground-truth labels and their events.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorRecord {
    pub name: String,
    pub spec: String,
    pub state: String,
    pub update_time: i64,
}

/// One value of one metric for one window of a monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub monitor: String,
    pub window_start: i64,
    pub window_end: i64,
    pub metric: String,
    pub value: f64,
}

/// Ground truth for a logged prediction: `label` is JSON (a value, or one per row of a batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub request_id: String,
    pub label: String,
    pub time: i64,
}

/// Something a monitor did or saw: alert transitions, webhook deliveries, rollbacks, retraining
/// triggers (which pipelines consume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorEvent {
    pub id: i64,
    pub monitor: String,
    pub kind: String,
    pub time: i64,
    pub payload: String,
}
