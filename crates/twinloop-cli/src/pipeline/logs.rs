//! `twinloop pipeline logs RUN [STEP] [--attempt N]`: a run's step logs, from the pipeline home
//! on this machine (a server runs steps in the repo it was given, so its logs are there too).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::output::outln;

#[derive(Args)]
pub struct LogsArgs {
    /// The run id (`pipeline run` and `pipeline runs` print it).
    run: String,
    /// One step (default: every step, in the order they started).
    step: Option<String>,
    /// One attempt of the step (default: every attempt).
    #[arg(long)]
    attempt: Option<u32>,
}

/// The numbered attempt directories of `dir`, in order.
fn attempts(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect();
    out.sort();
    out
}

/// The step directories of a run, oldest first.
fn steps(run_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(std::time::SystemTime, String, PathBuf)> = std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let created = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((created, e.file_name().to_str()?.to_owned(), e.path()))
        })
        .collect();
    out.sort();
    out.into_iter()
        .map(|(_, name, path)| (name, path))
        .collect()
}

pub fn logs(args: &LogsArgs, home: &Path) -> ExitCode {
    let run_dir = home.join("runs").join(&args.run);
    if !run_dir.is_dir() {
        eprintln!(
            "error: no run {} under {} (hint: pass the repo the run ran in with --repo, or --home)",
            args.run,
            home.display()
        );
        return ExitCode::from(super::INVALID);
    }
    let chosen: Vec<(String, PathBuf)> = match &args.step {
        Some(step) => vec![(step.clone(), run_dir.join(step))],
        None => steps(&run_dir),
    };
    for (step, dir) in chosen {
        if !dir.is_dir() {
            eprintln!("error: run {} has no step {step:?} that ran", args.run);
            return ExitCode::from(super::INVALID);
        }
        for (attempt, attempt_dir) in attempts(&dir) {
            if args.attempt.is_some_and(|a| a != attempt) {
                continue;
            }
            for stream in ["stdout", "stderr"] {
                let text = std::fs::read_to_string(attempt_dir.join(format!("{stream}.log")))
                    .unwrap_or_default();
                if !text.is_empty() {
                    outln!("==> {step} attempt {attempt} {stream} <==");
                    outln!("{}", text.trim_end());
                }
            }
        }
    }
    ExitCode::SUCCESS
}
