//! The few calls of the Kubernetes REST API the executor makes, and the parts of their answers
//! it reads. Answers are read leniently (unknown fields ignored, absent ones empty): the API
//! server adds fields with every release.

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::manifest::{Job, STEP_CONTAINER};
use crate::ExecutorError;

const ENGINE: &str = "kubernetes";

pub(super) struct Api {
    client: Client,
    base: String,
    token: Option<String>,
    namespace: String,
}

/// How a Job ended, from its terminal condition.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum JobEnd {
    Complete,
    Failed { reason: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct JobStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Debug, Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

impl JobStatus {
    /// `Complete` or `Failed` once true; the interim ones (`FailureTarget`,
    /// `SuccessCriteriaMet`) come while pods are still terminating, so they are not an end.
    pub(super) fn end(&self) -> Option<JobEnd> {
        self.conditions
            .iter()
            .filter(|c| c.status == "True")
            .find_map(|c| match c.kind.as_str() {
                "Complete" => Some(JobEnd::Complete),
                "Failed" => Some(JobEnd::Failed {
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                }),
                _ => None,
            })
    }
}

/// The attempt's pod: its name (for logs) and how the step container ended.
#[derive(Debug)]
pub(super) struct StepPod {
    pub(super) name: String,
    pub(super) exit_code: Option<i32>,
    /// `Error`, `OOMKilled`, … from the terminated state.
    pub(super) reason: Option<String>,
}

#[derive(Deserialize)]
struct JobBody {
    #[serde(default)]
    status: JobStatus,
}

#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    items: Vec<Pod>,
}

#[derive(Deserialize)]
struct Pod {
    metadata: PodMetadata,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize)]
struct PodMetadata {
    name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
struct ContainerStatus {
    name: String,
    #[serde(default)]
    state: ContainerState,
}

#[derive(Default, Deserialize)]
struct ContainerState {
    terminated: Option<Terminated>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Terminated {
    exit_code: i32,
    reason: Option<String>,
}

impl Api {
    pub(super) fn new(
        base: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
        namespace: &str,
    ) -> Result<Api, ExecutorError> {
        let mut builder = Client::builder();
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ExecutorError::Invalid(format!("the cluster CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|source| transport("build the HTTP client", source))?;
        if !is_dns_label(namespace) {
            return Err(ExecutorError::Invalid(format!(
                "namespace {namespace:?} is not a DNS label"
            )));
        }
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
            namespace: namespace.to_owned(),
        })
    }

    fn jobs_url(&self) -> String {
        format!(
            "{}/apis/batch/v1/namespaces/{}/jobs",
            self.base, self.namespace
        )
    }

    fn job_url(&self, name: &str) -> Result<String, ExecutorError> {
        // Names go into the path: anything else than a DNS label (a recorded id gone wrong)
        // names no Job rather than another resource.
        if !is_dns_label(name) {
            return Err(not_found("Job", name));
        }
        Ok(format!("{}/{name}", self.jobs_url()))
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder, action: &str) -> Result<Response, ExecutorError> {
        self.authorized(request)
            .send()
            .await
            .map_err(|source| transport(action, source))
    }

    /// Creates the Job; one that already exists (the same attempt, started before a restart)
    /// is left as it is.
    pub(super) async fn create_job(&self, job: &Job) -> Result<(), ExecutorError> {
        let action = "create Job";
        let response = self
            .send(self.client.post(self.jobs_url()).json(job), action)
            .await?;
        if response.status() == StatusCode::CONFLICT {
            return Ok(());
        }
        checked(response, action).await.map(drop)
    }

    pub(super) async fn job_status(&self, name: &str) -> Result<JobStatus, ExecutorError> {
        let action = format!("read Job {name}");
        let response = self
            .send(self.client.get(self.job_url(name)?), &action)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(not_found("Job", name));
        }
        let body: JobBody = decode(checked(response, &action).await?, &action).await?;
        Ok(body.status)
    }

