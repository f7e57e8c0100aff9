//! Content digests: SHA-256 of a file's bytes; for a directory, SHA-256 of its sorted
//! (relative path, file digest) pairs, so that neither mtimes nor names of the walk order count.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

pub fn bytes_digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The files under `dir` as sorted (relative path with `/`, digest) pairs.
pub fn dir_entries(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    collect(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

pub fn entries_digest(entries: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (path, digest) in entries {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(digest.as_bytes());
        hasher.update([b'\n']);
    }
    hex(&hasher.finalize())
}

/// The digest of a file or a directory.
pub fn path_digest(path: &Path) -> std::io::Result<String> {
    if path.is_dir() {
        Ok(entries_digest(&dir_entries(path)?))
    } else {
        file_digest(path)
    }
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            collect(&path, &relative, out)?;
        } else {
            out.push((relative, file_digest(&path)?));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_digest_depends_on_names_and_bytes_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub/x"), "1").unwrap();
            std::fs::write(dir.join("y"), "2").unwrap();
        }
        assert_eq!(
            path_digest(a.path()).unwrap(),
            path_digest(b.path()).unwrap()
        );
        std::fs::write(b.path().join("y"), "3").unwrap();
        assert_ne!(
            path_digest(a.path()).unwrap(),
            path_digest(b.path()).unwrap()
        );
        assert_eq!(
            bytes_digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
