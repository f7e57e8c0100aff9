//! `twinloop pipeline triggers [NAME]`: each trigger's next tick and its newest events — fired
//! (with the run), suppressed (with the reason) or missed.

use std::process::ExitCode;

use clap::Args;
use twinloop_api::pipelines::{Trigger, TriggerList};

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
    let mut lines = vec![format!("{}[{}] {}", t.pipeline, t.index, t.description)];
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
