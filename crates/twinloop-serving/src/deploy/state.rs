//! What a deployment is doing, as `twinloop deploy status` shows it and the store keeps it.

use serde::{Deserialize, Serialize};

use crate::served::Traffic;
use crate::spec::{CanarySpec, DeploymentSpec};

/// A route as it resolved: the version actually answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingRoute {
    pub model: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub weight: u32,
}

/// Where a canary stands. Serialised as `running`, `promoted` or `rolled_back`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStatus {
    Running,
    Promoted,
    RolledBack,
}

impl CanaryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryStatus::Running => "running",
            CanaryStatus::Promoted => "promoted",
            CanaryStatus::RolledBack => "rolled_back",
        }
    }
}

/// What the candidate did during one step of a canary and how its gates judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryStep {
    /// The candidate's share of traffic during the step, in percent.
    pub percent: u32,
    /// The candidate's requests in the step, and how many of them failed.
    pub requests: u64,
    pub errors: u64,
    /// `errors / requests`; absent when the step saw no request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The candidate's p99 latency in the step; absent when it saw no request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// The gates in force (the canary's `max_error_rate` and `max_p99_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    pub passed: bool,
    /// Why the step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryState {
    pub spec: CanarySpec,
    pub status: CanaryStatus,
    /// The candidate's current share of traffic, in percent.
    pub percent: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the deployment was before the canary, restored by a rollback.
    pub baseline: DeploymentSpec,
    /// The steps judged so far, in order.
    #[serde(default)]
    pub steps: Vec<CanaryStep>,
    /// The alias the promotion moved, so that rolling the promotion back moves it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_alias: Option<MovedAlias>,
    /// When the current step began (ms since the epoch): the replica that decides judges it
    /// once its interval has passed, whichever replica began it.
    #[serde(default)]
    pub step_started_ms: i64,
    /// The candidate's traffic summed over every replica when the current step began: the step
    /// is judged on what was added since.
    #[serde(default)]
    pub traffic_before: Traffic,
}

/// A registry alias a promotion pointed at its candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedAlias {
    pub model: String,
    pub alias: String,
    /// The version it named before; `None` when the promotion created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
}

/// Something that happened to a deployment, kept for people reading its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentEvent {
    pub time_ms: i64,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentState {
    /// `ready`, or `failed` when the deployment could not start at all.
    pub status: String,
    /// Why the last change failed (what was serving before goes on serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub serving: Vec<ServingRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ServingRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryState>,
    /// Earlier specs, newest last: what `rollback` returns to.
    #[serde(default)]
    pub history: Vec<DeploymentSpec>,
    #[serde(default)]
    pub events: Vec<DeploymentEvent>,
}

/// One deployment as `status` reports it: what serves (`None` when it could not start) and its
/// state.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentStatus {
    pub name: String,
    pub spec: Option<DeploymentSpec>,
    pub state: DeploymentState,
}

const KEPT_EVENTS: usize = 50;
const KEPT_HISTORY: usize = 20;

impl DeploymentState {
    pub fn note(&mut self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(%message, "deployment");
        self.events.push(DeploymentEvent {
            time_ms: twinloop_core::time::now_ms(),
            message,
        });
        if self.events.len() > KEPT_EVENTS {
            self.events.remove(0);
        }
    }

    pub fn remember(&mut self, spec: DeploymentSpec) {
        self.history.push(spec);
        if self.history.len() > KEPT_HISTORY {
            self.history.remove(0);
        }
    }

    /// The canary that is still moving traffic, if any.
    pub fn running_canary(&self) -> Option<&CanaryState> {
        self.canary
            .as_ref()
            .filter(|c| c.status == CanaryStatus::Running)
    }

    /// A canary has taken its first step (the caller has remembered `baseline` in the history).
    pub fn start_canary(&mut self, spec: CanarySpec, baseline: DeploymentSpec, now_ms: i64) {
        self.canary = Some(CanaryState {
            percent: spec.steps[0],
            spec,
            status: CanaryStatus::Running,
            reason: None,
            baseline,
            steps: Vec::new(),
            moved_alias: None,
            step_started_ms: now_ms,
            traffic_before: Traffic::default(),
        });
    }

    /// The running canary moved its candidate to `percent` of traffic, at `now_ms`, when the
    /// candidate's traffic summed to `traffic`.
    pub fn canary_moved(&mut self, percent: u32, now_ms: i64, traffic: Traffic) {
        if let Some(c) = self
            .canary
            .as_mut()
            .filter(|c| c.status == CanaryStatus::Running)
        {
            c.percent = percent;
            c.step_started_ms = now_ms;
            c.traffic_before = traffic;
        }
    }

    /// Keeps a judged step of the running canary.
    pub fn canary_judged(&mut self, step: CanaryStep) {
        if let Some(c) = self
            .canary
            .as_mut()
            .filter(|c| c.status == CanaryStatus::Running)
        {
            c.steps.push(step);
        }
    }

