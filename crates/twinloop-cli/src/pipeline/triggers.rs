//! `twinloop pipeline triggers [NAME]`: each trigger's next tick and its newest events — fired
//! (with the run), suppressed (with the reason) or missed.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use twinloop_api::pipelines::{Trigger, TriggerList, TriggerTarget};

use super::apply::{BASE, ServerArg};
use crate::client::block_on;
use crate::monitor::utc;
use crate::output::outln;

#[derive(Args)]
pub struct TriggersArgs {
    /// Only this pipeline's triggers.
    name: Option<String>,
    /// Print the triggers as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Subcommand)]
pub enum TriggerCommand {
    /// Pause a pipeline's triggers (NAME) or one of them (NAME/INDEX): their events are
    /// recorded as suppressed (paused), and resuming replays none of them.
    Pause(TargetArgs),
    /// Resume paused triggers (NAME or NAME/INDEX).
    Resume(TargetArgs),
}

#[derive(Args)]
pub struct TargetArgs {
    /// The pipeline, or pipeline/INDEX for one trigger (its position in `triggers:`, from 0).
    target: String,
    #[command(flatten)]
    server: ServerArg,
}

/// `NAME` or `NAME/INDEX`.
fn target(text: &str) -> anyhow::Result<TriggerTarget> {
    let (pipeline, index) = match text.rsplit_once('/') {
        Some((name, index)) => {
            let index = index.parse().with_context(|| {
                format!("{text:?}: INDEX after / is a trigger's position (0, 1, …)")
            })?;
            (name, Some(index))
        }
        None => (text, None),
    };
    if pipeline.is_empty() {
        bail!("{text:?}: name a pipeline (NAME or NAME/INDEX)");
    }
    Ok(TriggerTarget {
        index,
        pipeline: Some(pipeline.to_owned()),
    })
}

pub fn trigger(command: &TriggerCommand) -> ExitCode {
    let (args, verb) = match command {
        TriggerCommand::Pause(a) => (a, "pause"),
        TriggerCommand::Resume(a) => (a, "resume"),
    };
    super::apply::remote(block_on(async {
        let body = target(&args.target)?;
        let api = args.server.api()?;
        let list: TriggerList = api
            .post_as(
                &format!("{BASE}/triggers/{verb}"),
                &body,
                &format!("{verb} the trigger"),
            )
            .await?;
        for trigger in &list.triggers {
            if body.index.is_none_or(|i| i == trigger.index) {
                let state = if trigger.paused { "paused" } else { "active" };
                outln!(
                    "{}[{}] {}: {state}",
                    trigger.pipeline,
                    trigger.index,
                    trigger.description
                );
            }
        }
        Ok(())
    }))
}

pub fn triggers(args: &TriggersArgs) -> ExitCode {
    super::apply::remote(block_on(async {
        let api = args.server.api()?;
        let mut query = Vec::new();
        if let Some(name) = &args.name {
            query.push(("pipeline", name.as_str()));
        }
        let list: TriggerList = api
            .get_as(&format!("{BASE}/triggers"), &query, "list triggers")
            .await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(());
        }
        if list.triggers.is_empty() {
            outln!("no triggers");
        }
        for trigger in &list.triggers {
            for line in describe(trigger) {
                outln!("{line}");
            }
        }
        Ok(())
    }))
}

fn describe(t: &Trigger) -> Vec<String> {
    let paused = if t.paused { " (paused)" } else { "" };
    let mut lines = vec![format!(
        "{}[{}] {}{paused}",
        t.pipeline, t.index, t.description
    )];
    if let Some(next) = t.next_ms {
        lines.push(format!("  next: {}", utc(next)));
    }
    for e in &t.recent {
        let mut line = format!("  {}  {:<10}  {}", utc(e.at_ms), e.outcome, e.dedup_key);
        if let Some(run) = &e.run_id {
            line.push_str(&format!("  run {run}"));
        }
        if let Some(reason) = &e.reason {
            line.push_str(&format!("  ({reason})"));
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_pipeline_and_perhaps_a_trigger() {
        let all = target("train").unwrap();
        assert_eq!((all.pipeline.as_deref(), all.index), (Some("train"), None));
        let one = target("train/1").unwrap();
        assert_eq!(
            (one.pipeline.as_deref(), one.index),
            (Some("train"), Some(1))
        );
        assert!(target("train/x").is_err());
        assert!(target("/1").is_err());
    }
}
