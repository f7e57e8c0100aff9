//! A monitor as users write it (JSON through the native API or `twinloop monitor create`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use twinloop_core::names::{InvalidName, check_name};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    pub name: String,
    /// The deployment whose prediction log is watched.
    pub deployment: String,
    /// The reference dataset: a Parquet or CSV file on the server's disk, or `"training"` for the
    /// training set the serving version's run logged as its input (found through lineage).
    pub reference: String,
    pub window: Window,
    /// Column names for the columns of 2-D inputs (`{"X": ["age", "income"]}`); otherwise
    /// `<input>_<j>`, and a `[N]` or `[N, 1]` input is one column named after it.
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    /// The output that is the prediction: tested for drift against the reference's column of
    /// that name, and compared with the labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<String>,
    /// An output of class probabilities `[N, classes]` (log loss, ROC AUC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<String>,
    #[serde(default)]
    pub task: Task,
    /// Seconds a window waits after its last prediction before it is evaluated, so labels that
    /// arrive later still count.
    #[serde(default)]
    pub label_delay_s: f64,
    #[serde(default)]
    pub rules: Vec<AlertRule>,
    /// The model's evaluation at training time (`{"accuracy": 0.93}`); each window also reports
    /// `<metric>_vs_training`, its difference from this.
    #[serde(default)]
    pub training_metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Window {
    /// Every `rows` logged predictions.
    Rows(usize),
    /// Every `seconds` of prediction time.
    Seconds(f64),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Classification,
    Regression,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// POST the alert as a signed webhook (`twinloop_core::webhook`).
    Webhook { url: String, secret: String },
    /// Roll the deployment back (abort its canary, or undo its last change).
    Rollback,
    /// Record a `retrain_requested` event for pipelines to consume.
    Retrain,
}

impl AlertRule {
    pub fn holds(&self, value: f64) -> bool {
        match self.op.as_str() {
            ">" => value > self.threshold,
            ">=" => value >= self.threshold,
            "<" => value < self.threshold,
            "<=" => value <= self.threshold,
            _ => false,
        }
    }
}

/// Why a spec is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Name(#[from] InvalidName),
    #[error("{0}")]
    Field(String),
}

impl MonitorSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        let field = |message: String| Err(SpecError::Field(message));
        check_name("monitor", &self.name)?;
        match self.window {
            Window::Rows(0) => return field("window.rows must be at least 1".into()),
            Window::Seconds(s) if s.is_nan() || s <= 0.0 => {
                return field("window.seconds must be positive".into());
            }
            _ => {}
        }
        if !(self.label_delay_s >= 0.0 && self.label_delay_s.is_finite()) {
            return field("label_delay_s must be zero or more seconds".into());
        }
        for r in &self.rules {
            if ![">", ">=", "<", "<="].contains(&r.op.as_str()) {
                return field(format!(
                    "rule {:?}: op {:?} must be one of >, >=, <, <=",
                    r.name, r.op
                ));
            }
            if r.for_windows == 0 {
                return field(format!("rule {:?}: for must be at least 1", r.name));
            }
            for a in &r.actions {
                if let Action::Webhook { url, secret } = a {
                    if !url.starts_with("http://") && !url.starts_with("https://") {
                        return field(format!(
                            "rule {:?}: webhook url {url:?} is not http(s)",
                            r.name
                        ));
                    }
                    if secret.len() < 8 {
                        return field(format!(
                            "rule {:?}: a webhook secret needs at least 8 characters",
                            r.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
