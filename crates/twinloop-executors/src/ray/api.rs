//! The Ray Jobs REST API of the dashboard (`/api/jobs/`, `/api/packages/`), the calls the
//! Python `JobSubmissionClient` makes, with the fields it sends.

use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::ExecutorError;

const ENGINE: &str = "ray";

pub(super) struct Api {
    client: Client,
    base: Url,
    token: Option<String>,
}

/// `POST /api/jobs/`'s body (Ray's `JobSubmitRequest`).
#[derive(Debug, Serialize)]
pub(super) struct Submit {
    pub(super) entrypoint: String,
    pub(super) submission_id: String,
    pub(super) runtime_env: RuntimeEnv,
    pub(super) metadata: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) entrypoint_num_cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) entrypoint_memory: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(super) struct RuntimeEnv {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) working_dir: Option<String>,
    pub(super) env_vars: std::collections::BTreeMap<String, String>,
}

/// The parts of `GET /api/jobs/{id}` (Ray's `JobDetails`) the executor reads.
#[derive(Debug, Deserialize)]
pub(super) struct JobInfo {
    pub(super) status: String,
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) driver_exit_code: Option<i32>,
}

#[derive(Deserialize)]
struct Logs {
    logs: String,
}

impl Api {
    pub(super) fn new(address: &str, token: Option<String>) -> Result<Api, ExecutorError> {
        let base = Url::parse(address).map_err(|e| {
            ExecutorError::Invalid(format!("Ray dashboard address {address:?}: {e}"))
        })?;
        if base.cannot_be_a_base() {
            return Err(ExecutorError::Invalid(format!(
                "Ray dashboard address {address:?} is not an http(s) URL"
            )));
        }
        let client = Client::builder()
            .build()
            .map_err(|source| transport("build the HTTP client", source))?;
        Ok(Api {
            client,
            base,
            token,
        })
    }

    /// The URL of `segments` under the dashboard, each one percent-encoded (a submission id
    /// is the user's step name).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send(&self, request: RequestBuilder, action: &str) -> Result<Response, ExecutorError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request
            .send()
            .await
            .map_err(|source| transport(action, source))
    }

    /// Whether the cluster already holds the package (`GET` answers 404 when not).
    pub(super) async fn has_package(&self, name: &str) -> Result<bool, ExecutorError> {
        let action = format!("look up package {name}");
        let url = self.url(&["api", "packages", "gcs", name]);
        let response = self.send(self.client.get(url), &action).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        checked(response, &action).await.map(|_| true)
    }

    pub(super) async fn upload_package(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(), ExecutorError> {
        let action = format!("upload package {name}");
        let url = self.url(&["api", "packages", "gcs", name]);
        let response = self.send(self.client.put(url).body(bytes), &action).await?;
        checked(response, &action).await.map(drop)
    }

    pub(super) async fn submit(&self, body: &Submit) -> Result<(), ExecutorError> {
        let action = format!("submit job {}", body.submission_id);
        // The trailing slash is part of Ray's route.
        let url = self.url(&["api", "jobs", ""]);
        let response = self.send(self.client.post(url).json(body), &action).await?;
        checked(response, &action).await.map(drop)
    }

    pub(super) async fn job(&self, id: &str) -> Result<JobInfo, ExecutorError> {
        let action = format!("read job {id}");
        let response = self
            .send(self.client.get(self.url(&["api", "jobs", id])), &action)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ExecutorError::NotFound {
                engine: ENGINE,
                what: "job",
                id: id.to_owned(),
            });
        }
        decode(checked(response, &action).await?, &action).await
    }

    /// Stops the job; one that has ended or is unknown is left alone.
    pub(super) async fn stop(&self, id: &str) -> Result<(), ExecutorError> {
        let action = format!("stop job {id}");
        let url = self.url(&["api", "jobs", id, "stop"]);
        let response = self.send(self.client.post(url), &action).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        checked(response, &action).await.map(drop)
    }

    pub(super) async fn logs(&self, id: &str) -> Result<String, ExecutorError> {
        let action = format!("read the logs of job {id}");
        let url = self.url(&["api", "jobs", id, "logs"]);
        let response = self.send(self.client.get(url), &action).await?;
        let logs: Logs = decode(checked(response, &action).await?, &action).await?;
        Ok(logs.logs)
    }
}

fn transport(action: &str, source: reqwest::Error) -> ExecutorError {
    ExecutorError::Transport {
        engine: ENGINE,
        action: action.to_owned(),
        source: Box::new(source),
    }
}

/// The response if successful, else an [`ExecutorError::Api`] with Ray's text (a traceback
/// or a one-line reason).
async fn checked(response: Response, action: &str) -> Result<Response, ExecutorError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    Err(ExecutorError::Api {
        engine: ENGINE,
        action: action.to_owned(),
        status: status.as_u16(),
        body: response.text().await.unwrap_or_default(),
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
