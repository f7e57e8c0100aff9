//! `twinloop pipeline apply FILE…` and `pipeline list`: register pipeline files with a running
//! server (which then runs their triggers) and list what it holds. Files are validated here
//! first, so an invalid one exits 2 with its located errors before anything is sent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use twinloop_api::pipelines::{ApplyPipeline, PipelineApplied, PipelineDiff, PipelineList};

use crate::client::{Api, ServerConnection, TrackingUriArg, block_on};
use crate::output::outln;

pub(super) const BASE: &str = "/api/twinloop/v1";

/// The server a pipeline client command talks to.
#[derive(Args)]
pub struct ServerArg {
    /// The twinloop server [default: --tracking-uri, $MLFLOW_TRACKING_URI, then
    /// http://127.0.0.1:5000].
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    #[command(flatten)]
    tracking: TrackingUriArg,
}

impl ServerArg {
    pub(super) fn api(&self) -> Result<Api> {
        Api::new(&ServerConnection::resolve(
            &self.tracking,
            self.server.as_deref(),
        ))
    }
}

#[derive(Args)]
pub struct ApplyArgs {
    /// Pipeline files to register; their steps run in --repo on the server's machine.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerArg,
}

/// Validates every file, then registers each and prints what changed.
pub fn apply(args: &ApplyArgs, repo: &Path) -> ExitCode {
    for file in &args.files {
        if let Err(e) = twinloop_pipelines::spec::load(file) {
            return super::fail(&e);
        }
    }
    remote(block_on(async {
        let api = args.server.api()?;
        let repo = std::path::absolute(repo)
            .with_context(|| format!("cannot resolve --repo {}", repo.display()))?;
        for file in &args.files {
            let spec = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let body = ApplyPipeline {
                file: Some(file.display().to_string()),
                repo: Some(repo.display().to_string()),
                spec: Some(spec),
            };
            let applied: PipelineApplied = api
                .post_as(&format!("{BASE}/pipelines"), &body, "apply the pipeline")
                .await?;
            for line in describe(&applied) {
                outln!("{line}");
            }
        }
        Ok(())
    }))
}

pub fn list(args: &ListArgs) -> ExitCode {
    remote(block_on(async {
        let api = args.server.api()?;
        let list: PipelineList = api
            .get_as(&format!("{BASE}/pipelines"), &[], "list pipelines")
            .await?;
        if list.pipelines.is_empty() {
            outln!("no pipelines (register one with `twinloop pipeline apply FILE`)");
        }
        for p in list.pipelines {
            outln!("{}  v{}  {}  (repo {})", p.name, p.version, p.file, p.repo);
        }
        Ok(())
    }))
}

/// A client command's end: an error is one line on stderr and exit 1.
pub(super) fn remote(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The plan diff as `apply` prints it: `+` added, `~` changed, `-` removed.
fn describe(applied: &PipelineApplied) -> Vec<String> {
    let p = &applied.pipeline;
    let mut lines = vec![if applied.created {
        format!("pipeline {}: version {} registered", p.name, p.version)
    } else {
        format!("pipeline {}: unchanged (version {})", p.name, p.version)
    }];
    let PipelineDiff {
        policy_changed,
        steps_added,
        steps_changed,
        steps_removed,
        triggers_added,
        triggers_removed,
    } = &applied.diff;
    for (mark, what, items) in [
        ('+', "trigger", triggers_added),
        ('-', "trigger", triggers_removed),
        ('+', "step", steps_added),
        ('~', "step", steps_changed),
        ('-', "step", steps_removed),
    ] {
        lines.extend(items.iter().map(|i| format!("  {mark} {what} {i}")));
    }
    if *policy_changed {
        lines.push("  ~ policy".into());
    }
    lines
}

#[cfg(test)]
mod tests {
    use twinloop_api::pipelines::Pipeline;

    use super::*;

    #[test]
    fn the_diff_marks_what_changed() {
        let applied = PipelineApplied {
            created: true,
            diff: PipelineDiff {
                policy_changed: true,
                steps_added: vec!["c".into()],
                steps_changed: vec!["b".into()],
                steps_removed: Vec::new(),
                triggers_added: vec!["every 2s".into()],
                triggers_removed: vec!["every 1h".into()],
            },
            pipeline: Pipeline {
                applied_ms: 0,
                digest: "d".into(),
                file: "p.yaml".into(),
                name: "train".into(),
                repo: "/r".into(),
                spec: None,
                version: 2,
            },
        };
        assert_eq!(
            describe(&applied),
            [
                "pipeline train: version 2 registered",
                "  + trigger every 2s",
                "  - trigger every 1h",
                "  + step c",
                "  ~ step b",
                "  ~ policy"
            ]
        );
    }
}
