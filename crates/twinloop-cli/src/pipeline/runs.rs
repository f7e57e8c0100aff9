//! `twinloop pipeline runs|status|cancel`: the runs a server holds, started by hand or by a
//! trigger.

use std::process::ExitCode;

use clap::Args;
use twinloop_api::pipelines::{PipelineRun, PipelineRunList};

use super::apply::{BASE, ServerArg};
use crate::client::block_on;
use crate::monitor::utc;
use crate::output::outln;

#[derive(Args)]
pub struct RunsArgs {
    /// Only this pipeline's runs.
    name: Option<String>,
    /// Only runs in this state: QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED or REJECTED.
    #[arg(long)]
    state: Option<String>,
    /// How many of the newest runs.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
pub struct RunArgs {
    /// The run's id (see `twinloop pipeline runs`).
    run: String,
    /// Print the run as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

pub fn runs(args: &RunsArgs) -> ExitCode {
    super::apply::remote(block_on(async {
        let api = args.server.api()?;
        let limit = args.limit.to_string();
        let mut query = vec![("limit", limit.as_str())];
        if let Some(name) = &args.name {
            query.push(("pipeline", name));
        }
        if let Some(state) = &args.state {
            query.push(("state", state));
        }
        let list: PipelineRunList = api
            .get_as(&format!("{BASE}/runs"), &query, "list pipeline runs")
            .await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(());
        }
        if list.runs.is_empty() {
            outln!("no runs");
        }
        for run in &list.runs {
            outln!("{}", one_line(run));
        }
        Ok(())
    }))
}

pub fn status(args: &RunArgs) -> ExitCode {
    super::apply::remote(block_on(async {
        let api = args.server.api()?;
        let run: PipelineRun = api
            .get_as(&format!("{BASE}/runs/{}", args.run), &[], "get the run")
            .await?;
        print_run(&run, args.json)
    }))
}

pub fn cancel(args: &RunArgs) -> ExitCode {
    super::apply::remote(block_on(async {
        let api = args.server.api()?;
        let run: PipelineRun = api
            .post_as(
                &format!("{BASE}/runs/{}/cancel", args.run),
                &twinloop_api::Empty {},
                "cancel the run",
            )
            .await?;
        print_run(&run, args.json)
    }))
}

fn print_run(run: &PipelineRun, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(run)?);
        return Ok(());
    }
    outln!(
        "run {} of {} (version {})",
        run.id,
        run.pipeline,
        run.version
    );
    outln!("  state:   {}", run.state);
    outln!("  trigger: {} {}", run.trigger, run.cause);
    outln!("  created: {}", utc(run.created_ms));
    if let Some(t) = run.started_ms {
        outln!("  started: {}", utc(t));
    }
    if let Some(t) = run.ended_ms {
        outln!("  ended:   {}", utc(t));
    }
    if let Some(reason) = &run.reason {
        outln!("  reason:  {reason}");
    }
    Ok(())
}

fn one_line(run: &PipelineRun) -> String {
    let mut line = format!(
        "{}  {}  {:<9}  {:<8}  {}",
        run.id,
        run.pipeline,
        run.state,
        run.trigger,
        utc(run.created_ms)
    );
    if let Some(reason) = &run.reason {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}
