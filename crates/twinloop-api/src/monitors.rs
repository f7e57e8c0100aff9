//! Wire types of the native API: production monitors (`/monitors`, `/monitors/{name}`,
//! `/monitors/{name}/alerts`, `/monitors/events`) and ground truth (`/labels`).
//!
//! Field order: answers list their fields alphabetically, the order the server wrote them in
//! when it built them as `serde_json::Value`. The spec and its rules keep the order users know
//! from docs/monitoring.md for decoding (serde names the first missing field in declaration
//! order) and are written sorted through a borrowed copy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A monitor as users write it: the body of `POST /monitors` (docs/monitoring.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    pub name: String,
    pub deployment: String,
    /// A Parquet or CSV file on the server's disk, or `"training"`.
    pub reference: String,
    pub window: Window,
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub prediction: Option<String>,
    #[serde(default)]
    pub probabilities: Option<String>,
    #[serde(default)]
    pub task: Task,
    #[serde(default)]
    pub label_delay_s: f64,
    #[serde(default)]
    pub rules: Vec<AlertRule>,
    #[serde(default)]
    pub training_metrics: BTreeMap<String, f64>,
}

impl Serialize for MonitorSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Sorted<'a> {
            deployment: &'a str,
            features: &'a BTreeMap<String, Vec<String>>,
            label_delay_s: f64,
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            prediction: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            probabilities: Option<&'a str>,
            reference: &'a str,
            rules: &'a [AlertRule],
            task: Task,
            training_metrics: &'a BTreeMap<String, f64>,
            window: Window,
        }
        Sorted {
            deployment: &self.deployment,
            features: &self.features,
            label_delay_s: self.label_delay_s,
            name: &self.name,
            prediction: self.prediction.as_deref(),
            probabilities: self.probabilities.as_deref(),
            reference: &self.reference,
            rules: &self.rules,
            task: self.task,
            training_metrics: &self.training_metrics,
            window: self.window,
        }
        .serialize(s)
    }
}

/// `{"rows": N}` or `{"seconds": S}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Window {
    Rows(usize),
    Seconds(f64),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Classification,
    Regression,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub metric: String,
    /// `>`, `>=`, `<`, `<=`.
    pub op: String,
    pub threshold: f64,
    /// Windows in a row the condition must hold before the alert fires.
    #[serde(default = "one", rename = "for")]
    pub for_windows: u32,
    #[serde(default)]
    pub actions: Vec<Action>,
}

fn one() -> u32 {
    1
}

impl Serialize for AlertRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Sorted<'a> {
            actions: &'a [Action],
            #[serde(rename = "for")]
            for_windows: u32,
            metric: &'a str,
            name: &'a str,
            op: &'a str,
            threshold: f64,
        }
        Sorted {
            actions: &self.actions,
            for_windows: self.for_windows,
            metric: &self.metric,
            name: &self.name,
            op: &self.op,
            threshold: self.threshold,
        }
        .serialize(s)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Webhook { url: String, secret: String },
    Rollback,
    Retrain,
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Sorted<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            secret: Option<&'a str>,
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            url: Option<&'a str>,
        }
        let sorted = match self {
            Action::Webhook { url, secret } => Sorted {
                secret: Some(secret),
                kind: "webhook",
                url: Some(url),
            },
            Action::Rollback => Sorted {
                secret: None,
                kind: "rollback",
                url: None,
            },
            Action::Retrain => Sorted {
                secret: None,
                kind: "retrain",
                url: None,
            },
        };
        sorted.serialize(s)
    }
}

/// One monitor in `GET /monitors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorSummary {
    pub deployment: String,
    /// The rules that are firing.
    pub firing: Vec<String>,
    pub name: String,
    pub windows: u64,
}

/// The answer of `GET /monitors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorList {
    pub monitors: Vec<MonitorSummary>,
}

/// An alert rule's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Windows in a row the condition has held.
    pub breaches: u32,
    /// `null` when the metric was not a number (NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
    /// `inactive`, `pending` or `firing`.
    pub state: String,
}

/// Where a monitor stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorState {
    /// Predictions up to this time (µs) are in closed windows.
    pub cursor_us: i64,
    /// Why the last evaluation failed, until a window closes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last window's metrics; `null` for one that was not a number.
    pub last: BTreeMap<String, Option<f64>>,
    /// The last window's bounds (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_window: Option<(i64, i64)>,
    /// The reference file in use (the spec's path, or the one found through lineage).
    pub reference_path: String,
    pub rules: BTreeMap<String, RuleState>,
    pub windows: u64,
}

/// A closed window: its metrics and the rules whose condition held in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedWindow {
    pub end_us: i64,
    pub metrics: BTreeMap<String, f64>,
    pub rules_holding: Vec<String>,
    pub start_us: i64,
}

/// The answer of `GET /monitors/{name}` (and of `POST /monitors`, with no windows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorStatus {
    pub name: String,
    /// Per metric, `[window end µs, value]` oldest first.
    pub series: BTreeMap<String, Vec<(i64, f64)>>,
    pub spec: MonitorSpec,
    pub state: MonitorState,
    /// The latest closed windows, oldest first.
    pub windows: Vec<ClosedWindow>,
}