    /// The Job's pod, found by the `job-name` label the Job controller sets; with
    /// `backoffLimit: 0` there is one, and a terminated one is preferred if not.
    pub(super) async fn step_pod(&self, job: &str) -> Result<Option<StepPod>, ExecutorError> {
        let action = format!("list the pods of Job {job}");
        let url = format!("{}/api/v1/namespaces/{}/pods", self.base, self.namespace);
        let request = self
            .client
            .get(url)
            .query(&[("labelSelector", format!("job-name={job}"))]);
        let response = checked(self.send(request, &action).await?, &action).await?;
        let list: PodList = decode(response, &action).await?;
        let mut pods: Vec<StepPod> = list
            .items
            .into_iter()
            .map(|pod| {
                let terminated = pod
                    .status
                    .container_statuses
                    .into_iter()
                    .find(|c| c.name == STEP_CONTAINER)
                    .and_then(|c| c.state.terminated);
                StepPod {
                    name: pod.metadata.name,
                    exit_code: terminated.as_ref().map(|t| t.exit_code),
                    reason: terminated.and_then(|t| t.reason),
                }
            })
            .collect();
        pods.sort_by_key(|p| p.exit_code.is_none());
        Ok(pods.into_iter().next())
    }

    pub(super) async fn pod_log(&self, pod: &str) -> Result<String, ExecutorError> {
        let action = format!("read the log of pod {pod}");
        let url = format!(
            "{}/api/v1/namespaces/{}/pods/{pod}/log",
            self.base, self.namespace
        );
        let request = self.client.get(url).query(&[("container", STEP_CONTAINER)]);
        let response = checked(self.send(request, &action).await?, &action).await?;
        response
            .text()
            .await
            .map_err(|source| transport(action, source))
    }

    /// Deletes the Job and, before the delete completes, its pods (which kills the step);
    /// a Job already gone is not an error.
    pub(super) async fn delete_job(&self, name: &str) -> Result<(), ExecutorError> {
        let action = format!("delete Job {name}");
        let options = json!({
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Foreground",
        });
        let request = self.client.delete(self.job_url(name)?).json(&options);
        let response = self.send(request, &action).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        checked(response, &action).await.map(drop)
    }
}

fn transport(action: impl Into<String>, source: reqwest::Error) -> ExecutorError {
    ExecutorError::Transport {
        engine: ENGINE,
        action: action.into(),
        source: Box::new(source),
    }
}

fn not_found(what: &'static str, id: &str) -> ExecutorError {
    ExecutorError::NotFound {
        engine: ENGINE,
        what,
        id: id.to_owned(),
    }
}

/// A DNS label (RFC 1123), what Job and namespace names are.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The response when its status is a success, else an [`ExecutorError::Api`] with the body:
/// the API server's Status message says what was wrong.
async fn checked(response: Response, action: &str) -> Result<Response, ExecutorError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let body = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or(body);
    Err(ExecutorError::Api {
        engine: ENGINE,
        action: action.to_owned(),
        status: status.as_u16(),
        body,
    })
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: Response,
    action: &str,
) -> Result<T, ExecutorError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|source| transport(action, source))?;
    serde_json::from_slice(&bytes).map_err(|e| ExecutorError::Decode {
        engine: ENGINE,
        action: action.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> JobStatus {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn only_true_complete_or_failed_conditions_end_a_job() {
        assert_eq!(status(json!({})).end(), None);
        let interim = json!({"conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
            {"type": "Failed", "status": "False"},
        ]});
        assert_eq!(status(interim).end(), None);
        let done = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        assert_eq!(status(done).end(), Some(JobEnd::Complete));
        let failed = json!({"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"}
        ]});
        assert_eq!(
            status(failed).end(),
            Some(JobEnd::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "m".into()
            })
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("twinloop-abc-train-1"));
        for bad in ["", "-a", "a-", "A", "a/b", "a..", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
    }
}
