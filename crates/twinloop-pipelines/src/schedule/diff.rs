//! What `apply` changes between the registered version of a pipeline and the new one: triggers
//! and steps added, removed or changed, and whether the policy changed — the plan diff
//! `twinloop pipeline apply` prints.

use crate::spec::Pipeline;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanDiff {
    /// Triggers by their description (`every 2s`, `monitor retrain_requested`).
    pub triggers_added: Vec<String>,
    pub triggers_removed: Vec<String>,
    pub steps_added: Vec<String>,
    pub steps_removed: Vec<String>,
    pub steps_changed: Vec<String>,
    pub policy_changed: bool,
}

impl PlanDiff {
    pub fn is_empty(&self) -> bool {
        *self == PlanDiff::default()
    }
}

/// The diff from `before` (none for a new pipeline) to `after`.
pub fn diff(before: Option<&Pipeline>, after: &Pipeline) -> PlanDiff {
    let describe =
        |p: &Pipeline| -> Vec<String> { p.triggers.iter().map(|t| t.describe()).collect() };
    let old_triggers = before.map(describe).unwrap_or_default();
    let new_triggers = describe(after);
    let mut out = PlanDiff {
        triggers_added: minus(&new_triggers, &old_triggers),
        triggers_removed: minus(&old_triggers, &new_triggers),
        policy_changed: before
            .is_some_and(|b| b.policy != after.policy || b.fail_fast != after.fail_fast),
        ..PlanDiff::default()
    };
    for step in &after.steps {
        match before.and_then(|b| b.step(&step.id)) {
            None => out.steps_added.push(step.id.clone()),
            // Step has no PartialEq (its templates compare by source); its debug form covers
            // every field.
            Some(old) if format!("{old:?}") != format!("{step:?}") => {
                out.steps_changed.push(step.id.clone());
            }
            Some(_) => {}
        }
    }
    if let Some(before) = before {
        out.steps_removed = before
            .steps
            .iter()
            .filter(|s| after.step(&s.id).is_none())
            .map(|s| s.id.clone())
            .collect();
    }
    out
}

fn minus(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    #[test]
    fn names_what_changed() {
        let v1 = parse(
            "p.yaml",
            "pipeline: p\ntriggers:\n  - every: 1h\nsteps:\n  a: {run: echo a}\n  b: {run: echo b}\n",
        )
        .unwrap();
        let v2 = parse(
            "p.yaml",
            "pipeline: p\ntriggers:\n  - every: 2s\npolicy: {cooldown: 1m}\nsteps:\n  a: {run: echo a}\n  b: {run: echo B}\n  c: {run: echo c}\n",
        )
        .unwrap();
        let d = diff(Some(&v1), &v2);
        assert_eq!(d.triggers_added, ["every 2s"]);
        assert_eq!(d.triggers_removed, ["every 1h"]);
        assert_eq!(d.steps_added, ["c"]);
        assert_eq!(d.steps_changed, ["b"]);
        assert!(d.steps_removed.is_empty());
        assert!(d.policy_changed);
        assert!(diff(Some(&v2), &v2).is_empty());
        let new = diff(None, &v1);
        assert_eq!((new.steps_added.len(), new.triggers_added.len()), (2, 1));
        assert!(!new.policy_changed);
        assert_eq!(diff(Some(&v2), &v1).steps_removed, ["c"]);
    }
}
