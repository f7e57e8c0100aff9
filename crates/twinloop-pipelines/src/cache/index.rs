//! The executions the cache and `plan` read: one JSON line per finished step execution under
//! `<home>/cache/executions.jsonl`. A stand-in for the metadata store, which records executions
//! in lineage in a later phase; a line that does not parse is skipped with a warning.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cas::Cas;
use super::key::KeyDoc;
use crate::state::{OutputRecord, StepState};

/// One executed step (its last attempt), as the cache sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    pub pipeline: String,
    pub step: String,
    pub run_id: String,
    pub key: String,
    pub doc: KeyDoc,
    pub state: StepState,
    pub finished_ms: i64,
    pub outputs: BTreeMap<String, OutputRecord>,
}

#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    executions: Vec<Execution>,
}

impl Index {
    pub fn open(home: &Path) -> std::io::Result<Index> {
        let path = home.join("cache").join("executions.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let executions = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|line| match serde_json::from_str(line) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable cache index line");
                    None
                }
            })
            .collect();
        Ok(Index { path, executions })
    }

    pub fn record(&mut self, execution: Execution) -> std::io::Result<()> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut line = serde_json::to_vec(&execution).map_err(std::io::Error::other)?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?
            .write_all(&line)?;
        self.executions.push(execution);
        Ok(())
    }

    /// The newest SUCCEEDED execution with this key, no older than `max_age`, whose every
    /// output is still in the store (rehashed with `verify`).
    pub fn hit(
        &self,
        key: &str,
        max_age: Option<Duration>,
        cas: &Cas,
        verify: bool,
        now_ms: i64,
    ) -> Option<&Execution> {
        self.executions.iter().rev().find(|e| {
            e.key == key
                && e.state == StepState::Succeeded
                && max_age.is_none_or(|age| {
                    now_ms - e.finished_ms <= i64::try_from(age.as_millis()).unwrap_or(i64::MAX)
                })
                && e.outputs
                    .values()
                    .all(|o| cas.present(o.kind, &o.digest, verify))
        })
    }

    /// The newest execution of a step of a pipeline, whatever its state.
    pub fn newest(&self, pipeline: &str, step: &str) -> Option<&Execution> {
        self.executions
            .iter()
            .rev()
            .find(|e| e.pipeline == pipeline && e.step == step)
    }

    pub fn len(&self) -> usize {
        self.executions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.executions.is_empty()
    }
}
