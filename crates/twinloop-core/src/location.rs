//! The one policy for every location a client hands the server (an experiment's
//! `artifact_location`, a model version's `source`, a deployment's source, a monitor's
//! reference): which schemes and which roots the server allows, decided in one place.
//!
//! MLflow's advisories are mostly one bug class: a user-supplied URI that the server later turns
//! into a file read. Each bypass was a new spelling of the same escape (`..`, `%2e%2e`,
//! `%252e%252e`, `file://./etc`, `//proc/self/root`, `?/../`, `#/../`, a symlink), so a check
//! that compares strings loses. Here every local location is resolved as the kernel would open it
//! (links followed) and judged by its place, component by component, under a root; anything that
//! spells a relative step at any level of percent-decoding is refused before that.
//!
//! Refusals name only what the client sent, never a root or a resolved path.

use std::path::{Component, Path, PathBuf};

use crate::Error;

/// Schemes whose locations the server resolves through its own stores (a run's or a model's
/// artifacts, its artifact proxy), never through the file system or the network directly.
const REFERENCE_SCHEMES: [&str; 3] = ["runs", "models", "mlflow-artifacts"];

/// Schemes whose artifact repositories connect to the host the URI names (MLflow's
/// `HOST_ADDRESSED_ARTIFACT_SCHEMES`): a server that recorded one could later be made to reach it.
const HOST_ADDRESSED: [&str; 9] = [
    "ftp", "sftp", "hdfs", "viewfs", "http", "https", "r2", "b2", "abfss",
];

/// Where the server may read and write on behalf of clients.
#[derive(Debug, Clone)]
pub struct LocationPolicy {
    /// Canonical directories (links resolved when the policy was made).
    local_roots: Vec<PathBuf>,
    /// Those of `local_roots` where runs' and logged models' artifacts live.
    artifact_roots: Vec<PathBuf>,
    /// Those of `local_roots` the server never reads or writes over HTTP (its data directory,
    /// which holds the database).
    private_roots: Vec<PathBuf>,
    /// Remote prefixes such as `s3://bucket/prefix`, allowed beneath themselves.
    remote_roots: Vec<Remote>,
    /// Remote schemes allowed anywhere (`--allowed-scheme s3`).
    schemes: Vec<String>,
    /// What a relative local location is relative to (the server's working directory, as
    /// MLflow resolves a relative `artifact_location`).
    base: PathBuf,
}

/// A location the policy accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on this machine, links resolved, inside a root; it may not exist yet.
    Local(PathBuf),
    /// `runs:/`, `models:/` or `mlflow-artifacts:`, read through the server's stores.
    Reference,
    /// A remote URI inside a remote root or of an allowed scheme.
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote {
    scheme: String,
    authority: String,
    parts: Vec<String>,
}

