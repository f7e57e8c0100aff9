use object_store::path::Path;
use twinloop_core::{Error, Result};

/// A relative path inside the artifact root. Parsing refuses anything that could leave the
/// root or be read two ways: `..` and `.` segments, absolute paths, backslashes, NUL and
/// control characters. Empty segments (`a//b`, a trailing `/`) are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    pub fn parse(raw: &str) -> Result<ArtifactPath> {
        let invalid = |why: &str| Error::invalid(format!("Invalid path {raw:?}: {why}"));
        if raw.starts_with('/') {
            return Err(invalid("absolute paths are not allowed"));
        }
        if raw.contains('\\') {
            return Err(invalid("backslashes are not allowed"));
        }
        if raw.chars().any(|c| c.is_control()) {
            return Err(invalid("control characters are not allowed"));
        }
        let mut segments = Vec::new();
        for segment in raw.split('/') {
            match segment {
                "" => continue,
                "." | ".." => return Err(invalid("'.' and '..' segments are not allowed")),
                s if s.len() > 255 => {
                    return Err(invalid("a path segment is longer than 255 bytes"));
                }
                s => segments.push(s),
            }
        }
        // Windows drive letters (`C:`) in the first segment would be absolute on such hosts.
        if segments
            .first()
            .is_some_and(|s| s.len() == 2 && s.ends_with(':'))
        {
            return Err(invalid("drive-letter paths are not allowed"));
        }
        Ok(ArtifactPath(segments.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The object_store path, or `None` for the root.
    pub(crate) fn object_path(&self) -> Option<Path> {
        if self.is_root() {
            None
        } else {
            Some(Path::from_iter(self.0.split('/')))
        }
    }

    pub(crate) fn require_file(&self) -> Result<Path> {
        self.object_path()
            .ok_or_else(|| Error::invalid("Invalid path: the artifact root is not a file"))
    }

    /// The last segment, used as the download file name.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        assert_eq!(
            ArtifactPath::parse("1/abc/artifacts/space name.txt")
                .unwrap()
                .as_str(),
            "1/abc/artifacts/space name.txt"
        );
        assert_eq!(ArtifactPath::parse("a//b/").unwrap().as_str(), "a/b");
        assert!(ArtifactPath::parse("").unwrap().is_root());
        assert_eq!(ArtifactPath::parse("a/b.txt").unwrap().file_name(), "b.txt");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "../etc/passwd",
            "a/../../x",
            "/etc/passwd",
            "a/./b",
            "..",
            "a\\..\\b",
            "C:/x",
            "a/\0b",
        ] {
            assert!(ArtifactPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
