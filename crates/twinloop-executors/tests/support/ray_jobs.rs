//! A faithful local stand-in for Ray's Jobs REST API (the dashboard's `/api/jobs/`): a
//! submission really runs its entrypoint, as Ray's job supervisor does, as `sh -c ENTRYPOINT`
//! in a process group of its own with `runtime_env.env_vars` added to the environment, in a
//! directory of its own (not the caller's). Its status goes PENDING → RUNNING → SUCCEEDED or
//! FAILED from the real exit code (`driver_exit_code`), its logs are what it printed, and stop
//! ends its process group (SIGTERM, then SIGKILL) and makes it STOPPED. A submission id is
//! refused the second time, as Ray does. Shared by the executors' tests and the CLI's
//! end-to-end test, which includes this file by path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

struct Job {
    status: &'static str,
    message: String,
    exit_code: Option<i32>,
    log: PathBuf,
    pgid: Option<u32>,
}

#[derive(Clone)]
pub struct RayJobs {
    jobs: Arc<Mutex<BTreeMap<String, Job>>>,
    /// The submitted entrypoints, in order.
    submitted: Arc<Mutex<Vec<String>>>,
    dir: Arc<tempfile::TempDir>,
}

impl RayJobs {
    /// Serves the API on a loopback port; returns it and its base URL.
    pub async fn start() -> (RayJobs, String) {
        let jobs = RayJobs {
            jobs: Arc::default(),
            submitted: Arc::default(),
            dir: Arc::new(tempfile::tempdir().unwrap()),
        };
        let router = Router::new()
            .route("/api/jobs/", post(submit))
            .route("/api/jobs/{id}", get(job))
            .route("/api/jobs/{id}/logs", get(logs))
            .route("/api/jobs/{id}/stop", post(stop))
            .route("/api/packages/gcs/{name}", get(no_package).put(stored))
            .with_state(jobs.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (jobs, format!("http://{address}"))
    }

    pub fn submitted(&self) -> Vec<String> {
        self.submitted.lock().unwrap().clone()
    }

    /// The process group of a job that has started.
    #[allow(dead_code, reason = "not every including test reads it")]
    pub fn pgid(&self, id: &str) -> Option<u32> {
        self.jobs.lock().unwrap().get(id).and_then(|j| j.pgid)
    }
}

fn error(status: StatusCode, text: String) -> Response {
    (status, text).into_response()
}

async fn submit(State(ray): State<RayJobs>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not JSON".into());
    };
    let (Some(id), Some(entrypoint)) = (
        request["submission_id"].as_str(),
        request["entrypoint"].as_str(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "submission_id and entrypoint".into(),
        );
    };
    let id = id.to_owned();
    let log = ray.dir.path().join(format!("{id}.log"));
    {
        let mut jobs = ray.jobs.lock().unwrap();
        if jobs.contains_key(&id) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("ValueError: Job with submission_id {id} already exists."),
            );
        }
        jobs.insert(
            id.clone(),
            Job {
                status: "PENDING",
                message: "Job has not started yet.".into(),
                exit_code: None,
                log: log.clone(),
                pgid: None,
            },
        );
    }
    ray.submitted.lock().unwrap().push(entrypoint.to_owned());
    let env: BTreeMap<String, String> = request["runtime_env"]["env_vars"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let out = std::fs::File::create(&log).unwrap();
    let child = tokio::process::Command::new("sh")
        .args(["-c", entrypoint])
        .envs(env)
        .current_dir(ray.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let mut jobs = ray.jobs.lock().unwrap();
            if let Some(job) = jobs.get_mut(&id) {
                job.status = "FAILED";
                job.message = format!("cannot start the driver: {e}");
            }
            return axum::Json(json!({"job_id": null, "submission_id": id})).into_response();
        }
    };
    {
        let mut jobs = ray.jobs.lock().unwrap();
        if let Some(job) = jobs.get_mut(&id) {
            job.status = "RUNNING";
            job.message = "Job is currently running.".into();
            job.pgid = child.id();
        }
    }
    let jobs = ray.jobs.clone();
    let waited = id.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        let mut jobs = jobs.lock().unwrap();
        let Some(job) = jobs.get_mut(&waited) else {
            return;
        };
        if job.status == "STOPPED" {
            return;
        }
        match status.ok().and_then(|s| s.code()) {
            Some(0) => {
                job.status = "SUCCEEDED";
                job.message = "Job finished successfully.".into();
                job.exit_code = Some(0);
            }
            code => {
                job.status = "FAILED";
                job.message = format!("Job entrypoint command failed with exit code {code:?}");
                job.exit_code = code;
            }
        }
    });
    axum::Json(json!({"job_id": "02000000", "submission_id": id})).into_response()
}

async fn job(State(ray): State<RayJobs>, Path(id): Path<String>) -> Response {
    let jobs = ray.jobs.lock().unwrap();
    let Some(job) = jobs.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("Job {id} does not exist"));
    };
    axum::Json(json!({
        "submission_id": id,
        "status": job.status,
        "message": job.message,
        "driver_exit_code": job.exit_code,
    }))
    .into_response()
}

async fn logs(State(ray): State<RayJobs>, Path(id): Path<String>) -> Response {
    let log = match ray.jobs.lock().unwrap().get(&id) {
        Some(job) => job.log.clone(),
        None => return error(StatusCode::NOT_FOUND, format!("Job {id} does not exist")),
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    axum::Json(json!({"logs": text})).into_response()
}

async fn stop(State(ray): State<RayJobs>, Path(id): Path<String>) -> Response {
    let pgid = {
        let mut jobs = ray.jobs.lock().unwrap();
        let Some(job) = jobs.get_mut(&id) else {
            return error(StatusCode::NOT_FOUND, format!("Job {id} does not exist"));
        };
        if !matches!(job.status, "PENDING" | "RUNNING") {
            return axum::Json(json!({"stopped": false})).into_response();
        }
        job.status = "STOPPED";
        job.message = "Job was intentionally stopped.".into();
        job.pgid
    };
    if let Some(pgid) = pgid {
        signal(pgid, "-TERM");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            signal(pgid, "-KILL");
        });
    }
    axum::Json(json!({"stopped": true})).into_response()
}

fn signal(pgid: u32, which: &str) {
    // A group already gone is fine: kill's failure is its answer.
    let _ = std::process::Command::new("kill")
        .args([which, "--", &format!("-{pgid}")])
        .status();
}

async fn no_package(Path(name): Path<String>) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("Package gcs://{name} does not exist"),
    )
}

async fn stored() -> StatusCode {
    StatusCode::OK
}
