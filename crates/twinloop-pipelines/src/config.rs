//! The repository's `twinloop.yaml` as pipelines read it: its `executors:` map, the named
//! executors a step's `executor:` may choose. The file is shared with the feature store, whose
//! keys (`project`, `online_store`, …) are left to it; each executor's settings are left to
//! whoever builds it (the binary, with `twinloop-executors`), this crate knows their names and
//! kinds only.
//!
//! ```yaml
//! executors:
//!   cluster:
//!     kind: ray
//!     address: http://head:8265
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value as Yaml;

use crate::error::{Error, Invalid, Problem};
use crate::locate::locate;

/// The repository configuration file.
pub const CONFIG_FILE: &str = "twinloop.yaml";

/// Which implementation runs a named executor's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// A Kubernetes Job per attempt.
    K8s,
    /// A Ray job per attempt, through the Jobs REST API.
    Ray,
}

impl ExecutorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::K8s => "k8s",
            ExecutorKind::Ray => "ray",
        }
    }
}

/// One entry of `executors:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    pub name: String,
    pub kind: ExecutorKind,
    /// The entry's other keys, for the implementation to read.
    pub settings: serde_norway::Mapping,
    /// Where the entry is, so that a bad setting is reported as `file:line`.
    pub file: String,
    pub line: usize,
}

impl ExecutorConfig {
    /// A problem with this entry's `field`, located at the entry.
    pub fn problem(&self, field: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            line: self.line,
            field: format!("executors.{}.{field}", self.name),
            message: message.into(),
        }
    }
}

/// The executors of a repository, by name; empty when it has no `twinloop.yaml` or the file
/// declares none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoConfig {
    pub executors: BTreeMap<String, ExecutorConfig>,
}

impl RepoConfig {
    /// Reads `repo/twinloop.yaml`; a missing file is an empty configuration.
    pub fn load(repo: &Path) -> Result<RepoConfig, Error> {
        let path = repo.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(RepoConfig::parse(&path, &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RepoConfig::default()),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// Parses the configuration text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<RepoConfig, Invalid> {
        let file = path.display().to_string();
        let problem = |line: usize, field: String, message: String| Problem {
            file: file.clone(),
            line,
            field,
            message,
        };
        let root: Yaml = serde_norway::from_str(text).map_err(|e| {
            let line = e.location().map_or(1, |l| l.line());
            Invalid(vec![problem(line, "twinloop.yaml".into(), e.to_string())])
        })?;
        let Some(section) = root.get("executors") else {
            return Ok(RepoConfig::default());
        };
        let section_line = locate(text, "executors", None, None);
        let Some(entries) = section.as_mapping() else {
            return Err(Invalid(vec![problem(
                section_line,
                "executors".into(),
                "a mapping of names to {kind: k8s|ray, …settings}".into(),
            )]));
        };
        let mut config = RepoConfig::default();
        let mut problems = Vec::new();
        for (key, entry) in entries {
            let Some(name) = key.as_str() else {
                problems.push(problem(
                    section_line,
                    "executors".into(),
                    format!("executor names are strings, not {key:?}"),
                ));
                continue;
            };
            let line = locate(text, "executors", Some(name), None);
            let field = format!("executors.{name}");
            match entry_of(name, entry) {
                Ok((kind, settings)) => {
                    config.executors.insert(
                        name.to_owned(),
                        ExecutorConfig {
                            name: name.to_owned(),
                            kind,
                            settings,
                            file: file.clone(),
                            line,
                        },
                    );
                }
                Err(message) => problems.push(problem(line, field, message)),
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Invalid(problems))
        }
    }

    /// The names a pipeline's `executor:` may use (besides `local`).
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.executors.keys().cloned().collect()
    }
}

fn entry_of(name: &str, entry: &Yaml) -> Result<(ExecutorKind, serde_norway::Mapping), String> {
    if name == crate::spec::LOCAL {
        return Err("`local` is the engine's own executor and cannot be redefined".into());
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(format!(
            "executor name {name:?}: letters, digits, - and _ only"
        ));
    }
    let mut settings = entry
        .as_mapping()
        .cloned()
        .ok_or("an executor is a mapping: {kind: k8s|ray, …settings}")?;
    let kind = match settings.remove("kind").as_ref().and_then(Yaml::as_str) {
        Some("k8s") => ExecutorKind::K8s,
        Some("ray") => ExecutorKind::Ray,
        Some(other) => return Err(format!("unknown kind {other:?}: k8s or ray")),
        None => return Err("`kind:` is required: k8s or ray".into()),
    };
    Ok((kind, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RepoConfig, Invalid> {
        RepoConfig::parse(Path::new("twinloop.yaml"), text)
    }

    #[test]
    fn executors_are_read_by_name_with_their_kind_and_line() {
        let config = parse(
            "project: p\nonline_store: {type: embedded}\nexecutors:\n  cluster:\n    kind: ray\n    address: http://head:8265\n  batch:\n    kind: k8s\n",
        )
        .unwrap();
        assert_eq!(
            config.names().into_iter().collect::<Vec<_>>(),
            ["batch", "cluster"]
        );
        let cluster = &config.executors["cluster"];
        assert_eq!((cluster.kind, cluster.line), (ExecutorKind::Ray, 4));
        assert_eq!(
            cluster.settings.get("address").and_then(Yaml::as_str),
            Some("http://head:8265")
        );
        assert!(
            cluster.settings.get("kind").is_none(),
            "kind is taken out of the settings"
        );
        assert_eq!(
            cluster.problem("address", "bad").to_string(),
            "twinloop.yaml:4: executors.cluster.address: bad"
        );
        assert_eq!(parse("project: p\n").unwrap(), RepoConfig::default());
    }

    #[test]
    fn bad_entries_are_located_problems() {
        let problems = parse(
            "executors:\n  a:\n    kind: slurm\n  local:\n    kind: ray\n  c: 3\n  d:\n    address: x\n",
        )
        .unwrap_err()
        .0;
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "twinloop.yaml:2: executors.a: unknown kind \"slurm\": k8s or ray",
                "twinloop.yaml:4: executors.local: `local` is the engine's own executor and cannot be redefined",
                "twinloop.yaml:6: executors.c: an executor is a mapping: {kind: k8s|ray, …settings}",
                "twinloop.yaml:7: executors.d: `kind:` is required: k8s or ray",
            ]
        );
        assert!(parse("executors: [a]\n").is_err());
        assert!(
            parse("executors: {a: {kind: ray}\n").is_err(),
            "a syntax error"
        );
    }

    #[test]
    fn a_repository_without_the_file_has_no_executors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RepoConfig::load(dir.path()).unwrap(), RepoConfig::default());
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "executors:\n  r: {kind: ray}\n",
        )
        .unwrap();
        assert_eq!(
            RepoConfig::load(dir.path()).unwrap().executors["r"].kind,
            ExecutorKind::Ray
        );
    }
}