impl LocationPolicy {
    /// A policy allowing `roots` (directories, `file://` URIs or remote prefixes such as
    /// `s3://bucket/prefix`) and the remote `schemes` anywhere. A relative root or location is
    /// taken relative to `base`.
    pub fn new(
        roots: impl IntoIterator<Item = impl AsRef<str>>,
        schemes: impl IntoIterator<Item = impl AsRef<str>>,
        base: &Path,
    ) -> Result<LocationPolicy, Error> {
        let mut policy = LocationPolicy {
            local_roots: Vec::new(),
            artifact_roots: Vec::new(),
            private_roots: Vec::new(),
            remote_roots: Vec::new(),
            schemes: schemes
                .into_iter()
                .map(|s| s.as_ref().trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            base: base.to_path_buf(),
        };
        for root in roots {
            let root = root.as_ref();
            let bad = |why: &str| Error::invalid(format!("invalid allowed root {root:?}: {why}"));
            match classify(root).map_err(|e| bad(&e))? {
                Parsed::Local(path) => {
                    let path = resolve(&policy.base.join(path)).map_err(|e| bad(&e))?;
                    policy.local_roots.push(path);
                }
                Parsed::Reference => return Err(bad("not a directory or a remote prefix")),
                Parsed::Remote(remote) => policy.remote_roots.push(remote),
            }
        }
        Ok(policy)
    }

    /// Adds a local directory where runs' artifacts live (the artifacts destination, a local
    /// default artifact root): clients may name it, the server reads and writes below it
    /// ([`local_root`](Self::local_root)), and a model-version source inside it must belong to
    /// the run or logged model named with it (MLflow's rule).
    pub fn with_artifact_root(mut self, root: &str) -> Result<LocationPolicy, Error> {
        let path = self.local_root_path(root)?;
        self.local_roots.push(path.clone());
        self.artifact_roots.push(path);
        Ok(self)
    }

    /// Adds a local directory clients may name (a model directory under the server's data
    /// directory) but whose files the server never serves or writes for them: the database
    /// lives there.
    pub fn with_private_root(mut self, root: &str) -> Result<LocationPolicy, Error> {
        let path = self.local_root_path(root)?;
        self.local_roots.push(path.clone());
        self.private_roots.push(path);
        Ok(self)
    }

    fn local_root_path(&self, root: &str) -> Result<PathBuf, Error> {
        let bad = |why: &str| Error::invalid(format!("invalid allowed root {root:?}: {why}"));
        match classify(root).map_err(|e| bad(&e))? {
            Parsed::Local(path) => resolve(&self.base.join(path)).map_err(|e| bad(&e)),
            _ => Err(bad("not a local directory")),
        }
    }

    /// Whether a resolved local path lies inside a root where runs' artifacts live.
    pub fn in_artifact_root(&self, path: &Path) -> bool {
        self.artifact_roots
            .iter()
            .any(|root| path.starts_with(root))
    }

    /// Judges `location` as a client sent it.
    pub fn check(&self, location: &str) -> Result<Location, Error> {
        let refuse = |why: &str| Error::invalid(format!("Invalid location '{location}': {why}"));
        match classify(location).map_err(|e| refuse(&e))? {
            Parsed::Reference => Ok(Location::Reference),
            Parsed::Remote(remote) => {
                if self.schemes.contains(&remote.scheme)
                    || self.remote_roots.iter().any(|root| root.contains(&remote))
                {
                    Ok(Location::Remote)
                } else {
                    Err(refuse(&format!(
                        "the server does not allow {}:// locations there",
                        remote.scheme
                    )))
                }
            }
            Parsed::Local(path) => self
                .local(&self.base.join(path))
                .map(Location::Local)
                .ok_or_else(|| refuse("outside the directories this server allows")),
        }
    }

    /// Judges a location the server only records for its clients (an experiment's
    /// `artifact_location`, where MLflow's client writes and reads itself): what [`check`] allows,
    /// plus a remote URI whose scheme makes no one connect to a host the URI names (`s3`, `gs`,
    /// not `http` or `ftp`), and a relative local path (made absolute against the server's
    /// working directory, as MLflow does). Every spelling [`check`] refuses is still refused;
    /// whatever reads such a location later asks [`check`] or [`local_root`] again.
    ///
    /// [`check`]: Self::check
    /// [`local_root`]: Self::local_root
    pub fn check_recorded(&self, location: &str) -> Result<(), Error> {
        let Err(err) = self.check(location) else {
            return Ok(());
        };
        match classify(location) {
            Ok(Parsed::Remote(remote)) if !HOST_ADDRESSED.contains(&remote.scheme.as_str()) => {
                Ok(())
            }
            Ok(Parsed::Local(path)) if path.is_relative() => Ok(()),
            _ => Err(err),
        }
    }

    /// The allowed root a local location lies in, and the location relative to it, compared as
    /// written (no link followed: whoever reads below the root must refuse links itself), for the
    /// server to read or write there. `None` for anything else: a reference, a remote URI, a
    /// refused spelling, a path outside, or one inside a private root.
    pub fn local_root(&self, location: &str) -> Option<(PathBuf, PathBuf)> {
        let Ok(Parsed::Local(path)) = classify(location) else {
            return None;
        };
        let path = self.base.join(path);
        if self.private_roots.iter().any(|root| path.starts_with(root))
            && !self.in_artifact_root(&path)
        {
            return None;
        }
        // The innermost root: an artifact root may lie inside a private one.
        self.local_roots
            .iter()
            .filter(|root| !self.private_roots.contains(root))
            .filter_map(|root| {
                let relative = path.strip_prefix(root).ok()?;
                Some((root.clone(), relative.to_path_buf()))
            })
            .max_by_key(|(root, _)| root.components().count())
    }

    /// `path` made absolute (against the working directory) and resolved as Python's `pathlib.Path.resolve()` does (MLflow's
    /// model-version source check): links followed while the path exists, `.` and `..` then taken
    /// in order, so `a/model/..` is `a` whether or not `model` exists.
    pub fn real_path(&self, path: &Path) -> PathBuf {
        let mut out = PathBuf::from("/");
        for component in self.base.join(path).components() {
            match component {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(name) => {
                    out.push(name);
                    if let Ok(canonical) = out.canonicalize() {
                        out = canonical;
                    }
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        out
    }

    /// Resolves a local path (links followed) and answers it only when it lies inside a root.
    pub fn local(&self, path: &Path) -> Option<PathBuf> {
        let resolved = resolve(path).ok()?;
        self.local_roots
            .iter()
            .any(|root| resolved.starts_with(root))
            .then_some(resolved)
    }
}

impl Remote {
    fn contains(&self, other: &Remote) -> bool {
        self.scheme == other.scheme
            && self.authority == other.authority
            && other.parts.starts_with(&self.parts)
    }
}

enum Parsed {
    Local(PathBuf),
    Reference,
    Remote(Remote),
}

/// Splits a location into what it names, refusing every spelling of a relative step.
fn classify(location: &str) -> Result<Parsed, String> {
    if location.trim().is_empty() {
        return Err("empty".into());
    }
    let decoded = fully_decoded(location);
    if decoded.chars().any(char::is_control) {
        return Err("control characters are not allowed".into());
    }
    if decoded.contains('\\') {
        return Err("backslashes are not allowed".into());
    }
    if decoded.contains('#') {
        return Err("fragments are not allowed".into());
    }
    let segments = || decoded.split(['/', '?', '&', '=', ';']);
    if segments().any(|p| p == "..") {
        return Err("relative path references ('..') are not allowed".into());
    }
    let Some((scheme, rest)) = split_scheme(location) else {
        if has_drive_letter(location) {
            return Err("drive letters are not allowed".into());
        }
        if location.contains('?') {
            return Err("a local path cannot carry a query".into());
        }
        return Ok(Parsed::Local(PathBuf::from(location)));
    };
    // A local path is judged where it resolves; in a URI a `.` step is how `file://./etc`
    // and its relatives were spelled.
    if segments().any(|p| p == ".") {
        return Err("relative path references ('.') are not allowed".into());
    }
    if REFERENCE_SCHEMES.contains(&scheme.as_str()) {
        return Ok(Parsed::Reference);
    }
    if scheme == "file" {
        if rest.contains('?') {
            return Err("a file URI cannot carry a query".into());
        }
        let path = match rest.strip_prefix("//") {
            Some(after) => {
                let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                if !(authority.is_empty() || authority.eq_ignore_ascii_case("localhost")) {
                    return Err("a file URI may not name a host".into());
                }
                path
            }
            None => rest,
        };
        if !path.starts_with('/') {
            return Err("a file URI must hold an absolute path".into());
        }
        return Ok(Parsed::Local(PathBuf::from(percent_decode(path))));
    }
    let after = rest.strip_prefix("//").unwrap_or(rest);
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, path) = after.split_at(end);
    let path = path.split('?').next().unwrap_or_default();
    Ok(Parsed::Remote(Remote {
        scheme,
        authority: authority.to_ascii_lowercase(),
        parts: fully_decoded(path)
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    }))
}

/// `scheme:` as RFC 3986 spells it, lower-cased; one letter is a drive, not a scheme.
fn split_scheme(location: &str) -> Option<(String, &str)> {
    let (scheme, rest) = location.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = scheme.len() > 1
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme.to_ascii_lowercase(), rest))
}

fn has_drive_letter(location: &str) -> bool {
    let bytes = location.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Percent-decodes until nothing changes, so `%252e%252e` is judged as `..`.
fn fully_decoded(text: &str) -> String {
    let mut current = text.replace('+', " ");
    // Each round shortens the text, so this ends; the bound only caps the work.
    for _ in 0..16 {
        let next = percent_decode(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// `%XX` escapes decoded once, invalid UTF-8 replaced (Python's `urllib.parse.unquote`).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path as the kernel would reach it: the longest existing ancestor canonicalized (every
/// link followed), the rest appended. Only plain names may follow it.
fn resolve(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err("not an absolute path".into());
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(canonical) => {
                let mut out = canonical;
                for name in rest.iter().rev() {
                    out.push(name);
                }
                return Ok(out);
            }
            Err(_) => {
                let name = match existing.components().next_back() {
                    Some(Component::Normal(name)) => name.to_os_string(),
                    _ => return Err("cannot be resolved".into()),
                };
                rest.push(name);
                if !existing.pop() {
                    return Err("cannot be resolved".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Jail {
        dir: tempfile::TempDir,
    }

    impl Jail {
        /// `root/` (allowed) beside `secret/` (not), with links from inside to outside.
        fn new() -> Jail {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("root/models/m")).unwrap();
            std::fs::create_dir_all(dir.path().join("secret")).unwrap();
            std::fs::write(dir.path().join("secret/key"), "SECRET").unwrap();
            std::fs::create_dir_all(dir.path().join("root-evil")).unwrap();
            std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("root/out"))
                .unwrap();
            std::os::unix::fs::symlink(dir.path().join("root/models"), dir.path().join("root/in"))
                .unwrap();
            Jail { dir }
        }

        fn root(&self) -> PathBuf {
            self.dir.path().join("root")
        }

        fn policy(&self, schemes: &[&str]) -> LocationPolicy {
            LocationPolicy::new(
                [
                    self.root().display().to_string(),
                    "s3://bucket/prefix".into(),
                ],
                schemes,
                &self.root(),
            )
            .unwrap()
        }
    }

    #[test]
    fn locations_inside_a_root_are_allowed() {
        let jail = Jail::new();
        let policy = jail.policy(&[]);
        let root = jail.root().canonicalize().unwrap();
        for (location, path) in [
            (
                format!("{}/models/m", jail.root().display()),
                root.join("models/m"),
            ),
            (
                format!("file://{}/models", jail.root().display()),
                root.join("models"),
            ),
            (
                format!("file://localhost{}/new/dir", jail.root().display()),
                root.join("new/dir"),
            ),
            ("models/m".to_string(), root.join("models/m")),
            ("not-yet/there".to_string(), root.join("not-yet/there")),
            ("./models".to_string(), root.join("models")),
            // A link that stays inside is followed to its place.
            ("in/m".to_string(), root.join("models/m")),
        ] {
            assert_eq!(
                policy.check(&location).unwrap(),
                Location::Local(path),
                "{location}"
            );
        }
        for reference in [
            "runs:/abc/model",
            "models:/fraud/1",
            "models:/m-123",
            "mlflow-artifacts:/1/x",
        ] {
            assert_eq!(
                policy.check(reference).unwrap(),
                Location::Reference,
                "{reference}"
            );
        }
        for remote in [
            "s3://bucket/prefix",
            "s3://bucket/prefix/1/models",
            "S3://BUCKET/prefix/x",
        ] {
            assert_eq!(policy.check(remote).unwrap(), Location::Remote, "{remote}");
        }
    }

    #[test]
    fn every_escape_spelling_is_refused() {
        let jail = Jail::new();
        let policy = jail.policy(&[]);
        let root = jail.root().display().to_string();
        let dir = jail.dir.path().display().to_string();
        for location in [
            "/etc".to_string(),
            "/etc/passwd".into(),
            "//etc".into(),
            "//proc/self/root/etc".into(),
            "/proc/self/root/etc/passwd".into(),
            "file:///etc/".into(),
            "file:/etc".into(),
            "file://./etc".into(),
            "file://host/etc".into(),
            "file://evil.example/../etc".into(),
            "file:etc".into(),
            "../..".into(),
            "../../etc".into(),
            "file:///./etc".into(),
            "s3://bucket/prefix/./x".into(),
            format!("{root}/../secret"),
            format!("{root}/%2e%2e/secret"),
            format!("{root}/%252e%252e/secret"),
            format!("{root}/..%2fsecret"),
            format!("file://{root}/%2E%2E/secret/key"),
            format!("{root}\\..\\secret"),
            format!("{root}/models?/../../secret"),
            format!("{root}/models#/../../secret"),
            format!("{dir}/secret/key"),
            // A name that only starts like the root.
            format!("{root}-evil"),
            // Links inside the root that lead out of it.
            format!("{root}/out"),
            format!("{root}/out/key"),
            "out/key".into(),
            format!("{root}/x\0"),
            "C:/Windows".into(),
            "http:///#/../../../../etc/".into(),
            "http:///?/../../../../etc/".into(),
            "mlflow-artifacts://host:5000/../../../../".into(),
            "mlflow-artifacts://host/..%2f..%2f..%2f".into(),
            "runs:/abc/../../../etc".into(),
            "models:/m/1/../../../etc".into(),
            "s3://bucket/prefix/../other".into(),
            "s3://bucket/other".into(),
            "s3://bucket/prefixed".into(),
            "s3://other/prefix".into(),
            "gs://bucket/prefix".into(),
            "http://attacker.example/api/2.0/mlflow-artifacts/artifacts/".into(),
            "https://169.254.169.254/latest".into(),
            "dbfs:/".into(),
            "hdfs://namenode/x".into(),
            "".into(),
            "  ".into(),
        ] {
            let err = policy.check(&location).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidArgument, "{location}");
            // The refusal repeats what was sent and no path of the server's.
            let shown = err.message.replace(&location, "");
            assert!(
                !shown.contains(&dir) && !shown.contains("/tmp"),
                "{location}: {}",
                err.message
            );
        }
    }

    #[test]
    fn configured_schemes_are_allowed_anywhere() {
        let jail = Jail::new();
        let policy = jail.policy(&["gs", "S3"]);
        assert_eq!(policy.check("gs://any/where").unwrap(), Location::Remote);
        assert_eq!(policy.check("s3://other/x").unwrap(), Location::Remote);
        assert!(policy.check("s3://other/../x").is_err());
        assert!(policy.check("wasbs://c@a.blob.core.windows.net/x").is_err());
    }

    #[test]
    fn recorded_locations_add_remote_object_stores_and_relative_paths_only() {
        let jail = Jail::new();
        let policy = jail.policy(&[]);
        for recorded in [
            "s3://someone-elses-bucket/x",
            "gs://bucket/root",
            "mysql://user:password@host:port/dbname?driver=mydriver",
            "dbfs:/",
            "my_location",
            "models/m",
        ] {
            assert!(policy.check_recorded(recorded).is_ok(), "{recorded}");
        }
        let root = jail.root().display().to_string();
        for refused in [
            "http://169.254.169.254/latest",
            "https://attacker.example/x",
            "ftp://host/x",
            "hdfs://namenode/x",
            "/etc",
            "file:///etc",
            "../outside",
            "s3://bucket/../x",
            "s3://bucket/x#frag",
        ]
        .into_iter()
        .map(String::from)
        .chain([format!("{root}/out/key")])
        {
            assert!(policy.check_recorded(&refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn local_root_splits_a_location_under_a_root_without_following_links() {
        let jail = Jail::new();
        let policy = jail.policy(&[]);
        let root = jail.root().canonicalize().unwrap();
        assert_eq!(
            policy.local_root(&format!("file://{}/1/abc/artifacts", root.display())),
            Some((root.clone(), PathBuf::from("1/abc/artifacts")))
        );
        // A link is left for the reader to refuse, not followed here.
        assert_eq!(
            policy.local_root(&format!("{}/out/key", root.display())),
            Some((root.clone(), PathBuf::from("out/key")))
        );
        for outside in [
            format!("{}/secret/key", jail.dir.path().display()),
            format!("{}/../secret", root.display()),
            "mlflow-artifacts:/1".into(),
            "s3://bucket/prefix/x".into(),
        ] {
            assert_eq!(policy.local_root(&outside), None, "{outside}");
        }
    }

    #[test]
    fn private_roots_are_named_but_not_served_and_artifact_roots_are_known() {
        let jail = Jail::new();
        let root = jail.root().canonicalize().unwrap();
        let policy = LocationPolicy::new([""; 0], [""; 0], &root)
            .unwrap()
            .with_private_root(&root.display().to_string())
            .unwrap()
            .with_artifact_root(&root.join("models").display().to_string())
            .unwrap();
        let db = root.join("twinloop.db").display().to_string();
        assert!(policy.check(&db).is_ok());
        assert_eq!(policy.local_root(&db), None);
        let run = root.join("models/1/r/artifacts");
        assert!(policy.in_artifact_root(&run));
        assert!(!policy.in_artifact_root(&root.join("other")));
        assert_eq!(
            policy.local_root(&run.display().to_string()),
            Some((root.join("models"), PathBuf::from("1/r/artifacts")))
        );
        assert!(policy.with_artifact_root("s3://bucket/x").is_err());
    }

    #[test]
    fn real_path_resolves_as_pathlib_does() {
        let jail = Jail::new();
        let root = jail.root().canonicalize().unwrap();
        let policy = jail.policy(&[]);
        for (path, expected) in [
            (
                format!("{}/models/m/..", root.display()),
                root.join("models"),
            ),
            (format!("{}/new/./dir/..", root.display()), root.join("new")),
            (format!("{}/in/m", root.display()), root.join("models/m")),
            (
                format!("{}/out/key", root.display()),
                jail.dir.path().canonicalize().unwrap().join("secret/key"),
            ),
        ] {
            assert_eq!(policy.real_path(Path::new(&path)), expected, "{path}");
        }
        assert_eq!(policy.real_path(Path::new("models")), root.join("models"));
    }

    #[test]
    fn roots_are_checked_when_the_policy_is_made() {
        let base = Path::new("/");
        for bad in ["runs:/x", "/a/../b", "file://host/x", ""] {
            assert!(LocationPolicy::new([bad], [""; 0], base).is_err(), "{bad}");
        }
        let policy = LocationPolicy::new(["/"], [""; 0], base).unwrap();
        assert!(policy.check("/etc").is_ok());
    }
}
