//! The content-addressed store of step outputs: `cas/sha256/ab/<digest>` under the pipeline
//! home. A file is one blob; a directory is its files' blobs plus a manifest (JSON list of
//! (relative path, digest)) stored under the directory's digest. Blobs are made read-only,
//! because inputs are hard links to them.

use std::path::{Path, PathBuf};

use super::digest::{dir_entries, entries_digest, file_digest};
use crate::spec::OutputKind;

#[derive(Debug, Clone)]
pub struct Cas {
    root: PathBuf,
}

impl Cas {
    pub fn new(home: &Path) -> Cas {
        Cas {
            root: home.join("cas").join("sha256"),
        }
    }

    pub fn path(&self, digest: &str) -> PathBuf {
        self.root.join(digest.get(..2).unwrap_or("00")).join(digest)
    }

    /// Moves the file into the store and returns its digest.
    pub fn put_file(&self, source: &Path) -> std::io::Result<String> {
        let digest = file_digest(source)?;
        self.place(source, &digest)?;
        Ok(digest)
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = super::digest::bytes_digest(bytes);
        let target = self.path(&digest);
        if !target.exists() {
            write_blob(&target, bytes)?;
        }
        Ok(digest)
    }

    /// Moves the directory's files into the store and returns the directory's digest.
    pub fn put_dir(&self, source: &Path) -> std::io::Result<String> {
        let entries = dir_entries(source)?;
        for (relative, digest) in &entries {
            self.place(&source.join(relative), digest)?;
        }
        self.put_manifest(&entries)
    }

    /// Stores a directory made of blobs already in the store: its sorted (relative path, digest)
    /// entries. Returns the directory's digest.
    pub fn put_manifest(&self, entries: &[(String, String)]) -> std::io::Result<String> {
        let digest = entries_digest(entries);
        let manifest = serde_json::to_vec(entries).map_err(std::io::Error::other)?;
        let target = self.path(&digest);
        if !target.exists() {
            write_blob(&target, &manifest)?;
        }
        Ok(digest)
    }

    /// Whether everything an output needs is still in the store; `verify` rehashes it too.
    pub fn present(&self, kind: OutputKind, digest: &str, verify: bool) -> bool {
        let blob_ok = |digest: &str| {
            let path = self.path(digest);
            if verify {
                file_digest(&path).is_ok_and(|d| d == digest)
            } else {
                path.is_file()
            }
        };
        match kind {
            OutputKind::Dir => self.manifest(digest).is_ok_and(|entries| {
                (!verify || entries_digest(&entries) == digest)
                    && entries.iter().all(|(_, d)| blob_ok(d))
            }),
            OutputKind::File | OutputKind::Metrics | OutputKind::Value => blob_ok(digest),
        }
    }

    /// Puts an output at `target`: a hard link to the blob (a copy across file systems), or a
    /// directory of such links.
    pub fn materialize(
        &self,
        kind: OutputKind,
        digest: &str,
        target: &Path,
    ) -> std::io::Result<()> {
        if kind != OutputKind::Dir {
            return link_or_copy(&self.path(digest), target);
        }
        std::fs::create_dir_all(target)?;
        for (relative, file) in self.manifest(digest)? {
            let to = target.join(&relative);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            link_or_copy(&self.path(&file), &to)?;
        }
        Ok(())
    }

    /// Materializes a step's input `name` under `dir` and answers its path. A Parquet file gets
    /// its extension back (the store names blobs by digest), so that readers that go by the
    /// name — pandas, the monitors — know it.
    pub fn materialize_input(
        &self,
        kind: OutputKind,
        digest: &str,
        dir: &Path,
        name: &str,
    ) -> std::io::Result<PathBuf> {
        let mut path = dir.join(name);
        if kind == OutputKind::File && is_parquet(&self.path(digest)) {
            path.set_extension("parquet");
        }
        self.materialize(kind, digest, &path)?;
        Ok(path)
    }

    /// The blobs an output consists of: its own, and for a directory its files' too (those its
    /// manifest still lists).
    pub fn blobs(&self, kind: OutputKind, digest: &str) -> Vec<String> {
        let mut out = vec![digest.to_owned()];
        if kind == OutputKind::Dir
            && let Ok(entries) = self.manifest(digest)
        {
            out.extend(entries.into_iter().map(|(_, d)| d));
        }
        out
    }

    /// Every blob in the store with its size in bytes; a half-written `.partial` is not a blob.
    pub fn list(&self) -> std::io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let shards = match std::fs::read_dir(&self.root) {
            Ok(shards) => shards,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for shard in shards {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for blob in std::fs::read_dir(shard.path())? {
                let blob = blob?;
                let name = blob.file_name().to_string_lossy().into_owned();
                if !name.contains('.') && blob.file_type()?.is_file() {
                    out.push((name, blob.metadata()?.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The size of a blob, 0 when it is gone.
    pub fn size(&self, digest: &str) -> u64 {
        std::fs::metadata(self.path(digest)).map_or(0, |m| m.len())
    }

    pub fn remove(&self, digest: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path(digest))
    }

    /// A stored directory's sorted (relative path, digest) entries.
    pub fn manifest(&self, digest: &str) -> std::io::Result<Vec<(String, String)>> {
        let bytes = std::fs::read(self.path(digest))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    fn place(&self, source: &Path, digest: &str) -> std::io::Result<()> {
        let target = self.path(digest);
        if target.exists() {
            return std::fs::remove_file(source);
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::rename(source, &target).is_err() {
            std::fs::copy(source, &target)?;
            std::fs::remove_file(source)?;
        }
        read_only(&target)
    }
}

fn write_blob(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = target.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, target)?;
    read_only(target)
}

fn read_only(path: &Path) -> std::io::Result<()> {
    let mut permissions = std::fs::metadata(path)?.permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(path, permissions)
}

fn is_parquet(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"PAR1")
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_verifies_and_materializes() {
        let home = tempfile::tempdir().unwrap();
        let cas = Cas::new(home.path());
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("d/sub")).unwrap();
        std::fs::write(work.path().join("d/sub/a"), "a").unwrap();
        std::fs::write(work.path().join("f"), "f").unwrap();
        let dir = cas.put_dir(&work.path().join("d")).unwrap();
        let file = cas.put_file(&work.path().join("f")).unwrap();
        assert!(!work.path().join("f").exists());
        assert!(cas.present(OutputKind::Dir, &dir, true));
        assert!(cas.present(OutputKind::File, &file, true));
        cas.materialize(OutputKind::Dir, &dir, &work.path().join("out"))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(work.path().join("out/sub/a")).unwrap(),
            "a"
        );
        let blob = cas.path(&file);
        let mut permissions = std::fs::metadata(&blob).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        std::fs::set_permissions(&blob, permissions).unwrap();
        std::fs::write(&blob, "corrupt").unwrap();
        assert!(cas.present(OutputKind::File, &file, false));
        assert!(!cas.present(OutputKind::File, &file, true));
        std::fs::remove_file(&blob).unwrap();
        assert!(!cas.present(OutputKind::File, &file, false));
    }
}
