//! Reading a repository directory and checking its definitions against each other.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use twinloop_core::{Error, Result};

use super::OfflineStoreConfig;
use super::definitions::TtlText;
use super::names::{check_name, check_project_name};
use super::online_config::OnlineStoreText;
use super::{
    Entity, FeatureRef, FeatureService, FeatureView, OnlineStoreConfig, Origin, RepoConfig, Source,
    locate, parse_ttl,
};

pub const CONFIG_FILE: &str = "twinloop.yaml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContent {
    project: Option<String>,
    online_store: Option<OnlineStoreText>,
    registry: Option<String>,
    /// The pipelines' named executors, which share `twinloop.yaml`; read by
    /// `twinloop_pipelines::config`, not by the feature store.
    #[serde(default, rename = "executors")]
    _executors: Option<serde_norway::Value>,
    offline_store: Option<OfflineStoreConfig>,
    #[serde(default)]
    entities: Vec<Entity>,
    #[serde(default)]
    sources: Vec<Source>,
    #[serde(default)]
    feature_views: Vec<FeatureView>,
    #[serde(default)]
    feature_services: Vec<FeatureService>,
}

/// A loaded, cross-checked feature repository.
#[derive(Debug, Clone)]
pub struct FeatureRepo {
    pub root: PathBuf,
    pub config: RepoConfig,
    pub entities: Vec<Entity>,
    pub sources: Vec<Source>,
    pub views: Vec<FeatureView>,
    pub services: Vec<FeatureService>,
}

