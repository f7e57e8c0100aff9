//! `cache ls | rm KEY | gc` (section 6 of the design, "Storage and GC"): the entries are the
//! index's `SUCCEEDED` executions, the ones a cache hit may reuse. Removing entries then sweeps
//! the store of every blob that no remaining execution references, so a blob still reachable from
//! the index is never removed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{Cas, Execution, Index};
use crate::error::Error;
use crate::state::StepState;

/// One cache entry, as `cache ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub key: String,
    pub step: String,
    pub pipeline: String,
    pub run_id: String,
    pub finished_ms: i64,
    /// Milliseconds between `finished_ms` and the listing.
    pub age_ms: i64,
    /// The bytes of the distinct blobs of its outputs that are still in the store.
    pub size_bytes: u64,
}

/// What `rm` or `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// Index lines, whatever their state.
    pub executions: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// The cache entries, oldest first.
pub fn entries(home: &Path, now_ms: i64) -> Result<Vec<Entry>, Error> {
    let index = open(home)?;
    let cas = Cas::new(home);
    Ok(index
        .executions()
        .iter()
        .filter(|e| e.state == StepState::Succeeded)
        .map(|e| Entry {
            key: e.key.clone(),
            step: e.step.clone(),
            pipeline: e.pipeline.clone(),
            run_id: e.run_id.clone(),
            finished_ms: e.finished_ms,
            age_ms: now_ms - e.finished_ms,
            size_bytes: referenced(&cas, [e]).iter().map(|d| cas.size(d)).sum(),
        })
        .collect())
}

/// Removes every execution with this key (its reuses too, which point at the same blobs), then
/// the blobs nothing else references. An unknown key is an error, not a silent no-op.
pub fn remove(home: &Path, key: &str) -> Result<Removed, Error> {
    let mut index = open(home)?;
    if !index.executions().iter().any(|e| e.key == key) {
        return Err(Error::UnknownKey(key.to_owned()));
    }
    let executions = index
        .retain(|e| e.key != key)
        .map_err(|e| Error::io("cannot rewrite the cache index", e))?;
    let mut removed = sweep(&index, &Cas::new(home))?;
    removed.executions = executions;
    Ok(removed)
}

/// Removes the executions that finished more than `older_than` before `now_ms` (none without
/// it), then the blobs no remaining execution references.
pub fn gc(home: &Path, older_than: Option<Duration>, now_ms: i64) -> Result<Removed, Error> {
    let mut index = open(home)?;
    let executions = match older_than {
        Some(age) => {
            let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            index
                .retain(|e| now_ms.saturating_sub(e.finished_ms) <= age)
                .map_err(|e| Error::io("cannot rewrite the cache index", e))?
        }
        None => 0,
    };
    let mut removed = sweep(&index, &Cas::new(home))?;
    removed.executions = executions;
    Ok(removed)
}

fn open(home: &Path) -> Result<Index, Error> {
    Index::open(home).map_err(|e| {
        Error::io(
            format!("cannot read the cache index under {}", home.display()),
            e,
        )
    })
}

fn referenced<'a>(
    cas: &Cas,
    executions: impl IntoIterator<Item = &'a Execution>,
) -> BTreeSet<String> {
    executions
        .into_iter()
        .flat_map(|e| e.outputs.values())
        .flat_map(|o| cas.blobs(o.kind, &o.digest))
        .collect()
}

