//! One attempt as a `batch/v1` Job: no Kubernetes retries (`backoffLimit: 0`: the engine retries,
//! as a new Job per attempt), the step timeout as `activeDeadlineSeconds`, an init container
//! that copies the `twinloop` binary into a shared emptyDir so the step's own image needs no
//! twinloop, and the step run under `twinloop step-exec`, the launcher that takes the step's
//! process tree down with it.
//!
//! Typed structs rather than a JSON map: the field order is the struct's, so the YAML of
//! `pipeline render` is stable whatever features serde_json is built with.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::AttemptSpec;

/// Where the init container puts the launcher, and the step finds it.
pub const LAUNCHER_DIR: &str = "/twinloop/bin";
/// Scratch space of the attempt: context file, messages, inputs and outputs.
pub const WORK_DIR: &str = "/twinloop/work";
/// The step's container, whose exit code and logs are the attempt's.
pub const STEP_CONTAINER: &str = "step";

/// How every Job of an executor looks, beside what the attempt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTemplate {
    pub namespace: String,
    /// The steps' image when a step names none.
    pub image: String,
    /// An image holding the `twinloop` binary at [`JobTemplate::launcher_path`].
    pub launcher_image: String,
    pub launcher_path: String,
    pub service_account: Option<String>,
    /// The step's working directory in its image (where the repo's code is), when the attempt
    /// names none.
    pub working_dir: Option<String>,
    /// The volume that holds the repository and the pipeline home at the same paths as on the
    /// engine's machine (shared-volume staging), mounted into every step.
    pub shared: Option<SharedVolume>,
}

/// A PersistentVolumeClaim or a node's directory, mounted at `mount_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedVolume {
    pub mount_path: String,
    pub source: SharedSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedSource {
    Claim(String),
    HostPath(String),
}