/// Something a monitor did or saw: `alert_pending|firing|resolved`, `webhook_delivery`,
/// `rollback`, `retrain_requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorEvent {
    pub id: i64,
    pub kind: String,
    /// Named in `/monitors/events`, which lists every monitor's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    /// The event as recorded (`null` if it could not be read); its fields depend on `kind`.
    pub payload: Value,
    pub time: i64,
}

/// The answer of `GET /monitors/{name}/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertHistory {
    pub events: Vec<MonitorEvent>,
    pub name: String,
    pub rules: BTreeMap<String, RuleState>,
}

/// The answer of `GET /monitors/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    pub events: Vec<MonitorEvent>,
}

/// Ground truth for a logged prediction; `POST /labels` takes a list of them (or
/// `{"labels": [...]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// One value, or a list with one per row of a batched request.
    pub label: Value,
    pub request_id: String,
    /// Milliseconds since the epoch; when the server stores it if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// The answer of `POST /labels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsAccepted {
    pub accepted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    /// A spec with every field, as the server answered it.
    const SPEC: &str = r#"{"deployment":"fraud","features":{"X":["age","income"]},"label_delay_s":0.5,"name":"fraud-watch","prediction":"label","probabilities":"probabilities","reference":"/data/ref.parquet","rules":[{"actions":[{"secret":"s3cret-key","type":"webhook","url":"http://127.0.0.1:9/hook"},{"type":"rollback"},{"type":"retrain"}],"for":2,"metric":"accuracy","name":"accuracy","op":"<","threshold":0.8}],"task":"classification","training_metrics":{"accuracy":0.93},"window":{"rows":150}}"#;

    #[test]
    fn a_spec_round_trips() {
        round_trips::<MonitorSpec>(SPEC);
        round_trips::<MonitorSpec>(
            r#"{"deployment":"d","features":{},"label_delay_s":0.0,"name":"m","reference":"training","rules":[],"task":"regression","training_metrics":{},"window":{"seconds":60.0}}"#,
        );
    }

    #[test]
    fn a_spec_decodes_with_its_defaults_and_names_the_first_missing_field() {
        let spec: MonitorSpec = serde_json::from_str(
            r#"{"name":"m","deployment":"d","reference":"/x.csv","window":{"rows":5},"rules":[{"name":"r","metric":"rows","op":"<","threshold":1}]}"#,
        )
        .unwrap();
        assert_eq!(
            (spec.task, spec.rules[0].for_windows),
            (Task::Classification, 1)
        );
        let e = serde_json::from_str::<MonitorSpec>("{}").unwrap_err();
        assert!(e.to_string().starts_with("missing field `name`"), "{e}");
        let e = serde_json::from_str::<MonitorSpec>(
            r#"{"name":"m","deployment":"d","reference":"r","window":{"rows":1},"colour":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("unknown field `colour`"), "{e}");
    }

    #[test]
    fn a_status_round_trips() {
        let status = format!(
            r#"{{"name":"fraud-watch","series":{{"accuracy":[[1764300000000000,1.0]],"rows":[[1764300000000000,150.0]]}},"spec":{SPEC},"state":{{"cursor_us":1764300000000000,"error":"boom","last":{{"accuracy":1.0,"log_loss":null,"rows":150.0}},"last_window":[1764299000000000,1764300000000000],"reference_path":"/data/ref.parquet","rules":{{"accuracy":{{"breaches":0,"last_value":1.0,"state":"inactive"}},"drift":{{"breaches":0,"state":"inactive"}}}},"windows":1}},"windows":[{{"end_us":1764300000000000,"metrics":{{"accuracy":1.0,"rows":150.0}},"rules_holding":["accuracy"],"start_us":1764299000000000}}]}}"#
        );
        round_trips::<MonitorStatus>(&status);
        round_trips::<MonitorStatus>(&format!(
            r#"{{"name":"m","series":{{}},"spec":{SPEC},"state":{{"cursor_us":5,"last":{{}},"reference_path":"/r.csv","rules":{{}},"windows":0}},"windows":[]}}"#
        ));
    }

    #[test]
    fn a_list_round_trips() {
        round_trips::<MonitorList>(
            r#"{"monitors":[{"deployment":"fraud","firing":["accuracy"],"name":"fraud-watch","windows":3}]}"#,
        );
        round_trips::<MonitorList>(r#"{"monitors":[]}"#);
    }

    #[test]
    fn alerts_and_events_round_trip() {
        round_trips::<AlertHistory>(
            r#"{"events":[{"id":4,"kind":"alert_firing","payload":{"deployment":"fraud","metric":"accuracy","monitor":"m","op":"<","rule":"accuracy","state":"firing","threshold":0.8,"value":null,"window_end_us":2,"window_start_us":1},"time":1764300000000},{"id":5,"kind":"x","payload":null,"time":1}],"name":"m","rules":{"accuracy":{"breaches":1,"last_value":0.5,"state":"firing"}}}"#,
        );
        round_trips::<EventList>(
            r#"{"events":[{"id":6,"kind":"rollback","monitor":"m","payload":{"deployment":"fraud","message":"rolled back","ok":true,"rule":"accuracy"},"time":1764300000000}]}"#,
        );
    }

    #[test]
    fn labels_round_trip() {
        round_trips::<Vec<Label>>(
            r#"[{"label":1,"request_id":"r1"},{"label":["a","b"],"request_id":"r2","timestamp":1764300000000}]"#,
        );
        round_trips::<LabelsAccepted>(r#"{"accepted":2}"#);
    }
}