impl FeatureRepo {
    /// Loads `dir/twinloop.yaml` and every other `*.yaml` in `dir` (not recursive).
    pub fn load(dir: &Path) -> Result<FeatureRepo> {
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(Error::invalid(format!(
                "{} not found: a feature repository needs {CONFIG_FILE} (pass --repo DIR)",
                config_path.display()
            )));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::invalid(format!("cannot read {}", dir.display())).with_source(e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        let mut texts = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::invalid(format!("cannot read {}", path.display())).with_source(e)
            })?;
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            texts.push((name, text));
        }
        Self::from_texts(dir, &texts)
    }

    /// Builds a repository from `(file name, YAML text)` pairs; `twinloop.yaml` must be one.
    pub fn from_texts(dir: &Path, texts: &[(String, String)]) -> Result<FeatureRepo> {
        let mut config = None;
        let mut repo = FeatureRepo {
            root: dir.to_path_buf(),
            config: RepoConfig {
                project: String::new(),
                online_store: OnlineStoreConfig::default(),
                registry: String::new(),
                offline_store: OfflineStoreConfig::default(),
            },
            entities: Vec::new(),
            sources: Vec::new(),
            views: Vec::new(),
            services: Vec::new(),
        };
        let mut seen = Occurrences::default();
        let mut offline_store = OfflineStoreConfig::default();
        for (file, text) in texts {
            let content: FileContent = if text.trim().is_empty() {
                FileContent::default()
            } else {
                serde_norway::from_str(text)
                    .map_err(|e| Error::invalid(file.as_str()).with_source(e))?
            };
            if let Some(written) = content.offline_store.clone() {
                if file != CONFIG_FILE {
                    return Err(Error::invalid(format!(
                        "{file}:1: offline_store belongs in {CONFIG_FILE}"
                    )));
                }
                offline_store = written;
            }
            let is_config = file == CONFIG_FILE;
            if is_config {
                let project = content
                    .project
                    .clone()
                    .ok_or_else(|| Error::invalid(format!("{file}:1: `project` is required")))?;
                check_project_name(&project)
                    .map_err(|m| Error::invalid(format!("{file}:1: project")).with_source(m))?;
                let online_store = match content.online_store.clone() {
                    None => OnlineStoreConfig::default(),
                    Some(written) => written.resolve().map_err(|m| {
                        let line = text
                            .lines()
                            .position(|l| l.starts_with("online_store"))
                            .map_or(1, |i| i + 1);
                        Error::invalid(format!("{file}:{line}: online_store: {m}"))
                    })?,
                };
                config = Some((project, online_store, content.registry.clone()));
            } else if content.project.is_some()
                || content.online_store.is_some()
                || content.registry.is_some()
            {
                return Err(Error::invalid(format!(
                    "{file}:1: project, online_store and registry belong in {CONFIG_FILE}"
                )));
            }
            let origin = |section: &str, name: &str, nth: usize| Origin {
                file: file.clone(),
                line: locate(text, section, name, nth, None),
            };
            for mut e in content.entities {
                e.origin = origin("entities", &e.name, seen.next(file, "entities", &e.name));
                repo.entities.push(e);
            }
            for mut s in content.sources {
                s.origin = origin("sources", &s.name, seen.next(file, "sources", &s.name));
                repo.sources.push(s);
            }
            for mut v in content.feature_views {
                let nth = seen.next(file, "feature_views", &v.name);
                v.origin = origin("feature_views", &v.name, nth);
                v.ttl_micros = match &v.ttl {
                    None | Some(TtlText::Number(0)) => None,
                    Some(TtlText::Number(n)) => {
                        return Err(Error::invalid(format!(
                            "{}: feature_views[{}].ttl: {n} needs a unit, e.g. {n}s",
                            v.origin, v.name
                        )));
                    }
                    Some(TtlText::Text(t)) => parse_ttl(t).map_err(|e| {
                        let line = locate(text, "feature_views", &v.name, nth, Some("ttl"));
                        Error::invalid(format!("{file}:{line}: feature_views[{}].ttl", v.name))
                            .with_source(e)
                    })?,
                };
                for f in &mut v.features {
                    f.origin = Origin {
                        file: file.clone(),
                        line: locate(text, "feature_views", &f.name, 0, None),
                    };
                }
                repo.views.push(v);
            }
            for mut s in content.feature_services {
                s.origin = origin(
                    "feature_services",
                    &s.name,
                    seen.next(file, "feature_services", &s.name),
                );
                repo.services.push(s);
            }
        }
        let (project, online_store, registry) =
            config.ok_or_else(|| Error::invalid(format!("{CONFIG_FILE} is missing")))?;
        repo.config.project = project;
        repo.config.online_store = online_store;
        repo.config.registry = registry.unwrap_or_else(|| {
            format!("sqlite:///{}", dir.join(".twinloop/registry.db").display())
        });
        repo.config.offline_store = offline_store;
        repo.check(texts)?;
        Ok(repo)
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.views.iter().find(|v| v.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&FeatureService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The join keys of a view: its entities' keys, in order.
    pub fn join_keys(&self, view: &FeatureView) -> Vec<String> {
        view.entities
            .iter()
            .filter_map(|e| self.entity(e))
            .flat_map(|e| e.join_keys.iter().cloned())
            .collect()
    }

    /// The directory where the online store, the push log and the default registry live.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".twinloop")
    }

    /// Resolves `view:feature` references (or a whole `view`) into feature references.
    pub fn resolve_refs(&self, refs: &[String]) -> Result<Vec<FeatureRef>> {
        let mut out = Vec::new();
        for text in refs {
            match FeatureRef::parse(text) {
                Some(r) => {
                    let view = self.view(&r.view).ok_or_else(|| {
                        Error::invalid(format!("unknown feature view {:?} in {text:?}", r.view))
                    })?;
                    if view.feature(&r.feature).is_none() {
                        return Err(Error::invalid(format!(
                            "feature view {:?} has no feature {:?} (it has: {})",
                            r.view,
                            r.feature,
                            view.features
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    out.push(r);
                }
                None => {
                    let view = self.view(text.trim()).ok_or_else(|| {
                        Error::invalid(format!(
                            "{text:?} is not a feature reference: write view:feature"
                        ))
                    })?;
                    out.extend(view.features.iter().map(|f| FeatureRef {
                        view: view.name.clone(),
                        feature: f.name.clone(),
                    }));
                }
            }
        }
        if out.is_empty() {
            return Err(Error::invalid("no features requested"));
        }
        Ok(out)
    }

    /// The references a feature service names.
    pub fn service_refs(&self, name: &str) -> Result<Vec<FeatureRef>> {
        let service = self
            .service(name)
            .ok_or_else(|| Error::not_found(format!("unknown feature service {name:?}")))?;
        self.resolve_refs(&service.features)
    }

    fn check(&self, texts: &[(String, String)]) -> Result<()> {
        let text_of = |file: &str| {
            texts
                .iter()
                .find(|(f, _)| f == file)
                .map_or("", |(_, t)| t.as_str())
        };
        let at = |origin: &Origin, section: &str, name: &str, field: &str| -> String {
            let line = locate(text_of(&origin.file), section, name, 0, Some(field));
            format!("{}:{line}", origin.file)
        };
        unique("entity", self.entities.iter().map(|e| (&e.name, &e.origin)))?;
        unique("source", self.sources.iter().map(|s| (&s.name, &s.origin)))?;
        unique(
            "feature view",
            self.views.iter().map(|v| (&v.name, &v.origin)),
        )?;
        unique(
            "feature service",
            self.services.iter().map(|s| (&s.name, &s.origin)),
        )?;
        for e in &self.entities {
            check_name(&e.name)
                .map_err(|m| Error::invalid(format!("{}: entities", e.origin)).with_source(m))?;
            if e.join_keys.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: entities[{}].join_keys: an entity needs at least one join key",
                    at(&e.origin, "entities", &e.name, "join_keys"),
                    e.name
                )));
            }
        }
        for s in &self.sources {
            check_name(&s.name)
                .map_err(|m| Error::invalid(format!("{}: sources", s.origin)).with_source(m))?;
            if s.path.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "{}: sources[{}].path: must not be empty",
                    at(&s.origin, "sources", &s.name, "path"),
                    s.name
                )));
            }
        }
        let entity_names: HashSet<&str> = self.entities.iter().map(|e| e.name.as_str()).collect();
        for v in &self.views {
            check_name(&v.name).map_err(|m| {
                Error::invalid(format!("{}: feature_views", v.origin)).with_source(m)
            })?;
            let field = |f: &str| at(&v.origin, "feature_views", &v.name, f);
            if v.entities.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: feature_views[{}].entities: a feature view needs at least one entity",
                    field("entities"),
                    v.name
                )));
            }
            for e in &v.entities {
                if !entity_names.contains(e.as_str()) {
                    return Err(Error::invalid(format!(
                        "{}: feature_views[{}].entities: unknown entity {e:?} (defined: {})",
                        field("entities"),
                        v.name,
                        sorted_list(&entity_names)
                    )));
                }
            }
            if self.source(&v.source).is_none() {
                return Err(Error::invalid(format!(
                    "{}: feature_views[{}].source: unknown source {:?} (defined: {})",
                    field("source"),
                    v.name,
                    v.source,
                    sorted_list(&self.sources.iter().map(|s| s.name.as_str()).collect())
                )));
            }
            if v.features.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: feature_views[{}].features: a feature view needs at least one feature",
                    field("features"),
                    v.name
                )));
            }
            let keys = self.join_keys(v);
            let mut names = HashSet::new();
            for f in &v.features {
                let here = &f.origin;
                check_name(&f.name).map_err(|m| {
                    Error::invalid(format!("{here}: feature_views[{}].features", v.name))
                        .with_source(m)
                })?;
                if !names.insert(f.name.as_str()) {
                    return Err(Error::invalid(format!(
                        "{here}: feature_views[{}].features: duplicate feature {:?}",
                        v.name, f.name
                    )));
                }
                if keys.contains(&f.name) {
                    return Err(Error::invalid(format!(
                        "{here}: feature_views[{}].features: {:?} is a join key, not a feature",
                        v.name, f.name
                    )));
                }
            }
        }
        for s in &self.services {
            check_name(&s.name).map_err(|m| {
                Error::invalid(format!("{}: feature_services", s.origin)).with_source(m)
            })?;
            self.resolve_refs(&s.features).map_err(|e| {
                Error::invalid(format!(
                    "{}: feature_services[{}].features: {}",
                    at(&s.origin, "feature_services", &s.name, "features"),
                    s.name,
                    e.message
                ))
            })?;
        }
        Ok(())
    }
}

/// Counts how often a name has been seen in a file's section, to locate repeated names.
#[derive(Default)]
struct Occurrences(HashMap<(String, &'static str, String), usize>);

impl Occurrences {
    fn next(&mut self, file: &str, section: &'static str, name: &str) -> usize {
        let n = self
            .0
            .entry((file.to_string(), section, name.to_string()))
            .or_default();
        *n += 1;
        *n - 1
    }
}

fn unique<'a>(kind: &str, items: impl Iterator<Item = (&'a String, &'a Origin)>) -> Result<()> {
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for (name, origin) in items {
        if let Some(first) = seen.insert(name, origin) {
            return Err(Error::invalid(format!(
                "{origin}: duplicate {kind} {name:?} (first defined at {first})"
            )));
        }
    }
    Ok(())
}

fn sorted_list(names: &HashSet<&str>) -> String {
    let mut names: Vec<&str> = names.iter().copied().collect();
    names.sort_unstable();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