impl JobTemplate {
    /// Defaults for `image`: the namespace `default`, the launcher from twinloop's release
    /// image of this version.
    pub fn new(image: impl Into<String>) -> JobTemplate {
        JobTemplate {
            namespace: "default".into(),
            image: image.into(),
            launcher_image: format!("ghcr.io/twinloop/twinloop:{}", env!("CARGO_PKG_VERSION")),
            launcher_path: "/usr/local/bin/twinloop".into(),
            service_account: None,
            working_dir: None,
            shared: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: JobSpec,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub backoff_limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PodTemplate {
    pub metadata: Metadata,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub restart_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    pub init_containers: Vec<Container>,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceRequirements {
    pub requests: BTreeMap<&'static str, String>,
    pub limits: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: &'static str,
    pub mount_path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<ClaimSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathSource>,
}

impl Volume {
    fn empty(name: &'static str) -> Volume {
        Volume {
            name,
            empty_dir: Some(EmptyDir {}),
            persistent_volume_claim: None,
            host_path: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EmptyDir {}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSource {
    pub claim_name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostPathSource {
    pub path: String,
}

const LAUNCHER_VOLUME: &str = "twinloop-bin";
const WORK_VOLUME: &str = "twinloop-work";
const SHARED_VOLUME: &str = "twinloop-shared";

/// The Job's name: `twinloop-<run>-<step>-<attempt>`, a DNS label (Kubernetes copies it into
/// the pods' `job-name` label, whose limit is 63 characters). The run id is cut to 12
/// characters and a long step name to what fits plus a digest of the whole, so two attempts
/// never share a name.
pub fn job_name(run_id: &str, step: &str, attempt: u32) -> String {
    let run: String = dns_part(run_id).chars().take(12).collect();
    let mut step_part = dns_part(step);
    let fixed = "twinloop---".len() + run.len() + attempt.to_string().len();
    let room = 63 - fixed;
    if step_part.len() > room || step_part != step {
        let digest = hex8(step);
        let keep = room.saturating_sub(digest.len() + 1).min(step_part.len());
        step_part = format!("{}-{digest}", step_part[..keep].trim_end_matches('-'));
    }
    format!("twinloop-{run}-{step_part}-{attempt}")
}

/// A label value: at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub fn label_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

fn dns_part(text: &str) -> String {
    let lowered: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    lowered.trim_matches('-').to_owned()
}

fn hex8(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Job of one attempt.
pub fn job(spec: &AttemptSpec, template: &JobTemplate) -> Job {
    let labels: BTreeMap<String, String> = spec
        .labels()
        .into_iter()
        .map(|(k, v)| (k, label_value(&v)))
        .chain([("app.kubernetes.io/managed-by".into(), "twinloop".into())])
        .collect();
    // No `--parent`: in the container the launcher is PID 1 and there is no engine process to
    // watch; it forwards the kubelet's SIGTERM to the step's group and exits with its code.
    let command = spec.launched(&format!("{LAUNCHER_DIR}/twinloop"));
    let env = spec
        .environment()
        .into_iter()
        .map(|(name, value)| EnvVar { name, value })
        .collect();
    let mut requests = BTreeMap::new();
    if let Some(cpu) = &spec.resources.cpu {
        requests.insert("cpu", cpu.as_str().to_owned());
    }
    if let Some(memory) = &spec.resources.memory {
        requests.insert("memory", memory.as_str().to_owned());
    }
    // Limits equal to requests: the step gets what it declared and no more, which is the
    // Guaranteed QoS class, so the node does not evict it first under pressure.
    let resources = (!requests.is_empty()).then(|| ResourceRequirements {
        limits: requests.clone(),
        requests,
    });
    let init = Container {
        name: "twinloop-launcher".into(),
        image: template.launcher_image.clone(),
        command: vec![
            "cp".into(),
            template.launcher_path.clone(),
            format!("{LAUNCHER_DIR}/twinloop"),
        ],
        working_dir: None,
        env: Vec::new(),
        resources: None,
        volume_mounts: vec![VolumeMount {
            name: LAUNCHER_VOLUME,
            mount_path: LAUNCHER_DIR.into(),
            read_only: false,
        }],
    };
    let mut volume_mounts = vec![
        VolumeMount {
            name: LAUNCHER_VOLUME,
            mount_path: LAUNCHER_DIR.into(),
            read_only: true,
        },
        VolumeMount {
            name: WORK_VOLUME,
            mount_path: WORK_DIR.into(),
            read_only: false,
        },
    ];
    let mut volumes = vec![Volume::empty(LAUNCHER_VOLUME), Volume::empty(WORK_VOLUME)];
    if let Some(shared) = &template.shared {
        volume_mounts.push(VolumeMount {
            name: SHARED_VOLUME,
            mount_path: shared.mount_path.clone(),
            read_only: false,
        });
        let (claim, host) = match &shared.source {
            SharedSource::Claim(name) => (
                Some(ClaimSource {
                    claim_name: name.clone(),
                }),
                None,
            ),
            SharedSource::HostPath(path) => (None, Some(HostPathSource { path: path.clone() })),
        };
        volumes.push(Volume {
            name: SHARED_VOLUME,
            empty_dir: None,
            persistent_volume_claim: claim,
            host_path: host,
        });
    }
    let working_dir = spec
        .workdir
        .as_ref()
        .map(|dir| dir.to_string_lossy().into_owned())
        .or_else(|| template.working_dir.clone());
    let step = Container {
        name: STEP_CONTAINER.into(),
        image: spec.image.clone().unwrap_or_else(|| template.image.clone()),
        command,
        working_dir,
        env,
        resources,
        volume_mounts,
    };
    Job {
        api_version: "batch/v1",
        kind: "Job",
        metadata: Metadata {
            name: Some(job_name(&spec.run_id, &spec.name(), spec.attempt)),
            namespace: Some(template.namespace.clone()),
            labels: labels.clone(),
        },
        spec: JobSpec {
            backoff_limit: 0,
            // A deadline under one second would be 0, which the API server refuses.
            active_deadline_seconds: spec.timeout.map(|t| t.as_secs().max(1)),
            template: PodTemplate {
                metadata: Metadata {
                    name: None,
                    namespace: None,
                    labels,
                },
                spec: PodSpec {
                    restart_policy: "Never",
                    service_account_name: template.service_account.clone(),
                    init_containers: vec![init],
                    containers: vec![step],
                    volumes,
                },
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::Resources;

    #[test]
    fn a_shared_volume_is_mounted_and_the_step_runs_in_the_attempts_directory() {
        let spec = AttemptSpec {
            run_id: "run".into(),
            pipeline: "p".into(),
            step: "each".into(),
            item: Some(2),
            attempt: 1,
            command: "true".into(),
            env: BTreeMap::new(),
            image: None,
            resources: Resources::default(),
            timeout: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            repo: PathBuf::from("/data/repo"),
            code: Vec::new(),
            labels: BTreeMap::new(),
            workdir: Some(PathBuf::from("/data/repo")),
            launcher: None,
            grace: Duration::from_millis(2500),
        };
        let mut template = JobTemplate::new("python:3.12-slim");
        template.working_dir = Some("/app".into());
        template.shared = Some(SharedVolume {
            mount_path: "/data".into(),
            source: SharedSource::Claim("twinloop-data".into()),
        });
        let job = job(&spec, &template);
        assert_eq!(job.metadata.name.as_deref(), Some("twinloop-run-each-2-1"));
        assert_eq!(job.metadata.labels["twinloop.dev/item"], "2");
        let pod = &job.spec.template.spec;
        let step = &pod.containers[0];
        assert_eq!(step.working_dir.as_deref(), Some("/data/repo"));
        assert_eq!(
            step.command[..4],
            ["/twinloop/bin/twinloop", "step-exec", "--grace-ms", "2500"]
        );
        let mount = step.volume_mounts.last().unwrap();
        assert_eq!(
            (mount.name, mount.mount_path.as_str()),
            ("twinloop-shared", "/data")
        );
        let volume = pod.volumes.last().unwrap();
        assert_eq!(volume.name, "twinloop-shared");
        assert_eq!(
            volume
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("twinloop-data")
        );
        assert!(volume.empty_dir.is_none() && volume.host_path.is_none());
    }

    #[test]
    fn job_names_are_dns_labels_unique_per_attempt() {
        let run = "0123456789abcdef0123456789abcdef";
        assert_eq!(job_name(run, "train", 1), "twinloop-0123456789ab-train-1");
        assert_ne!(job_name(run, "train", 1), job_name(run, "train", 2));
        let long = "a_very_long_step_name_that_goes_on_and_on_past_any_limit_kubernetes_has";
        for step in [long, "Train_Set", "x"] {
            let name = job_name(run, step, 10);
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
        // Two step ids that clean up to the same text still get different names.
        assert_ne!(job_name(run, "a_b", 1), job_name(run, "a-b", 1));
    }

    #[test]
    fn label_values_are_cleaned_and_bounded() {
        assert_eq!(label_value("train"), "train");
        assert_eq!(label_value("_x y_"), "x-y");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }
}
