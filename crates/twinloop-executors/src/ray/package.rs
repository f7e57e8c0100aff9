//! The `working_dir` Ray jobs get: a zip of the step's code files, named by the digest of its
//! bytes so that the same code is uploaded once. The zip is deterministic (sorted entries, a
//! fixed timestamp) so unchanged code gives the same name on every run.

use std::io::{Cursor, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::ExecutorError;

/// A package ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `_ray_pkg_<digest>.zip`, the naming Ray's own client uses for `gcs://` packages.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Package {
    /// The `working_dir` URI of the job.
    pub fn uri(&self) -> String {
        format!("gcs://{}", self.name)
    }
}

/// Zips `files` (relative to `repo`) into a package; `None` when there is no file to ship.
pub fn package(
    repo: &Path,
    files: &[String],
    limit: u64,
) -> Result<Option<Package>, ExecutorError> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut files = files.to_vec();
    files.sort();
    files.dedup();
    let zip_error = |e: zip::result::ZipError| ExecutorError::Io {
        context: "zip the step's code".into(),
        source: std::io::Error::other(e),
    };
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let mut total = 0u64;
    for relative in &files {
        if Path::new(relative).is_absolute() || relative.split('/').any(|part| part == "..") {
            return Err(ExecutorError::Invalid(format!(
                "code file {relative:?} is outside the repository"
            )));
        }
        let path = repo.join(relative);
        let bytes = std::fs::read(&path).map_err(|source| ExecutorError::Io {
            context: format!("read code file {}", path.display()),
            source,
        })?;
        total += bytes.len() as u64;
        if total > limit {
            return Err(ExecutorError::Invalid(format!(
                "the step's code files are over the package limit of {limit} bytes: \
                 narrow `code:` or raise the Ray executor's limit"
            )));
        }
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(DateTime::default())
            .unix_permissions(mode(&path));
        writer
            .start_file(relative.as_str(), options)
            .map_err(zip_error)?;
        writer
            .write_all(&bytes)
            .map_err(|source| ExecutorError::Io {
                context: "zip the step's code".into(),
                source,
            })?;
    }
    let bytes = writer.finish().map_err(zip_error)?.into_inner();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Some(Package {
        name: format!("_ray_pkg_{digest}.zip"),
        bytes,
    }))
}

/// Executable scripts stay executable; everything else is plain 0644.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let executable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    if executable { 0o755 } else { 0o644 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn same_code_same_package_other_code_other_package() {
        let a = repo(&[("src/train.py", "print(1)"), ("lib.py", "x = 1")]);
        let files = vec!["src/train.py".to_owned(), "lib.py".to_owned()];
        let first = package(a.path(), &files, 1 << 20).unwrap().unwrap();
        let reversed: Vec<String> = files.iter().rev().cloned().collect();
        let again = package(a.path(), &reversed, 1 << 20).unwrap().unwrap();
        assert_eq!(
            first, again,
            "order of files or time of day changed the package"
        );
        assert!(first.uri().starts_with("gcs://_ray_pkg_"));
        assert!(first.name.ends_with(".zip"));
        std::fs::write(a.path().join("lib.py"), "x = 2").unwrap();
        let changed = package(a.path(), &files, 1 << 20).unwrap().unwrap();
        assert_ne!(first.name, changed.name);
    }

    #[test]
    fn no_files_no_package_and_limits_hold() {
        let a = repo(&[("big.py", "0123456789")]);
        assert_eq!(package(a.path(), &[], 10).unwrap(), None);
        let e = package(a.path(), &["big.py".into()], 5).unwrap_err();
        assert!(e.to_string().contains("package limit"), "{e}");
        let e = package(a.path(), &["../etc/passwd".into()], 1 << 20).unwrap_err();
        assert!(e.to_string().contains("outside the repository"), "{e}");
        let e = package(a.path(), &["missing.py".into()], 1 << 20).unwrap_err();
        assert!(e.to_string().contains("missing.py"), "{e}");
    }
}
