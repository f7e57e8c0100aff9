//! Alert rules over a monitor's windows: inactive → pending (the condition holds, fewer than
//! `for` windows in a row) → firing → resolved (the first window where it no longer holds).

use serde::{Deserialize, Serialize};

use crate::spec::AlertRule;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// `inactive`, `pending` or `firing`.
    pub state: String,
    /// Windows in a row the condition has held.
    pub breaches: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
}

impl Default for RuleState {
    fn default() -> Self {
        RuleState {
            state: "inactive".into(),
            breaches: 0,
            last_value: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Pending,
    Firing,
    Resolved,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Pending => "pending",
            Transition::Firing => "firing",
            Transition::Resolved => "resolved",
        }
    }
}

/// Moves `state` by one window whose value of the rule's metric is `value` (`None`: the window
/// has no such metric, nothing changes).
pub fn step(rule: &AlertRule, state: &mut RuleState, value: Option<f64>) -> Option<Transition> {
    let value = value?;
    state.last_value = Some(value);
    if rule.holds(value) {
        state.breaches += 1;
        if state.breaches >= rule.for_windows && state.state != "firing" {
            state.state = "firing".into();
            return Some(Transition::Firing);
        }
        if state.state == "inactive" {
            state.state = "pending".into();
            return Some(Transition::Pending);
        }
        return None;
    }
    state.breaches = 0;
    let was = std::mem::replace(&mut state.state, "inactive".into());
    (was == "firing").then_some(Transition::Resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_after_for_windows_and_resolves_once() {
        let rule = AlertRule {
            name: "acc".into(),
            metric: "accuracy".into(),
            op: "<".into(),
            threshold: 0.8,
            for_windows: 2,
            actions: vec![],
        };
        let mut s = RuleState::default();
        assert_eq!(step(&rule, &mut s, Some(0.9)), None);
        assert_eq!(step(&rule, &mut s, Some(0.5)), Some(Transition::Pending));
        assert_eq!(step(&rule, &mut s, None), None);
        assert_eq!(step(&rule, &mut s, Some(0.6)), Some(Transition::Firing));
        assert_eq!(step(&rule, &mut s, Some(0.6)), None);
        assert_eq!(step(&rule, &mut s, Some(0.95)), Some(Transition::Resolved));
        assert_eq!(s.state, "inactive");
        let once = AlertRule {
            for_windows: 1,
            ..rule
        };
        let mut s = RuleState::default();
        assert_eq!(step(&once, &mut s, Some(0.1)), Some(Transition::Firing));
    }
}
