use object_store::path::Path;
use twinloop_core::{Error, Result};

/// A relative path inside the artifact root. Parsing refuses anything that could leave the
/// root or be read two ways: `..` and `.` segments, absolute paths, backslashes, NUL and
/// control characters. Empty segments (`a//b`, a trailing `/`) are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

/// Top-level directories of the artifact root that hold the server's own files (the
/// prediction log, `twinloop-predlog`'s root): never served to, listed for or written by
/// clients, who could otherwise read every request's inputs or forge the segments monitors read.
pub const INTERNAL: [&str; 1] = ["predictions"];

impl ArtifactPath {
    /// A path a client names: [`parse`](Self::parse), and refused when it lies under one of
    /// the server's [`INTERNAL`] directories.
    pub fn client(raw: &str) -> Result<ArtifactPath> {
        let path = ArtifactPath::parse(raw)?;
        path.refuse_internal()?;
        Ok(path)
    }

    /// Whether this path is, or lies under, one of the server's [`INTERNAL`] directories.
    pub fn is_internal(&self) -> bool {
        self.0
            .split('/')
            .next()
            .is_some_and(|first| INTERNAL.contains(&first))
    }

    fn refuse_internal(&self) -> Result<()> {
        if self.is_internal() {
            return Err(Error::invalid(format!(
                "Invalid path {:?}: reserved for the server's own files",
                self.0
            )));
        }
        Ok(())
    }

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

    /// `relative` inside this directory.
    pub fn join(&self, relative: &ArtifactPath) -> ArtifactPath {
        match (self.is_root(), relative.is_root()) {
            (true, _) => relative.clone(),
            (_, true) => self.clone(),
            _ => ArtifactPath(format!("{}/{}", self.0, relative.0)),
        }
    }

    /// `relative` inside an artifact location this server proxies, resolved as MLflow's server
    /// resolves a run's, logged model's or model version's location: `mlflow-artifacts:/root`,
    /// `mlflow-artifacts://host/root`, or a URL of the proxy itself
    /// (`http(s)://host/api/2.0/mlflow-artifacts/artifacts/root`). The root goes through the
    /// same parsing as any request path, so a stored location cannot escape either.
    pub fn in_location(location: &str, relative: &ArtifactPath) -> Result<ArtifactPath> {
        const PROXY_ROUTE: &str = "/api/2.0/mlflow-artifacts/artifacts/";
        let root = if let Some(rest) = location.strip_prefix("mlflow-artifacts:") {
            match rest.strip_prefix("//") {
                Some(authority_and_path) => authority_and_path
                    .split_once('/')
                    .map_or("", |(_, path)| path),
                None => rest,
            }
        } else if location.starts_with("http://") || location.starts_with("https://") {
            location
                .split_once(PROXY_ROUTE)
                .map(|(_, path)| path)
                .ok_or_else(|| not_served(location))?
        } else {
            return Err(not_served(location));
        };
        let root = ArtifactPath::parse(root.trim_start_matches('/')).map_err(|e| {
            Error::invalid(format!("Invalid artifact location {location:?}")).with_source(e)
        })?;
        let path = root.join(relative);
        path.refuse_internal()?;
        Ok(path)
    }
}

fn not_served(location: &str) -> Error {
    Error::invalid(format!(
        "Artifact location {location:?} is not served by this server: it serves mlflow-artifacts: \
         locations only"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_directories_are_not_for_clients() {
        for raw in [
            "predictions",
            "predictions/fraud/x.parquet",
            "predictions//x",
        ] {
            assert!(ArtifactPath::client(raw).is_err(), "{raw}");
            let relative = ArtifactPath::parse(raw).unwrap();
            assert!(
                ArtifactPath::in_location("mlflow-artifacts:/", &relative).is_err(),
                "{raw}"
            );
        }
        let inside = ArtifactPath::parse("fraud/x").unwrap();
        assert!(ArtifactPath::in_location("mlflow-artifacts:/predictions", &inside).is_err());
        for raw in ["1/predictions", "predictions.txt", "prediction/x", ""] {
            assert!(ArtifactPath::client(raw).is_ok(), "{raw}");
        }
    }

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
    fn resolves_proxied_locations() {
        let rel = ArtifactPath::parse("dir/a.txt").unwrap();
        for (location, expected) in [
            (
                "mlflow-artifacts:/1/abc/artifacts",
                "1/abc/artifacts/dir/a.txt",
            ),
            (
                "mlflow-artifacts:/1/abc/artifacts/",
                "1/abc/artifacts/dir/a.txt",
            ),
            (
                "mlflow-artifacts://host:5000/1/abc/artifacts",
                "1/abc/artifacts/dir/a.txt",
            ),
            ("mlflow-artifacts://host:5000", "dir/a.txt"),
            ("mlflow-artifacts:", "dir/a.txt"),
            (
                "http://h:1/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts",
                "0/r/artifacts/dir/a.txt",
            ),
        ] {
            assert_eq!(
                ArtifactPath::in_location(location, &rel).unwrap().as_str(),
                expected,
                "{location}"
            );
        }
        let root = ArtifactPath::parse("").unwrap();
        assert_eq!(
            ArtifactPath::in_location("mlflow-artifacts:/1/m", &root)
                .unwrap()
                .as_str(),
            "1/m"
        );
    }

    #[test]
    fn refuses_locations_it_does_not_serve_or_that_escape() {
        let rel = ArtifactPath::parse("a.txt").unwrap();
        for bad in [
            "s3://bucket/x",
            "/var/data/x",
            "file:///x",
            "runs:/abc/model",
            "http://h/elsewhere/x",
            "mlflow-artifacts:/1/../../etc",
            "mlflow-artifacts://h/../x",
        ] {
            let err = ArtifactPath::in_location(bad, &rel).unwrap_err();
            assert_eq!(err.kind, twinloop_core::ErrorKind::InvalidArgument, "{bad}");
        }
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
