//! `twinloop deploy …`: deployments on a running `twinloop server`, through its native API.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use twinloop_api::Empty;
use twinloop_api::deployments::{
    BatchingSpec, CanarySpec, CanaryStep, Deployment, DeploymentList, DeploymentSpec, RouteSpec,
    Traffic,
};

use crate::client::{Api, ServerConnection, block_on};
use crate::output::outln;

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Create a deployment: its name is the V2 model name clients call.
    Create {
        /// The deployment's name: clients call /v2/models/NAME/infer.
        name: String,
        /// MODEL[/VERSION|@ALIAS][=WEIGHT], repeatable (default alias: champion, weight: 100).
        #[arg(long = "route", required = true)]
        routes: Vec<String>,
        /// Mirror every request to this route; its answers are logged, never returned.
        #[arg(long)]
        shadow: Option<String>,
        /// A request parameter (or input) whose value always picks the same route.
        #[arg(long)]
        sticky_key: Option<String>,
        /// Join this feature service's online features to requests before inference.
        #[arg(long)]
        feature_service: Option<String>,
        #[command(flatten)]
        batching: Batching,
    },
    /// Replace the routes and weights.
    SetTraffic {
        /// The deployment.
        name: String,
        /// MODEL[/VERSION|@ALIAS][=WEIGHT], repeatable: the new routes, replacing all others.
        #[arg(long = "route", required = true)]
        routes: Vec<String>,
    },
    /// Move traffic to a candidate in steps, rolling back by itself when a gate fails.
    Canary {
        /// The deployment.
        name: String,
        /// The version to try: MODEL/VERSION or MODEL@ALIAS.
        #[arg(long)]
        candidate: String,
        /// The candidate's percent of traffic at each step, increasing, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5,25,50,100")]
        steps: Vec<u32>,
        /// Seconds at each step.
        #[arg(long, default_value_t = 60.0)]
        interval: f64,
        /// Roll back when more than this share (0 to 1) of the candidate's requests fail in a
        /// step.
        #[arg(long)]
        max_error_rate: Option<f64>,
        /// Roll back when the candidate's p99 latency in a step is above this many milliseconds.
        #[arg(long)]
        max_p99_ms: Option<f64>,
    },
    /// Give a running canary's candidate all traffic now.
    Promote {
        /// The deployment.
        name: String,
    },
    /// Abort a running canary, or return to the state before the last change.
    Rollback {
        /// The deployment.
        name: String,
    },
    /// One deployment, or all of them: routes with their share of traffic, the canary and its
    /// steps' gate figures, recent events.
    Status {
        /// The deployment (default: every deployment).
        name: Option<String>,
        /// Print the full JSON (the native API's answer).
        #[arg(long)]
        json: bool,
    },
    /// Stop serving a deployment and forget it (its prediction log stays).
    Delete {
        /// The deployment.
        name: String,
    },
}

#[derive(Args)]
pub struct Batching {
    /// Most rows per request and per merged run.
    #[arg(long, default_value_t = 1024)]
    max_batch_size: usize,
    /// Dynamic batching: how long a request may wait for others (0: off).
    #[arg(long, default_value_t = 0)]
    max_queue_delay_us: u64,
}

/// `MODEL[/VERSION|@ALIAS][=WEIGHT]` as a route.
pub fn parse_route(text: &str) -> Result<RouteSpec> {
    let hint = "expected MODEL[/VERSION|@ALIAS][=WEIGHT], e.g. fraud/3=90 or fraud@champion";
    let (target, weight) = match text.rsplit_once('=') {
        Some((t, w)) => match w.parse::<u32>() {
            Ok(w) => (t, w),
            Err(_) => bail!("route {text:?}: weight {w:?} is not a whole number; {hint}"),
        },
        None => (text, 100),
    };
    let mut route = RouteSpec {
        alias: None,
        model: target.to_string(),
        version: None,
        weight,
    };
    if let Some((model, alias)) = target.split_once('@') {
        route.model = model.to_string();
        route.alias = Some(alias.to_string());
    } else if let Some((model, version)) = target.rsplit_once('/')
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
    {
        route.model = model.to_string();
        route.version = Some(version.to_string());
    }
    if route.model.is_empty() {
        bail!("route {text:?}: no model; {hint}");
    }
    Ok(route)
}

