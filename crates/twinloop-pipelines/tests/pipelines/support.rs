use std::path::{Path, PathBuf};

use twinloop_pipelines::exec::{RunOptions, RunReport, run};
use twinloop_pipelines::spec::{Pipeline, load};
use twinloop_pipelines::state::StepState;

/// A repo in a temporary directory, its pipeline home under `.twinloop`.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        Repo {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join(".twinloop")
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(relative)).unwrap_or_default()
    }

    pub fn pipeline(&self, yaml: &str) -> Pipeline {
        self.write("pipeline.yaml", yaml);
        load(&self.dir.path().join("pipeline.yaml")).unwrap()
    }

    pub fn options(&self) -> RunOptions {
        RunOptions::new(self.path().to_owned(), self.home())
    }

    pub async fn run(&self, pipeline: &Pipeline) -> RunReport {
        self.run_with(pipeline, |_| {}).await
    }

    pub async fn run_with(
        &self,
        pipeline: &Pipeline,
        adjust: impl FnOnce(&mut RunOptions),
    ) -> RunReport {
        let mut options = self.options();
        adjust(&mut options);
        run(pipeline, options).await.unwrap()
    }

    /// Executions recorded in the cache index.
    pub fn executions(&self) -> usize {
        std::fs::read_to_string(self.home().join("cache/executions.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

pub fn states(report: &RunReport) -> Vec<(String, StepState)> {
    report
        .steps
        .iter()
        .map(|s| (s.step.clone(), s.state))
        .collect()
}

pub fn state(report: &RunReport, step: &str) -> StepState {
    report
        .step(step)
        .unwrap_or_else(|| panic!("no step {step}"))
        .state
}

/// The processes of `pgid` still alive once a signal sent to the group had up to ten seconds to
/// take effect: a SIGKILL is delivered asynchronously, so a check right after `kill` can still
/// see the group's members on their way out.
pub async fn processes_left_in_group(pgid: u32) -> Vec<u32> {
    for _ in 0..200 {
        if live_processes_in_group(pgid).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    live_processes_in_group(pgid)
}

/// Processes (not zombies) in process group `pgid`, from /proc.
pub fn live_processes_in_group(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the `(comm)` field: state, ppid, pgrp.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            out.push(pid);
        }
    }
    out
}