    /// The canary ended: promoted (the candidate has all traffic) or rolled back (the baseline
    /// serves again).
    pub fn finish_canary(&mut self, outcome: CanaryStatus, reason: Option<String>) {
        let Some(c) = self.canary.as_mut() else {
            return;
        };
        c.status = outcome;
        c.reason = reason;
        c.percent = match outcome {
            CanaryStatus::Promoted => 100,
            _ => 0,
        };
        // Starting the canary remembered its baseline; back on the baseline, that entry would
        // make the next `rollback` return to where the deployment already is.
        if outcome == CanaryStatus::RolledBack && self.history.last() == Some(&c.baseline) {
            self.history.pop();
        }
    }

    /// The alias to move back when `rollback` returns to `previous`: the one a promoted canary
    /// moved, if `previous` is that canary's baseline.
    pub fn alias_to_restore(&self, previous: &DeploymentSpec) -> Option<&MovedAlias> {
        self.canary
            .as_ref()
            .filter(|c| c.status == CanaryStatus::Promoted && c.baseline == *previous)?
            .moved_alias
            .as_ref()
    }

    /// `rollback` with no canary running: the spec before the last change, taken from the
    /// history. A promoted canary is that last change, so it is now rolled back; an older
    /// canary no longer describes what serves and is forgotten.
    pub fn undo(&mut self) -> Option<DeploymentSpec> {
        let previous = self.history.pop()?;
        match self.canary.as_mut() {
            Some(c) if c.status == CanaryStatus::Promoted && c.baseline == previous => {
                c.status = CanaryStatus::RolledBack;
                c.percent = 0;
                c.reason = Some("promoted, then rolled back".into());
            }
            _ => self.canary = None,
        }
        Some(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RouteSpec;

    fn spec(version: &str) -> DeploymentSpec {
        DeploymentSpec {
            name: "d".into(),
            routes: vec![RouteSpec {
                model: "m".into(),
                version: Some(version.into()),
                alias: None,
                weight: 100,
            }],
            shadow: None,
            sticky_key: None,
            feature_service: None,
            batching: Default::default(),
        }
    }

    fn canary_spec() -> CanarySpec {
        CanarySpec {
            candidate: spec("2").routes[0].clone(),
            steps: vec![10, 100],
            interval_s: 1.0,
            max_error_rate: Some(0.1),
            max_p99_ms: None,
            on_promote_alias: None,
        }
    }

    /// A deployment on version 1 whose canary of version 2 has started.
    fn canarying() -> DeploymentState {
        let mut s = DeploymentState::default();
        s.remember(spec("1"));
        s.start_canary(canary_spec(), spec("1"), 0);
        s
    }

    fn step(percent: u32, passed: bool) -> CanaryStep {
        CanaryStep {
            percent,
            requests: 10,
            errors: if passed { 0 } else { 5 },
            error_rate: Some(if passed { 0.0 } else { 0.5 }),
            p99_ms: Some(1.0),
            max_error_rate: Some(0.1),
            max_p99_ms: None,
            passed,
            reason: (!passed).then(|| "too many errors".to_string()),
        }
    }

    #[test]
    fn a_rollback_after_a_promotion_says_rolled_back() {
        let mut s = canarying();
        s.canary_judged(step(10, true));
        s.canary_moved(100, 1, Traffic::default());
        s.canary_judged(step(100, true));
        s.finish_canary(CanaryStatus::Promoted, None);
        let c = s.canary.as_ref().unwrap();
        assert_eq!(
            (c.status, c.percent, c.steps.len()),
            (CanaryStatus::Promoted, 100, 2)
        );

        assert_eq!(s.undo(), Some(spec("1")));
        let c = s.canary.as_ref().unwrap();
        assert_eq!((c.status, c.percent), (CanaryStatus::RolledBack, 0));
        assert!(c.reason.as_deref().unwrap().contains("rolled back"));
        assert_eq!(s.running_canary(), None);
    }

    #[test]
    fn a_rolled_back_canary_leaves_the_history_as_before_it() {
        let mut s = DeploymentState::default();
        s.remember(spec("0"));
        s.remember(spec("1"));
        s.start_canary(canary_spec(), spec("1"), 0);
        s.canary_judged(step(10, false));
        s.finish_canary(CanaryStatus::RolledBack, Some("too many errors".into()));
        assert_eq!(s.history, vec![spec("0")]);
        let c = s.canary.as_ref().unwrap();
        assert_eq!((c.status, c.percent), (CanaryStatus::RolledBack, 0));
        assert!(!c.steps[0].passed);
        // The next rollback undoes the change before the canary, which the canary no longer
        // describes.
        assert_eq!(s.undo(), Some(spec("0")));
        assert_eq!(s.canary, None);
    }

    #[test]
    fn only_a_running_canary_moves_and_records_steps() {
        let mut s = canarying();
        s.finish_canary(CanaryStatus::Promoted, Some("promoted by hand".into()));
        s.canary_moved(50, 1, Traffic::default());
        s.canary_judged(step(50, true));
        let c = s.canary.as_ref().unwrap();
        assert_eq!((c.percent, c.steps.len()), (100, 0));
    }

    #[test]
    fn states_saved_before_steps_existed_still_load() {
        let mut s = canarying();
        s.canary_judged(step(10, true));
        let mut json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["canary"]["status"], "running");
        json["canary"].as_object_mut().unwrap().remove("steps");
        let back: DeploymentState = serde_json::from_value(json).unwrap();
        assert!(back.canary.unwrap().steps.is_empty());
    }
}
