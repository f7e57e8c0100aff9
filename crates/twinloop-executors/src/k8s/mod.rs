//! Kubernetes: one Job per attempt over the API server's REST API with a bearer token.
//! Create the Job, poll it until its `Complete` or `Failed` condition, read the exit code and
//! logs of its pod; cancel deletes it with `propagationPolicy: Foreground` so its pod goes too.

mod api;
pub mod manifest;

use std::time::Duration;

use async_trait::async_trait;

pub use manifest::{Job, JobTemplate, SharedSource, SharedVolume, job, job_name};

use crate::{AttemptSpec, Executor, ExecutorError, Handle, Outcome};

/// Where the API server is and how every Job looks.
#[derive(Debug, Clone)]
pub struct K8sConfig {
    /// `https://host:6443`, no trailing slash needed.
    pub api_server: String,
    /// A service account token; `None` for an API server that needs none (a proxy, a mock).
    pub token: Option<String>,
    /// The cluster's CA certificate (PEM), trusted beside the system roots.
    pub ca_pem: Option<Vec<u8>>,
    pub template: JobTemplate,
    pub poll: Duration,
}

pub struct K8sExecutor {
    api: api::Api,
    template: JobTemplate,
    poll: Duration,
}

impl K8sExecutor {
    pub fn new(config: K8sConfig) -> Result<K8sExecutor, ExecutorError> {
        let api = api::Api::new(
            &config.api_server,
            config.token,
            config.ca_pem.as_deref(),
            &config.template.namespace,
        )?;
        Ok(K8sExecutor {
            api,
            template: config.template,
            poll: config.poll,
        })
    }

    fn handle(id: String) -> Handle {
        Handle {
            executor: "k8s".into(),
            id,
        }
    }
}

#[async_trait]
impl Executor for K8sExecutor {
    fn name(&self) -> &'static str {
        "k8s"
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }

    async fn start(&self, spec: &AttemptSpec) -> Result<Handle, ExecutorError> {
        let job = job(spec, &self.template);
        let name = job_name(&spec.run_id, &spec.name(), spec.attempt);
        self.api.create_job(&job).await?;
        Ok(K8sExecutor::handle(name))
    }

    async fn poll(&self, handle: &Handle) -> Result<Option<Outcome>, ExecutorError> {
        let status = match self.api.job_status(&handle.id).await {
            Ok(status) => status,
            // Deleted under us (kubectl delete, a TTL controller): the attempt is gone.
            Err(ExecutorError::NotFound { .. }) => {
                return Ok(Some(Outcome::Canceled {
                    reason: format!("Job {} was deleted", handle.id),
                }));
            }
            Err(e) => return Err(e),
        };
        let Some(end) = status.end() else {
            return Ok(None);
        };
        let pod = self.api.step_pod(&handle.id).await?;
        let exit_code = pod.as_ref().and_then(|p| p.exit_code);
        Ok(Some(match end {
            api::JobEnd::Complete => Outcome::Succeeded,
            api::JobEnd::Failed { reason, message } if reason == "DeadlineExceeded" => {
                Outcome::TimedOut {
                    reason: format!("Job {}: {message}", handle.id),
                }
            }
            api::JobEnd::Failed { reason, message } => {
                let detail = pod
                    .and_then(|p| p.reason)
                    .map_or(String::new(), |r| format!(" ({r})"));
                let reason = match exit_code {
                    Some(code) => format!("exited with {code}{detail}"),
                    None => format!("Job {} failed: {reason}: {message}{detail}", handle.id),
                };
                Outcome::Failed { exit_code, reason }
            }
        }))
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), ExecutorError> {
        self.api.delete_job(&handle.id).await
    }

    async fn logs(&self, handle: &Handle) -> Result<String, ExecutorError> {
        match self.api.step_pod(&handle.id).await? {
            Some(pod) => self.api.pod_log(&pod.name).await,
            None => Ok(String::new()),
        }
    }

    async fn reattach(&self, id: &str) -> Result<Handle, ExecutorError> {
        self.api.job_status(id).await?;
        Ok(K8sExecutor::handle(id.to_owned()))
    }
}