fn routes(texts: &[String]) -> Result<Vec<RouteSpec>> {
    texts.iter().map(|t| parse_route(t)).collect()
}

/// What a command answers: one deployment (boxed: it is large beside a list), or all of them.
enum Shown {
    One(Box<Deployment>),
    All(DeploymentList),
}

pub fn run(conn: &ServerConnection, command: DeployCommand) -> Result<()> {
    block_on(async move {
        let api = Api::new(conn)?;
        let base = "/api/twinloop/v1/deployments";
        let shown = match command {
            DeployCommand::Create {
                name,
                routes: r,
                shadow,
                sticky_key,
                feature_service,
                batching,
            } => {
                let spec = DeploymentSpec {
                    batching: BatchingSpec {
                        max_batch_size: batching.max_batch_size,
                        max_queue_delay_us: batching.max_queue_delay_us,
                    },
                    feature_service,
                    name,
                    routes: routes(&r)?,
                    shadow: shadow.as_deref().map(parse_route).transpose()?,
                    sticky_key,
                };
                Shown::One(api.post_as(base, &spec, "create deployment").await?)
            }
            DeployCommand::SetTraffic { name, routes: r } => {
                let traffic = Traffic {
                    routes: routes(&r)?,
                };
                Shown::One(
                    api.post_as(&format!("{base}/{name}/traffic"), &traffic, "set traffic")
                        .await?,
                )
            }
            DeployCommand::Canary {
                name,
                candidate,
                steps,
                interval,
                max_error_rate,
                max_p99_ms,
            } => {
                let canary = CanarySpec {
                    candidate: parse_route(&candidate)?,
                    interval_s: interval,
                    max_error_rate,
                    max_p99_ms,
                    steps,
                };
                Shown::One(
                    api.post_as(&format!("{base}/{name}/canary"), &canary, "start canary")
                        .await?,
                )
            }
            DeployCommand::Promote { name } => Shown::One(
                api.post_as(&format!("{base}/{name}/promote"), &Empty {}, "promote")
                    .await?,
            ),
            DeployCommand::Rollback { name } => Shown::One(
                api.post_as(&format!("{base}/{name}/rollback"), &Empty {}, "rollback")
                    .await?,
            ),
            DeployCommand::Delete { name } => {
                let _: Empty = api
                    .delete_as(&format!("{base}/{name}"), &Empty {}, "delete deployment")
                    .await?;
                outln!("deleted {name}");
                return Ok(());
            }
            DeployCommand::Status { name, json } => {
                let shown = match name {
                    Some(n) => Shown::One(
                        api.get_as(&format!("{base}/{n}"), &[], "deployment status")
                            .await?,
                    ),
                    None => Shown::All(api.get_as(base, &[], "list deployments").await?),
                };
                if json {
                    let text = match &shown {
                        Shown::One(d) => serde_json::to_string_pretty(d)?,
                        Shown::All(all) => serde_json::to_string_pretty(all)?,
                    };
                    outln!("{text}");
                    return Ok(());
                }
                shown
            }
        };
        match shown {
            Shown::All(all) if all.deployments.is_empty() => outln!("no deployments"),
            Shown::All(all) => all.deployments.iter().for_each(print_status),
            Shown::One(d) => print_status(&d),
        }
        Ok(())
    })
}

fn print_status(d: &Deployment) {
    let state = &d.state;
    outln!("{}  {}", d.name, state.status);
    let total: u64 = state.serving.iter().map(|r| u64::from(r.weight)).sum();
    for r in &state.serving {
        let alias = r
            .alias
            .as_deref()
            .map(|a| format!(" (@{a})"))
            .unwrap_or_default();
        outln!(
            "  route   {} v{}{alias}  {}",
            r.model,
            r.version,
            share(u64::from(r.weight), total)
        );
    }
    if let Some(s) = &state.shadow {
        outln!("  shadow  {} v{}", s.model, s.version);
    }
    if let Some(c) = &state.canary {
        let reason = c
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        outln!("  canary  {} at {}%{reason}", c.status.as_str(), c.percent);
        for step in &c.steps {
            outln!("    {}", step_line(step));
        }
    }
    if let Some(e) = &state.error {
        outln!("  error   {e}");
    }
    for e in state.events.iter().rev().take(3) {
        outln!("  event   {}", e.message);
    }
}

