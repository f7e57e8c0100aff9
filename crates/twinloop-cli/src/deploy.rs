//! `twinloop deploy …`: deployments on a running `twinloop server`, through its native API.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Api, ServerConnection, block_on};

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Create a deployment: its name is the V2 model name clients call.
    Create {
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
        name: String,
        #[arg(long = "route", required = true)]
        routes: Vec<String>,
    },
    /// Move traffic to a candidate in steps, rolling back by itself when a gate fails.
    Canary {
        name: String,
        /// MODEL/VERSION or MODEL@ALIAS.
        #[arg(long)]
        candidate: String,
        /// Percent of traffic at each step.
        #[arg(long, value_delimiter = ',', default_value = "5,25,50,100")]
        steps: Vec<u32>,
        /// Seconds at each step.
        #[arg(long, default_value_t = 60.0)]
        interval: f64,
        /// Roll back when more than this share of the candidate's requests fail in a step.
        #[arg(long)]
        max_error_rate: Option<f64>,
        /// Roll back when the candidate's p99 latency in a step is above this.
        #[arg(long)]
        max_p99_ms: Option<f64>,
    },
    /// Give a running canary's candidate all traffic now.
    Promote {
        name: String,
    },
    /// Abort a running canary, or return to the state before the last change.
    Rollback {
        name: String,
    },
    /// One deployment, or all of them.
    Status {
        name: Option<String>,
        /// Print the full JSON.
        #[arg(long)]
        json: bool,
    },
    Delete {
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

/// `MODEL[/VERSION|@ALIAS][=WEIGHT]` as a route object.
pub fn parse_route(text: &str) -> Result<Value> {
    let hint = "expected MODEL[/VERSION|@ALIAS][=WEIGHT], e.g. fraud/3=90 or fraud@champion";
    let (target, weight) = match text.rsplit_once('=') {
        Some((t, w)) => match w.parse::<u32>() {
            Ok(w) => (t, w),
            Err(_) => bail!("route {text:?}: weight {w:?} is not a whole number; {hint}"),
        },
        None => (text, 100),
    };
    let mut route = json!({"weight": weight});
    if let Some((model, alias)) = target.split_once('@') {
        route["model"] = model.into();
        route["alias"] = alias.into();
    } else if let Some((model, version)) = target.rsplit_once('/')
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
    {
        route["model"] = model.into();
        route["version"] = version.into();
    } else {
        route["model"] = target.into();
    }
    if route["model"].as_str().is_none_or(str::is_empty) {
        bail!("route {text:?}: no model; {hint}");
    }
    Ok(route)
}

fn routes(texts: &[String]) -> Result<Vec<Value>> {
    texts.iter().map(|t| parse_route(t)).collect()
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
                let mut body = json!({
                    "name": name,
                    "routes": routes(&r)?,
                    "batching": {"max_batch_size": batching.max_batch_size, "max_queue_delay_us": batching.max_queue_delay_us},
                });
                if let Some(s) = shadow {
                    body["shadow"] = parse_route(&s)?;
                }
                if let Some(k) = sticky_key {
                    body["sticky_key"] = k.into();
                }
                if let Some(f) = feature_service {
                    body["feature_service"] = f.into();
                }
                api.post(base, &body, "create deployment").await?
            }
            DeployCommand::SetTraffic { name, routes: r } => {
                api.post(
                    &format!("{base}/{name}/traffic"),
                    &json!({"routes": routes(&r)?}),
                    "set traffic",
                )
                .await?
            }
            DeployCommand::Canary {
                name,
                candidate,
                steps,
                interval,
                max_error_rate,
                max_p99_ms,
            } => {
                let mut body = json!({"candidate": parse_route(&candidate)?, "steps": steps, "interval_s": interval});
                if let Some(r) = max_error_rate {
                    body["max_error_rate"] = r.into();
                }
                if let Some(p) = max_p99_ms {
                    body["max_p99_ms"] = p.into();
                }
                api.post(&format!("{base}/{name}/canary"), &body, "start canary")
                    .await?
            }
            DeployCommand::Promote { name } => {
                api.post(&format!("{base}/{name}/promote"), &json!({}), "promote")
                    .await?
            }
            DeployCommand::Rollback { name } => {
                api.post(&format!("{base}/{name}/rollback"), &json!({}), "rollback")
                    .await?
            }
            DeployCommand::Delete { name } => {
                api.delete(&format!("{base}/{name}"), &json!({}), "delete deployment")
                    .await?;
                println!("deleted {name}");
                return Ok(());
            }
            DeployCommand::Status { name, json } => {
                let body = match name {
                    Some(n) => {
                        api.get(&format!("{base}/{n}"), &[], "deployment status")
                            .await?
                    }
                    None => api.get(base, &[], "list deployments").await?,
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&body)?);
                    return Ok(());
                }
                body
            }
        };
        match shown.get("deployments").and_then(Value::as_array) {
            Some(all) if all.is_empty() => println!("no deployments"),
            Some(all) => all.iter().for_each(print_status),
            None => print_status(&shown),
        }
        Ok(())
    })
}

fn print_status(d: &Value) {
    let state = &d["state"];
    println!(
        "{}  {}",
        d["name"].as_str().unwrap_or("?"),
        state["status"].as_str().unwrap_or("?")
    );
    for r in state["serving"].as_array().into_iter().flatten() {
        let alias = r["alias"]
            .as_str()
            .map(|a| format!(" (@{a})"))
            .unwrap_or_default();
        println!(
            "  route   {} v{}{alias}  weight {}",
            r["model"].as_str().unwrap_or("?"),
            r["version"].as_str().unwrap_or("?"),
            r["weight"]
        );
    }
    if let Some(s) = state["shadow"].as_object() {
        println!(
            "  shadow  {} v{}",
            s["model"].as_str().unwrap_or("?"),
            s["version"].as_str().unwrap_or("?")
        );
    }
    if let Some(c) = state["canary"].as_object() {
        let reason = c
            .get("reason")
            .and_then(Value::as_str)
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        println!(
            "  canary  {} at {}%{reason}",
            c["status"].as_str().unwrap_or("?"),
            c["percent"]
        );
    }
    if let Some(e) = state["error"].as_str() {
        println!("  error   {e}");
    }
    for e in state["events"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take(3)
    {
        println!("  event   {}", e["message"].as_str().unwrap_or(""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_every_form() {
        assert_eq!(
            parse_route("fraud/3=90").unwrap(),
            json!({"model": "fraud", "version": "3", "weight": 90})
        );
        assert_eq!(
            parse_route("fraud@champion").unwrap(),
            json!({"model": "fraud", "alias": "champion", "weight": 100})
        );
        assert_eq!(
            parse_route("team/fraud").unwrap(),
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
}
