//! `data:` triggers: a path's content (sorted relative paths and SHA-256 digests, so mtimes and
//! rewrites of identical bytes do not count) is polled; once it differs from what last fired and
//! has stayed the same for `settle`, it fires, and the files are kept as a snapshot under the
//! pipeline home so the run reads exactly what fired it (`trigger.payload.snapshot`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cache::digest::{dir_entries, entries_digest, file_digest};

/// A watched path's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Snapshot {
    pub fingerprint: String,
    /// Sorted (relative path, digest); empty when the path does not exist.
    pub files: Vec<(String, String)>,
}

impl Snapshot {
    pub fn read(root: &Path) -> std::io::Result<Snapshot> {
        let files = if root.is_dir() {
            dir_entries(root)?
        } else if root.exists() {
            let name = root
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            vec![(name, file_digest(root)?)]
        } else {
            Vec::new()
        };
        Ok(Snapshot {
            fingerprint: entries_digest(&files),
            files,
        })
    }

    /// What the trigger's cursor keeps: enough to name the changes of the next snapshot.
    pub fn to_cursor(&self) -> String {
        json!({"fingerprint": self.fingerprint, "files": self.files}).to_string()
    }

    pub fn from_cursor(text: &str) -> Option<Snapshot> {
        let value: Value = serde_json::from_str(text).ok()?;
        Some(Snapshot {
            fingerprint: value.get("fingerprint")?.as_str()?.to_owned(),
            files: serde_json::from_value(value.get("files")?.clone()).ok()?,
        })
    }

    /// Files added, changed and removed since `before`.
    pub fn changes(&self, before: &Snapshot) -> Value {
        let old: BTreeMap<&str, &str> = before
            .files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_str()))
            .collect();
        let new: BTreeMap<&str, &str> = self
            .files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_str()))
            .collect();
        let added: Vec<&str> = new
            .keys()
            .filter(|p| !old.contains_key(*p))
            .copied()
            .collect();
        let removed: Vec<&str> = old
            .keys()
            .filter(|p| !new.contains_key(*p))
            .copied()
            .collect();
        let changed: Vec<&str> = new
            .iter()
            .filter(|(p, d)| old.get(*p).is_some_and(|o| o != *d))
            .map(|(p, _)| *p)
            .collect();
        json!({"added": added, "changed": changed, "removed": removed})
    }

    /// Copies the files into `dir/<fingerprint>/` and checks the copies against the digests, so
    /// a file rewritten meanwhile is not passed off as this snapshot. `None` when the content
    /// moved on. Copies, not hard links: a writer that rewrites a file in place would change a
    /// link's bytes too.
    pub fn keep(&self, root: &Path, dir: &Path) -> std::io::Result<Option<PathBuf>> {
        let target = dir.join(&self.fingerprint);
        let partial = dir.join(format!("{}.partial", self.fingerprint));
        if target.is_dir() {
            return Ok(Some(target));
        }
        if partial.exists() {
            std::fs::remove_dir_all(&partial)?;
        }
        std::fs::create_dir_all(&partial)?;
        for (relative, digest) in &self.files {
            let from = if root.is_dir() {
                root.join(relative)
            } else {
                root.to_path_buf()
            };
            let to = partial.join(relative);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&from, &to)?;
            if file_digest(&to)? != *digest {
                std::fs::remove_dir_all(&partial)?;
                return Ok(None);
            }
        }
        std::fs::rename(&partial, &target)?;
        Ok(Some(target))
    }
}

/// One data trigger between polls.
#[derive(Debug, Default)]
pub(super) struct Watch {
    pub next_poll_ms: i64,
    /// A fingerprint that differs from the last fired one, and since when it has been seen.
    pub pending: Option<(String, i64)>,
}

impl Watch {
    /// Whether `current` has settled: it differs from `fired` and has not changed for
    /// `settle_ms`. Any change restarts the wait, so a file written in chunks fires once.
    pub fn settled(&mut self, fired: &str, current: &str, now: i64, settle_ms: i64) -> bool {
        if current == fired {
            self.pending = None;
            return false;
        }
        match &self.pending {
            Some((fp, since)) if fp == current => now - since >= settle_ms,
            _ => {
                self.pending = Some((current.to_owned(), now));
                settle_ms <= 0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_fires_once_it_has_settled_and_chunks_restart_the_wait() {
        let mut w = Watch::default();
        assert!(!w.settled("a", "a", 0, 100));
        assert!(!w.settled("a", "b", 0, 100), "first seen: wait");
        assert!(!w.settled("a", "c", 50, 100), "changed again: wait anew");
        assert!(!w.settled("a", "c", 120, 100));
        assert!(w.settled("a", "c", 150, 100));
        // Back to what fired last: nothing is pending.
        assert!(!w.settled("a", "a", 200, 100));
        assert!(w.pending.is_none());
    }

    #[test]
    fn snapshots_digest_content_and_keep_exact_copies() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.csv"), "x\n1\n").unwrap();
        let first = Snapshot::read(&data).unwrap();
        // Identical bytes rewritten: the same snapshot.
        std::fs::write(data.join("a.csv"), "x\n1\n").unwrap();
        assert_eq!(Snapshot::read(&data).unwrap(), first);
        std::fs::write(data.join("sub/b.csv"), "y\n").unwrap();
        std::fs::write(data.join("a.csv"), "x\n2\n").unwrap();
        let second = Snapshot::read(&data).unwrap();
        assert_ne!(second.fingerprint, first.fingerprint);
        assert_eq!(
            second.changes(&first),
            json!({"added": ["sub/b.csv"], "changed": ["a.csv"], "removed": []})
        );
        assert_eq!(
            Snapshot::from_cursor(&second.to_cursor()).as_ref(),
            Some(&second)
        );
        let kept = second
            .keep(&data, &dir.path().join("snapshots"))
            .unwrap()
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(kept.join("sub/b.csv")).unwrap(),
            "y\n"
        );
        assert_eq!(
            Snapshot::read(&kept).unwrap().fingerprint,
            second.fingerprint
        );
        // Content that moved on since it was read is not kept as that snapshot.
        std::fs::write(data.join("a.csv"), "x\n3\n").unwrap();
        let stale = Snapshot {
            fingerprint: "stale".into(),
            ..second
        };
        assert_eq!(
            stale.keep(&data, &dir.path().join("snapshots")).unwrap(),
            None
        );
        assert!(
            Snapshot::read(&dir.path().join("missing"))
                .unwrap()
                .files
                .is_empty()
        );
    }
}
