//! The executions the cache and `plan` read: one JSON line per finished step execution under
//! `<home>/cache/executions.jsonl`. A stand-in for the metadata store, which records executions
//! in lineage in a later phase; a line that does not parse is skipped with a warning. Reused
//! steps are recorded too (state `CACHED`, with `cached_from`), so that a run can be resumed
//! from any run, itself resumed or cached.

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
    /// The run whose execution a `CACHED` one reused; absent from lines written before reuses
    /// were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
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

    pub fn executions(&self) -> &[Execution] {
        &self.executions
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

    /// Keeps only the executions `keep` accepts, rewriting the file whole (through a temporary
    /// file and a rename, so that a crash leaves the old index or the new one) and returns how
    /// many it removed.
    pub fn retain(&mut self, keep: impl Fn(&Execution) -> bool) -> std::io::Result<usize> {
        let before = self.executions.len();
        self.executions.retain(|e| keep(e));
        let removed = before - self.executions.len();
        if removed == 0 {
            return Ok(0);
        }
        let mut text = Vec::new();
        for execution in &self.executions {
            serde_json::to_writer(&mut text, execution).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        let partial = self.path.with_extension("jsonl.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &self.path)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::EnvDoc;
    use crate::spec::OutputKind;

    fn execution(run_id: &str, state: StepState, finished_ms: i64, digest: &str) -> Execution {
        Execution {
            pipeline: "p".into(),
            step: "s".into(),
            run_id: run_id.into(),
            key: "k".into(),
            doc: KeyDoc {
                v: 1,
                kind: "run".into(),
                command: "true".into(),
                params: BTreeMap::new(),
                code: BTreeMap::new(),
                env: EnvDoc {
                    lock: BTreeMap::new(),
                    vars: BTreeMap::new(),
                },
                inputs: BTreeMap::new(),
                outputs: Vec::new(),
                salt: None,
            },
            state,
            finished_ms,
            outputs: BTreeMap::from([(
                "o".into(),
                OutputRecord {
                    kind: OutputKind::Value,
                    digest: digest.into(),
                    value: None,
                },
            )]),
            cached_from: None,
        }
    }

    #[test]
    fn a_hit_is_the_newest_success_with_its_blobs_and_it_survives_a_reopen() {
        let home = tempfile::tempdir().unwrap();
        let cas = Cas::new(home.path());
        let present = cas.put_bytes(b"1").unwrap();
        let mut index = Index::open(home.path()).unwrap();
        index
            .record(execution("r1", StepState::Succeeded, 1_000, &present))
            .unwrap();
        index
            .record(execution("r2", StepState::Succeeded, 2_000, "0badc0de"))
            .unwrap();
        index
            .record(execution("r3", StepState::Failed, 3_000, &present))
            .unwrap();
        let index = Index::open(home.path()).unwrap();
        let hit = |max_age, now| {
            index
                .hit("k", max_age, &cas, false, now)
                .map(|e| e.run_id.clone())
        };
        assert_eq!(
            hit(None, 4_000).as_deref(),
            Some("r1"),
            "r2's blob is gone, r3 failed"
        );
        assert_eq!(hit(Some(Duration::from_secs(2)), 4_000), None, "too old");
        assert!(index.hit("other", None, &cas, false, 4_000).is_none());
        assert_eq!(
            index.newest("p", "s").map(|e| e.run_id.as_str()),
            Some("r3")
        );
    }

    #[test]
    fn a_line_written_before_cached_from_still_reads_and_retain_rewrites_the_file() {
        let home = tempfile::tempdir().unwrap();
        let old = serde_json::to_value(execution("r0", StepState::Succeeded, 1, "d")).unwrap();
        assert!(old.get("cached_from").is_none(), "None is not written");
        std::fs::create_dir_all(home.path().join("cache")).unwrap();
        std::fs::write(
            home.path().join("cache/executions.jsonl"),
            format!("{old}\n"),
        )
        .unwrap();
        let mut index = Index::open(home.path()).unwrap();
        let mut reused = execution("r1", StepState::Cached, 2, "d");
        reused.cached_from = Some("r0".into());
        index.record(reused).unwrap();
        assert_eq!(index.retain(|e| e.run_id != "r0").unwrap(), 1);
        let index = Index::open(home.path()).unwrap();
        let runs: Vec<_> = index
            .executions()
            .iter()
            .map(|e| (e.run_id.as_str(), e.cached_from.as_deref()))
            .collect();
        assert_eq!(runs, vec![("r1", Some("r0"))]);
    }
}
