//! The policy's decisions as pure functions: given what is running and what started recently,
//! does a trigger event start a run, queue one, cancel the running one, or is it suppressed (and
//! why)? The scheduler records every suppressed event with its reason.

use std::fmt;

use crate::spec::{OnConflict, Policy};

/// A chain of causes longer than this is cut: pipeline A's run triggers B's, which triggers C's…
pub const MAX_CHAIN: usize = 5;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Start,
    /// Wait (QUEUED) for a slot.
    Queue,
    /// Cancel these active runs, then start.
    CancelAndStart(Vec<String>),
    Suppress(Reason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Within `cooldown` of the last trigger-started run.
    Cooldown,
    /// `concurrency.max` runs are active and `on_conflict: skip` (or the queue is full).
    Concurrency,
    MaxRunsPerDay,
    /// The event was caused by this pipeline's own run, or the chain of causes is too long.
    LoopGuard,
    /// The trigger is paused (`pipeline trigger pause`).
    Paused,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Cooldown => "cooldown",
            Reason::Concurrency => "concurrency",
            Reason::MaxRunsPerDay => "max_runs_per_day",
            Reason::LoopGuard => "loop_guard",
            Reason::Paused => "paused",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the policy looks at: the pipeline's runs now and its recent trigger-started runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// Active runs, oldest first (canceled ones that have not ended yet are left out).
    pub active: Vec<String>,
    pub queued: usize,
    /// Creation times of trigger-started runs, any order.
    pub trigger_starts_ms: Vec<i64>,
}

/// The decision for a trigger event at `now_ms`. Manual runs skip cooldown and the daily limit,
/// and wait for a slot rather than being suppressed.
pub fn decide(policy: &Policy, load: &Load, now_ms: i64, manual: bool) -> Decision {
    let max = usize::try_from(policy.max_concurrent)
        .unwrap_or(usize::MAX)
        .max(1);
    if manual {
        return if load.active.len() < max && load.queued == 0 {
            Decision::Start
        } else {
            Decision::Queue
        };
    }
    if let Some(limit) = policy.max_runs_per_day {
        let today = load
            .trigger_starts_ms
            .iter()
            .filter(|&&t| now_ms - t < DAY_MS)
            .count();
        if today >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Decision::Suppress(Reason::MaxRunsPerDay);
        }
    }
    if let Some(cooldown) = policy.cooldown {
        let cooldown = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
        let last = load.trigger_starts_ms.iter().max();
        if last.is_some_and(|&t| now_ms - t < cooldown) {
            return Decision::Suppress(Reason::Cooldown);
        }
    }
    if load.active.len() < max && load.queued == 0 {
        return Decision::Start;
    }
    match policy.on_conflict {
        OnConflict::Skip => Decision::Suppress(Reason::Concurrency),
        // One waiting run per slot: a storm queues no more than could start next.
        OnConflict::Queue if load.queued < max => Decision::Queue,
        OnConflict::Queue => Decision::Suppress(Reason::Concurrency),
        OnConflict::CancelRunning => {
            let excess = (load.active.len() + 1).saturating_sub(max);
            Decision::CancelAndStart(load.active.iter().take(excess).cloned().collect())
        }
    }
}

/// Whether an event whose cause chain is `chain` (pipelines, oldest first) must not start
/// `pipeline`: it is in the chain already (unless the policy allows it), or the chain is at its
/// limit.
pub fn loop_guard(policy: &Policy, pipeline: &str, chain: &[String]) -> bool {
    chain.len() >= MAX_CHAIN || (!policy.allow_self_trigger && chain.iter().any(|p| p == pipeline))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(active: &[&str], queued: usize, starts: &[i64]) -> Load {
        Load {
            active: active.iter().map(|s| (*s).to_owned()).collect(),
            queued,
            trigger_starts_ms: starts.to_vec(),
        }
    }

    fn policy(on_conflict: OnConflict) -> Policy {
        Policy {
            on_conflict,
            ..Policy::default()
        }
    }

    #[test]
    fn a_free_slot_starts_and_a_busy_one_follows_on_conflict() {
        let idle = load(&[], 0, &[]);
        let busy = load(&["r1"], 0, &[]);
        assert_eq!(
            decide(&policy(OnConflict::Queue), &idle, 0, false),
            Decision::Start
        );
        assert_eq!(
            decide(&policy(OnConflict::Queue), &busy, 0, false),
            Decision::Queue
        );
        assert_eq!(
            decide(&policy(OnConflict::Skip), &busy, 0, false),
            Decision::Suppress(Reason::Concurrency)
        );
        assert_eq!(
            decide(&policy(OnConflict::CancelRunning), &busy, 0, false),
            Decision::CancelAndStart(vec!["r1".into()])
        );
        let two = Policy {
            max_concurrent: 2,
            ..policy(OnConflict::Skip)
        };
        assert_eq!(decide(&two, &busy, 0, false), Decision::Start);
    }

    #[test]
    fn a_full_queue_suppresses_so_a_storm_cannot_pile_up() {
        let p = policy(OnConflict::Queue);
        assert_eq!(
            decide(&p, &load(&["r1"], 0, &[]), 0, false),
            Decision::Queue
        );
        assert_eq!(
            decide(&p, &load(&["r1"], 1, &[]), 0, false),
            Decision::Suppress(Reason::Concurrency)
        );
        // One waiting run per slot.
        let two = Policy {
            max_concurrent: 2,
            ..p
        };
        assert_eq!(
            decide(&two, &load(&["r1", "r2"], 1, &[]), 0, false),
            Decision::Queue
        );
        assert_eq!(
            decide(&two, &load(&["r1", "r2"], 2, &[]), 0, false),
            Decision::Suppress(Reason::Concurrency)
        );
    }

    #[test]
    fn cooldown_and_the_daily_limit_hold_back_triggers_but_not_manual_runs() {
        let p = Policy {
            cooldown: Some(Duration::from_secs(60)),
            max_runs_per_day: Some(2),
            ..Policy::default()
        };
        let recent = load(&[], 0, &[1_000]);
        assert_eq!(
            decide(&p, &recent, 30_000, false),
            Decision::Suppress(Reason::Cooldown)
        );
        assert_eq!(decide(&p, &recent, 61_000, false), Decision::Start);
        assert_eq!(decide(&p, &recent, 30_000, true), Decision::Start);
        let two_today = load(&[], 0, &[0, 100_000]);
        assert_eq!(
            decide(&p, &two_today, 200_000, false),
            Decision::Suppress(Reason::MaxRunsPerDay)
        );
        assert_eq!(decide(&p, &two_today, 200_000, true), Decision::Start);
        // A day later the first start no longer counts.
        assert_eq!(decide(&p, &two_today, DAY_MS + 1, false), Decision::Start);
        assert_eq!(decide(&p, &load(&["r"], 0, &[]), 0, true), Decision::Queue);
    }

    #[test]
    fn the_loop_guard_stops_self_triggers_and_long_chains() {
        let strict = Policy::default();
        let chain =
            |names: &[&str]| -> Vec<String> { names.iter().map(|s| (*s).to_owned()).collect() };
        assert!(loop_guard(&strict, "train", &chain(&["train"])));
        assert!(!loop_guard(&strict, "train", &chain(&["etl"])));
        assert!(!loop_guard(&strict, "train", &[]));
        let lenient = Policy {
            allow_self_trigger: true,
            ..Policy::default()
        };
        assert!(!loop_guard(&lenient, "train", &chain(&["train"])));
        assert!(loop_guard(
            &lenient,
            "train",
            &chain(&["a", "b", "c", "d", "e"])
        ));
    }
}
