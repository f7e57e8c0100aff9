//! Executors built from `twinloop.yaml`'s `executors:` entries (read by
//! `twinloop_pipelines::config`, which knows their names and kinds): each kind's settings, typed
//! and checked here, every problem located at its entry.
//!
//! ```yaml
//! executors:
//!   cluster:                       # executor: cluster
//!     kind: ray
//!     address: http://head:8265
//!     token_env: RAY_TOKEN         # optional: a bearer token from this variable
//!   batch:
//!     kind: k8s
//!     api_server: https://k8s:6443
//!     token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
//!     ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
//!     namespace: ml
//!     image: python:3.12-slim
//!     shared: {mount_path: /data, claim: twinloop-data}   # or host_path: /data
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use twinloop_pipelines::Problem;
use twinloop_pipelines::config::{ExecutorConfig, ExecutorKind, RepoConfig};
use twinloop_pipelines::duration::parse_duration;

use crate::k8s::{JobTemplate, K8sConfig, K8sExecutor, SharedSource, SharedVolume};
use crate::ray::{RayConfig, RayExecutor};
use crate::{Executor, Executors};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RaySettings {
    address: String,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
    poll: Option<String>,
    max_package_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sSettings {
    api_server: String,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
    ca_file: Option<String>,
    namespace: Option<String>,
    image: String,
    launcher_image: Option<String>,
    launcher_path: Option<String>,
    service_account: Option<String>,
    working_dir: Option<String>,
    poll: Option<String>,
    shared: Option<SharedSettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedSettings {
    mount_path: String,
    claim: Option<String>,
    host_path: Option<String>,
}

/// Every executor of `config`, built; every problem found, located.
pub fn build_all(config: &RepoConfig) -> Result<Executors, Vec<Problem>> {
    let mut executors = Executors::new();
    let mut problems = Vec::new();
    for (name, entry) in &config.executors {
        match build(entry) {
            Ok(executor) => {
                executors.insert(name.clone(), executor);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(executors)
    } else {
        Err(problems)
    }
}

/// The executor of one entry.
pub fn build(entry: &ExecutorConfig) -> Result<Arc<dyn Executor>, Problem> {
    let settings = serde_norway::Value::Mapping(entry.settings.clone());
    let problem = |field: &str, message: String| entry.problem(field, message);
    match entry.kind {
        ExecutorKind::Ray => {
            let s: RaySettings = serde_norway::from_value(settings)
                .map_err(|e| problem("settings", e.to_string()))?;
            let mut config = RayConfig::new(s.address);
            config.token =
                token(s.token, s.token_env, s.token_file).map_err(|m| problem("token", m))?;
            if let Some(poll) = &s.poll {
                config.poll = poll_interval(poll).map_err(|m| problem("poll", m))?;
            }
            if let Some(limit) = s.max_package_bytes {
                config.max_package_bytes = limit;
            }
            let executor =
                RayExecutor::new(config).map_err(|e| problem("address", e.to_string()))?;
            Ok(Arc::new(executor))
        }
        ExecutorKind::K8s => {
            let s: K8sSettings = serde_norway::from_value(settings)
                .map_err(|e| problem("settings", e.to_string()))?;
            let mut template = JobTemplate::new(s.image);
            if let Some(namespace) = s.namespace {
                template.namespace = namespace;
            }
            if let Some(image) = s.launcher_image {
                template.launcher_image = image;
            }
            if let Some(path) = s.launcher_path {
                template.launcher_path = path;
            }
            template.service_account = s.service_account;
            template.working_dir = s.working_dir;
            template.shared = s
                .shared
                .map(SharedSettings::volume)
                .transpose()
                .map_err(|m| problem("shared", m))?;
            let ca_pem = s
                .ca_file
                .map(|path| {
                    std::fs::read(&path).map_err(|e| problem("ca_file", format!("{path}: {e}")))
                })
                .transpose()?;
            let poll = match &s.poll {
                Some(poll) => poll_interval(poll).map_err(|m| problem("poll", m))?,
                None => Duration::from_secs(2),
            };
            let config = K8sConfig {
                api_server: s.api_server,
                token: token(s.token, s.token_env, s.token_file)
                    .map_err(|m| problem("token", m))?,
                ca_pem,
                template,
                poll,
            };
            let executor =
                K8sExecutor::new(config).map_err(|e| problem("settings", e.to_string()))?;
            Ok(Arc::new(executor))
        }
    }
}

fn poll_interval(text: &str) -> Result<Duration, String> {
    let poll = parse_duration(text)?;
    if poll.is_zero() {
        return Err("the poll interval must be more than zero".into());
    }
    Ok(poll)
}

/// A bearer token: given, read from a variable, or read from a file (a service account's).
fn token(
    token: Option<String>,
    env: Option<String>,
    file: Option<String>,
) -> Result<Option<String>, String> {
    match (token, env, file) {
        (None, None, None) => Ok(None),
        (Some(token), None, None) => Ok(Some(token)),
        (None, Some(var), None) => std::env::var(&var)
            .map(Some)
            .map_err(|e| format!("token_env {var}: {e}")),
        (None, None, Some(path)) => std::fs::read_to_string(&path)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| format!("token_file {path}: {e}")),
        _ => Err("give one of token, token_env and token_file".into()),
    }
}

impl SharedSettings {
    fn volume(self) -> Result<SharedVolume, String> {
        if !self.mount_path.starts_with('/') {
            return Err(format!(
                "mount_path {:?} must be absolute: the repository and the pipeline home are under it at the engine's own paths",
                self.mount_path
            ));
        }
        let source = match (self.claim, self.host_path) {
            (Some(claim), None) => SharedSource::Claim(claim),
            (None, Some(path)) => SharedSource::HostPath(path),
            _ => return Err("give one of claim (a PersistentVolumeClaim) and host_path".into()),
        };
        Ok(SharedVolume {
            mount_path: self.mount_path,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> RepoConfig {
        RepoConfig::parse(Path::new("twinloop.yaml"), text).unwrap()
    }

    #[test]
    fn each_kind_is_built_from_its_settings() {
        let executors = build_all(&config(
            "executors:\n  r:\n    kind: ray\n    address: http://127.0.0.1:8265\n    poll: 500ms\n  k:\n    kind: k8s\n    api_server: http://127.0.0.1:6443\n    image: python:3.12-slim\n    shared: {mount_path: /data, host_path: /data}\n",
        ))
        .unwrap();
        assert_eq!(executors["r"].name(), "ray");
        assert_eq!(executors["r"].poll_interval(), Duration::from_millis(500));
        assert_eq!(executors["k"].name(), "k8s");
    }

    #[test]
    fn bad_settings_are_located_at_their_entry() {
        let problems = build_all(&config(
            "executors:\n  r:\n    kind: ray\n    adress: http://x\n  k:\n    kind: k8s\n    api_server: http://x\n    image: i\n    token: a\n    token_env: B\n  s:\n    kind: k8s\n    api_server: http://x\n    image: i\n    shared: {mount_path: data, claim: c}\n  p:\n    kind: ray\n    address: http://x\n    poll: 0s\n",
        ));
        let Err(problems) = problems else {
            panic!("every entry has a problem");
        };
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        assert!(
            text[0].starts_with("twinloop.yaml:5: executors.k.token: give one of"),
            "{text:#?}"
        );
        assert!(
            text[1].starts_with("twinloop.yaml:16: executors.p.poll: "),
            "{text:#?}"
        );
        assert!(
            text[2].starts_with("twinloop.yaml:2: executors.r.settings: unknown field `adress`"),
            "{text:#?}"
        );
        assert!(
            text[3].starts_with(
                "twinloop.yaml:11: executors.s.shared: mount_path \"data\" must be absolute"
            ),
            "{text:#?}"
        );
    }
}
