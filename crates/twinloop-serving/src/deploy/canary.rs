//! The canary's arithmetic: traffic at a step, and the gates on what the candidate did.

use super::state::CanaryStep;
use crate::served::WindowStats;
use crate::spec::{CanarySpec, DeploymentSpec, RouteSpec};

/// `baseline` with the candidate appended at `percent` of traffic; the baseline routes share the
/// rest in their original proportions.
pub fn at_step(baseline: &DeploymentSpec, candidate: &RouteSpec, percent: u32) -> DeploymentSpec {
    let total: u32 = baseline.routes.iter().map(|r| r.weight).sum::<u32>().max(1);
    let mut spec = baseline.clone();
    for r in &mut spec.routes {
        r.weight *= 100 - percent;
    }
    spec.routes.push(RouteSpec {
        weight: percent * total,
        ..candidate.clone()
    });
    spec
}

/// The deployment once the candidate has all traffic.
pub fn promoted(baseline: &DeploymentSpec, candidate: &RouteSpec) -> DeploymentSpec {
    DeploymentSpec {
        routes: vec![RouteSpec {
            weight: 100,
            ..candidate.clone()
        }],
        ..baseline.clone()
    }
}

/// `spec` with every route (and the shadow) that follows `alias` of `model` (by name, or as
/// the default alias) pinned to
/// `version`: what loads the routes at the version the alias is about to name.
pub fn pinned_to(spec: &DeploymentSpec, model: &str, alias: &str, version: &str) -> DeploymentSpec {
    let pin = |route: &RouteSpec| {
        if route.follows(model, alias) {
            RouteSpec {
                version: Some(version.to_string()),
                alias: None,
                ..route.clone()
            }
        } else {
            route.clone()
        }
    };
    DeploymentSpec {
        routes: spec.routes.iter().map(pin).collect(),
        shadow: spec.shadow.as_ref().map(pin),
        ..spec.clone()
    }
}

/// Judges the candidate's window of a step at `percent` against the canary's gates. A step
/// with no request passes: there is nothing to hold against the candidate.
pub fn judge(spec: &CanarySpec, percent: u32, stats: &WindowStats) -> CanaryStep {
    let seen = stats.requests > 0;
    let error_rate = seen.then(|| stats.errors as f64 / stats.requests as f64);
    let p99_ms = seen.then_some(stats.p99_ms);
    let mut reason = None;
    if let (Some(rate), Some(max)) = (error_rate, spec.max_error_rate)
        && rate > max
    {
        reason = Some(format!(
            "candidate error rate {rate:.3} ({} of {}) is above {max}",
            stats.errors, stats.requests
        ));
    } else if let (Some(p99), Some(max)) = (p99_ms, spec.max_p99_ms)
        && p99 > max
    {
        reason = Some(format!(
            "candidate p99 latency {p99:.2} ms is above {max} ms"
        ));
    }
    CanaryStep {
        percent,
        requests: stats.requests,
        errors: stats.errors,
        error_rate,
        p99_ms,
        max_error_rate: spec.max_error_rate,
        max_p99_ms: spec.max_p99_ms,
        passed: reason.is_none(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(model: &str, version: &str, weight: u32) -> RouteSpec {
        RouteSpec {
            model: model.into(),
            version: Some(version.into()),
            alias: None,
            weight,
        }
    }

    fn baseline() -> DeploymentSpec {
        DeploymentSpec {
            name: "d".into(),
            routes: vec![route("m", "1", 100)],
            shadow: None,
            sticky_key: None,
            feature_service: None,
            batching: Default::default(),
        }
    }

    #[test]
    fn pinning_touches_only_what_follows_that_alias() {
        let following = |model: &str, alias: &str| RouteSpec {
            model: model.into(),
            version: None,
            alias: Some(alias.into()),
            weight: 50,
        };
        let spec = DeploymentSpec {
            routes: vec![
                following("m", "champion"),
                following("m", "challenger"),
                RouteSpec {
                    alias: None,
                    ..following("m", "champion")
                },
                following("other", "champion"),
                route("m", "3", 10),
            ],
            shadow: Some(following("m", "champion")),
            ..baseline()
        };
        let pinned = pinned_to(&spec, "m", "champion", "1");
        assert_eq!(pinned.routes[0], route("m", "1", 50));
        assert_eq!(pinned.routes[1], spec.routes[1]);
        assert_eq!(pinned.routes[2], route("m", "1", 50), "champion by default");
        assert_eq!(pinned.routes[3..], spec.routes[3..]);
        assert_eq!(pinned.shadow, Some(route("m", "1", 50)));
        assert_eq!(pinned.name, spec.name);
    }

    #[test]
    fn steps_split_traffic_in_proportion() {
        let s = at_step(&baseline(), &route("m", "2", 0), 25);
        let weights: Vec<u32> = s.routes.iter().map(|r| r.weight).collect();
        assert_eq!(weights, vec![7500, 2500]);
        let all = at_step(&baseline(), &route("m", "2", 0), 100);
        assert_eq!(all.routes[0].weight, 0);
        assert_eq!(
            promoted(&baseline(), &route("m", "2", 0)).routes,
            vec![route("m", "2", 100)]
        );
    }

    #[test]
    fn gates_judge_errors_and_latency() {
        let spec = CanarySpec {
            candidate: route("m", "2", 0),
            steps: vec![50, 100],
            interval_s: 1.0,
            max_error_rate: Some(0.1),
            max_p99_ms: Some(50.0),
            on_promote_alias: None,
        };
        let ok = WindowStats {
            requests: 100,
            errors: 5,
            p99_ms: 10.0,
        };
        let passed = judge(&spec, 25, &ok);
        assert_eq!(
            (
                passed.passed,
                passed.error_rate,
                passed.p99_ms,
                passed.reason
            ),
            (true, Some(0.05), Some(10.0), None)
        );
        assert_eq!((passed.percent, passed.max_error_rate), (25, Some(0.1)));
        let errors = WindowStats {
            requests: 100,
            errors: 20,
            p99_ms: 10.0,
        };
        let failed = judge(&spec, 25, &errors);
        assert!(!failed.passed);
        assert!(
            failed
                .reason
                .unwrap()
                .contains("error rate 0.200 (20 of 100)")
        );
        let slow = WindowStats {
            requests: 100,
            errors: 0,
            p99_ms: 80.0,
        };
        assert!(judge(&spec, 25, &slow).reason.unwrap().contains("p99"));
        let idle = WindowStats {
            requests: 0,
            errors: 0,
            p99_ms: 0.0,
        };
        let idle = judge(&spec, 25, &idle);
        assert_eq!(
            (idle.passed, idle.requests, idle.error_rate, idle.p99_ms),
            (true, 0, None, None)
        );
    }
}