/// A route's weight as a share of all routes' weights: canaries scale weights internally
/// (9000/1000), people read 90% / 10%.
fn share(weight: u64, total: u64) -> String {
    if total == 0 {
        return "0%".into();
    }
    let percent = weight as f64 * 100.0 / total as f64;
    if (percent - percent.round()).abs() < 0.05 {
        format!("{percent:.0}%")
    } else {
        format!("{percent:.1}%")
    }
}

/// One judged canary step: the figures each gate saw, its limit, and the verdict.
fn step_line(step: &CanaryStep) -> String {
    let limit =
        |max: Option<f64>, unit: &str| max.map(|m| format!(" (max {m}{unit})")).unwrap_or_default();
    let figures = match (step.error_rate, step.p99_ms) {
        (Some(rate), Some(p99)) => format!(
            "requests {}, errors {} = {rate:.3}{}, p99 {p99:.2} ms{}",
            step.requests,
            step.errors,
            limit(step.max_error_rate, ""),
            limit(step.max_p99_ms, " ms")
        ),
        _ => "no requests".to_string(),
    };
    let verdict = match (step.passed, &step.reason) {
        (true, _) => "pass".to_string(),
        (false, Some(reason)) => format!("FAIL: {reason}"),
        (false, None) => "FAIL".to_string(),
    };
    format!("step {:>3}%  {figures}  {verdict}", step.percent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Subcommand;
    use serde_json::{Value, json};

    fn wire(route: RouteSpec) -> Value {
        serde_json::to_value(route).unwrap()
    }

    fn step(json: Value) -> CanaryStep {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_deploy_command_and_argument_is_described() {
        let command = DeployCommand::augment_subcommands(clap::Command::new("deploy"));
        assert_eq!(crate::undescribed(&command), Vec::<String>::new());
    }

    #[test]
    fn routes_parse_every_form() {
        assert_eq!(
            wire(parse_route("fraud/3=90").unwrap()),
            json!({"model": "fraud", "version": "3", "weight": 90})
        );
        assert_eq!(
            wire(parse_route("fraud@champion").unwrap()),
            json!({"model": "fraud", "alias": "champion", "weight": 100})
        );
        assert_eq!(
            wire(parse_route("team/fraud").unwrap()),
            json!({"model": "team/fraud", "weight": 100})
        );
        assert!(
            parse_route("fraud=x")
                .unwrap_err()
                .to_string()
                .contains("whole number")
        );
        assert!(parse_route("@a").is_err());
    }

    #[test]
    fn weights_show_as_shares_of_traffic() {
        assert_eq!(
            (share(9000, 10000), share(1000, 10000)),
            ("90%".into(), "10%".into())
        );
        assert_eq!(share(1, 3), "33.3%");
        assert_eq!(share(0, 0), "0%");
    }

    #[test]
    fn a_step_line_shows_figures_limits_and_verdict() {
        let passed = step(
            json!({"percent": 25, "requests": 120, "errors": 1, "error_rate": 0.008333,
            "p99_ms": 3.2, "max_error_rate": 0.01, "passed": true}),
        );
        assert_eq!(
            step_line(&passed),
            "step  25%  requests 120, errors 1 = 0.008 (max 0.01), p99 3.20 ms  pass"
        );
        let idle = step(json!({"percent": 5, "requests": 0, "errors": 0, "passed": true}));
        assert_eq!(step_line(&idle), "step   5%  no requests  pass");
        let failed = step(
            json!({"percent": 50, "requests": 10, "errors": 0, "error_rate": 0.0,
            "p99_ms": 80.0, "max_p99_ms": 20.0, "passed": false, "reason": "p99 too high"}),
        );
        assert!(step_line(&failed).ends_with("p99 80.00 ms (max 20 ms)  FAIL: p99 too high"));
    }
}
