//! The canary's arithmetic: traffic at a step, and the gates on what the candidate did.

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

/// Why the candidate fails its gates in a step, if it does.
pub fn gate(spec: &CanarySpec, stats: &WindowStats) -> Option<String> {
    if stats.requests > 0
        && let Some(max) = spec.max_error_rate
    {
        let rate = stats.errors as f64 / stats.requests as f64;
        if rate > max {
            return Some(format!(
                "candidate error rate {rate:.3} ({} of {}) is above {max}",
                stats.errors, stats.requests
            ));
        }
    }
    if let Some(max) = spec.max_p99_ms
        && stats.requests > 0
        && stats.p99_ms > max
    {
        return Some(format!(
            "candidate p99 latency {:.2} ms is above {max} ms",
            stats.p99_ms
        ));
    }
    None
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
        };
        let ok = WindowStats {
            requests: 100,
            errors: 5,
            p99_ms: 10.0,
        };
        assert_eq!(gate(&spec, &ok), None);
        let errors = WindowStats {
            requests: 100,
            errors: 20,
            p99_ms: 10.0,
        };
        assert!(gate(&spec, &errors).unwrap().contains("error rate"));
        let slow = WindowStats {
            requests: 100,
            errors: 0,
            p99_ms: 80.0,
        };
        assert!(gate(&spec, &slow).unwrap().contains("p99"));
        let idle = WindowStats {
            requests: 0,
            errors: 0,
            p99_ms: 0.0,
        };
        assert_eq!(gate(&spec, &idle), None);
    }
}
