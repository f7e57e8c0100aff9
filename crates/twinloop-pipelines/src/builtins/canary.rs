//! `deploy.canary@1` and `deploy.set-alias@1`: the registry and the deployments of this
//! process, through their domain calls.
//!
//! A canary runs in the deployment manager, not in the step: when the step's future is dropped
//! (its timeout, or the run canceled) the canary goes on to its own promotion or rollback, and
//! only the step's wait ends. That leaves the deployment consistent, never half-moved.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use twinloop_core::tracking::Tag;
use twinloop_serving::deploy::{CanaryState, CanaryStatus, DeploymentManager, DeploymentStatus};
use twinloop_serving::engine::ServeError;
use twinloop_serving::spec::{CanarySpec, DeploymentSpec, RouteSpec};

use super::register::set_alias;
use super::{Ctx, Values};
use crate::duration::parse_duration;
use crate::services::Services;

const NO_SERVING: &str =
    "deploy.canary needs serving in this process: run on `twinloop server` or quickstart";
const DEFAULT_ALIAS: &str = "champion";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryArgs {
    deployment: String,
    candidate: Value,
    model: Option<String>,
    #[serde(default = "default_steps")]
    steps: Vec<u32>,
    interval: Option<String>,
    max_error_rate: Option<f64>,
    max_p99_ms: Option<f64>,
    on_promote: Option<OnPromote>,
    #[serde(default = "yes")]
    wait: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnPromote {
    alias: String,
}

fn default_steps() -> Vec<u32> {
    vec![10, 50, 100]
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasArgs {
    model: String,
    alias: String,
    version: Value,
}

/// A version as `with:` may give it: `3`, `"3"` or an upstream value output.
fn version_text(field: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        Value::String(s)
            if !s.trim().is_empty() && s.trim().chars().all(|c| c.is_ascii_digit()) =>
        {
            Ok(s.trim().to_owned())
        }
        other => Err(format!(
            "with.{field} must be a version number, not {other}"
        )),
    }
}

fn outcome(outcome: &str, reason: impl Into<String>, version: &str) -> Values {
    Values::from([
        ("outcome".to_owned(), Value::String(outcome.into())),
        ("reason".to_owned(), Value::String(reason.into())),
        ("version".to_owned(), Value::String(version.into())),
    ])
}

pub(crate) async fn set_alias_step(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: AliasArgs = ctx.args()?;
    let version = version_text("version", &args.version)?;
    set_alias(&ctx.services()?.store, &args.model, &args.alias, &version).await?;
    ctx.log.line(format!(
        "alias {}@{} -> version {version}",
        args.model, args.alias
    ));
    Ok(Values::from([(
        "version".to_owned(),
        Value::String(version),
    )]))
}

pub(crate) async fn canary_step(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: CanaryArgs = ctx.args()?;
    let candidate = version_text("candidate", &args.candidate)?;
    let interval = match &args.interval {
        Some(text) => parse_duration(text).map_err(|e| format!("with.interval: {e}"))?,
        None => Duration::from_secs(120),
    };
    let services = ctx.services()?;
    let deployments = services.deployments.as_ref().ok_or(NO_SERVING)?;
    let current = match deployments.status(&args.deployment).await {
        Ok(status) => status,
        Err(ServeError::NotFound(_)) => {
            return first_deployment(ctx, services, deployments, &args, &candidate).await;
        }
        Err(e) => return Err(format!("deployment {}: {e}", args.deployment)),
    };
    let model = match (&args.model, current.spec.as_ref()) {
        (Some(model), _) => model.clone(),
        (None, Some(spec)) => spec.routes[0].model.clone(),
        (None, None) => {
            return Err(format!(
                "deployment {} is not serving, so its model is unknown: give with.model",
                args.deployment
            ));
        }
    };
    if serves_only(&current, &model, &candidate) {
        let reason = format!("version {candidate} already serves all traffic");
        ctx.log.line(&reason);
        return Ok(outcome("promoted", reason, &candidate));
    }
    let spec = CanarySpec {
        candidate: RouteSpec {
            model: model.clone(),
            version: Some(candidate.clone()),
            alias: None,
            weight: 0,
        },
        steps: args.steps.clone(),
        interval_s: interval.as_secs_f64(),
        max_error_rate: args.max_error_rate,
        max_p99_ms: args.max_p99_ms,
        on_promote_alias: args.on_promote.as_ref().map(|o| o.alias.clone()),
    };
    // A retried attempt finds the canary its predecessor started still running (dropping the
    // step's future does not stop it): it waits for that one instead of failing to start it.
    if current
        .state
        .running_canary()
        .is_some_and(|c| c.spec == spec)
    {
        ctx.log.line(format!(
            "canary of {model} version {candidate} on {} already running: waiting for it",
            args.deployment
        ));
    } else {
        deployments
            .canary(&args.deployment, spec.clone())
            .await
            .map_err(|e| format!("cannot start the canary on {}: {e}", args.deployment))?;
        ctx.log.line(format!(
            "canary of {model} version {candidate} on {} started: steps {:?}, {interval:?} each",
            args.deployment, args.steps
        ));
    }
    if !args.wait {
        return Ok(outcome("started", "not waited for", &candidate));
    }
    let ended = wait_for_end(ctx, deployments, &args.deployment, &spec).await?;
    let reason = ended
        .reason
        .clone()
        .unwrap_or_else(|| "every step passed".into());
    if ended.status == CanaryStatus::Promoted {
        ctx.log.line(format!("promoted: {reason}"));
        return Ok(outcome("promoted", reason, &candidate));
    }
    ctx.log.line(format!("rolled back: {reason}"));
    let tag = Tag::new("twinloop.canary", format!("rolled_back:{reason}"));
    services
        .store
        .set_model_version_tag(&model, &candidate, &tag, super::register::ACTOR)
        .await
        .map_err(|e| format!("cannot tag {model} version {candidate}: {e}"))?;
    Ok(outcome("rolled_back", reason, &candidate))
}

/// Whether every route already serves `model` at `version`, so a canary would change nothing.
fn serves_only(status: &DeploymentStatus, model: &str, version: &str) -> bool {
    !status.state.serving.is_empty()
        && status
            .state
            .serving
            .iter()
            .all(|r| r.model == model && r.version == version)
}

/// No deployment yet: the candidate becomes the alias's version and the deployment follows the
/// alias from the start. There is nothing to compare it with, so there is no canary.
async fn first_deployment(
    ctx: &Ctx<'_>,
    services: &Services,
    deployments: &Arc<DeploymentManager>,
    args: &CanaryArgs,
    candidate: &str,
) -> Result<Values, String> {
    let model = args.model.as_deref().ok_or_else(|| {
        format!(
            "deployment {} does not exist yet: give with.model to create it",
            args.deployment
        )
    })?;
    let alias = args
        .on_promote
        .as_ref()
        .map_or(DEFAULT_ALIAS, |o| o.alias.as_str());
    set_alias(&services.store, model, alias, candidate).await?;
    let spec = DeploymentSpec {
        name: args.deployment.clone(),
        routes: vec![RouteSpec {
            model: model.into(),
            version: None,
            alias: Some(alias.into()),
            weight: 100,
        }],
        shadow: None,
        sticky_key: None,
        feature_service: None,
        batching: Default::default(),
    };
    deployments
        .create(spec)
        .await
        .map_err(|e| format!("cannot create deployment {}: {e}", args.deployment))?;
    ctx.log.line(format!(
        "created deployment {} following {model}@{alias} (version {candidate})",
        args.deployment
    ));
    Ok(outcome("promoted", "first deployment", candidate))
}

/// Polls the deployment until its canary of `spec` ends, logging each judged step.
async fn wait_for_end(
    ctx: &Ctx<'_>,
    deployments: &DeploymentManager,
    name: &str,
    spec: &CanarySpec,
) -> Result<CanaryState, String> {
    let poll = Duration::from_secs_f64(spec.interval_s / 4.0)
        .clamp(Duration::from_millis(20), Duration::from_millis(500));
    let mut logged = 0;
    loop {
        let status = deployments
            .status(name)
            .await
            .map_err(|e| format!("deployment {name} during its canary: {e}"))?;
        let canary = status
            .state
            .canary
            .filter(|c| c.spec == *spec)
            .ok_or_else(|| {
                format!("the canary on {name} was replaced or cleared by another change")
            })?;
        for step in canary.steps.iter().skip(logged) {
            ctx.log.line(format!(
                "step {}%: {} requests, {} errors{}: {}",
                step.percent,
                step.requests,
                step.errors,
                step.p99_ms
                    .map_or_else(String::new, |p| format!(", p99 {p:.2} ms")),
                step.reason.as_deref().unwrap_or("passed")
            ));
        }
        logged = canary.steps.len();
        if canary.status != CanaryStatus::Running {
            return Ok(canary);
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn versions_are_whole_numbers_given_either_way() {
        assert_eq!(version_text("v", &json!(3)).unwrap(), "3");
        assert_eq!(version_text("v", &json!(" 12 ")).unwrap(), "12");
        for bad in [
            json!("champion"),
            json!(-1),
            json!(1.5),
            json!(null),
            json!(""),
        ] {
            let e = version_text("candidate", &bad).unwrap_err();
            assert!(
                e.starts_with("with.candidate must be a version number"),
                "{e}"
            );
        }
    }
}