fn sweep(index: &Index, cas: &Cas) -> Result<Removed, Error> {
    let keep = referenced(cas, index.executions());
    let mut removed = Removed::default();
    let blobs = cas
        .list()
        .map_err(|e| Error::io("cannot list the output store", e))?;
    for (digest, size) in blobs {
        if keep.contains(&digest) {
            continue;
        }
        cas.remove(&digest)
            .map_err(|e| Error::io(format!("cannot remove blob {digest}"), e))?;
        removed.blobs += 1;
        removed.bytes += size;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cache::key::{EnvDoc, KeyDoc};
    use crate::spec::OutputKind;
    use crate::state::OutputRecord;

    fn execution(
        key: &str,
        run_id: &str,
        finished_ms: i64,
        kind: OutputKind,
        digest: &str,
    ) -> Execution {
        Execution {
            pipeline: "p".into(),
            step: format!("step-{key}"),
            run_id: run_id.into(),
            key: key.into(),
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
            state: StepState::Succeeded,
            finished_ms,
            outputs: BTreeMap::from([(
                "o".into(),
                OutputRecord {
                    kind,
                    digest: digest.into(),
                    value: None,
                },
            )]),
            cached_from: None,
        }
    }

    /// A store with an old entry (a file), a new entry (a directory sharing no blob with it)
    /// and a blob no entry references.
    fn store() -> (tempfile::TempDir, Cas, [String; 4]) {
        let home = tempfile::tempdir().unwrap();
        let cas = Cas::new(home.path());
        let work = tempfile::tempdir().unwrap();
        let old = cas.put_bytes(b"old").unwrap();
        let orphan = cas.put_bytes(b"orphan").unwrap();
        std::fs::create_dir_all(work.path().join("d")).unwrap();
        std::fs::write(work.path().join("d/f"), "in a dir").unwrap();
        let dir = cas.put_dir(&work.path().join("d")).unwrap();
        let dir_file = super::super::digest::bytes_digest(b"in a dir");
        let mut index = Index::open(home.path()).unwrap();
        index
            .record(execution("k-old", "r1", 1_000, OutputKind::File, &old))
            .unwrap();
        index
            .record(execution("k-new", "r2", 90_000, OutputKind::Dir, &dir))
            .unwrap();
        (home, cas, [old, dir, dir_file, orphan])
    }

    fn blobs(cas: &Cas) -> Vec<String> {
        cas.list().unwrap().into_iter().map(|(d, _)| d).collect()
    }

    #[test]
    fn gc_removes_unreferenced_blobs_and_keeps_referenced_ones() {
        let (home, cas, [old, dir, dir_file, orphan]) = store();
        let removed = gc(home.path(), None, 100_000).unwrap();
        assert_eq!((removed.executions, removed.blobs), (0, 1));
        assert_eq!(removed.bytes, 6, "the orphan's bytes");
        assert!(!blobs(&cas).contains(&orphan));
        for kept in [&old, &dir, &dir_file] {
            assert!(blobs(&cas).contains(kept), "{kept} is referenced");
        }

        let removed = gc(home.path(), Some(Duration::from_secs(60)), 100_000).unwrap();
        assert_eq!(
            (removed.executions, removed.blobs),
            (1, 1),
            "k-old is 99 s old"
        );
        let left = blobs(&cas);
        assert!(!left.contains(&old));
        assert!(
            left.contains(&dir) && left.contains(&dir_file),
            "k-new still references them"
        );
        let keys: Vec<_> = entries(home.path(), 100_000)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, vec!["k-new"]);
    }

    #[test]
    fn ls_lists_succeeded_executions_with_their_size_and_rm_removes_one() {
        let (home, cas, [old, dir, ..]) = store();
        let listed = entries(home.path(), 100_000).unwrap();
        let summary: Vec<_> = listed
            .iter()
            .map(|e| (e.key.as_str(), e.run_id.as_str(), e.age_ms, e.size_bytes))
            .collect();
        let manifest = cas.size(&dir);
        assert_eq!(
            summary,
            vec![
                ("k-old", "r1", 99_000, 3),
                ("k-new", "r2", 10_000, manifest + 8)
            ]
        );

        let removed = remove(home.path(), "k-old").unwrap();
        assert_eq!(
            (removed.executions, removed.blobs),
            (1, 2),
            "its blob and the orphan"
        );
        assert!(!blobs(&cas).contains(&old));
        assert!(blobs(&cas).contains(&dir));
    }

    #[test]
    fn rm_of_an_unknown_key_is_an_error_that_names_it() {
        let (home, cas, _) = store();
        let before = blobs(&cas);
        let error = remove(home.path(), "nope").unwrap_err();
        assert_eq!(error.to_string(), "no cache entry with key \"nope\"");
        assert_eq!(blobs(&cas), before, "nothing was swept");
    }
}
