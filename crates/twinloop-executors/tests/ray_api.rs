//! A24: the Ray executor against a mock of the dashboard's Jobs REST API that behaves like
//! Ray's job_head: packages answer 404 until uploaded, a submission id is refused the second
//! time, a job goes PENDING → RUNNING → its end, stop makes it STOPPED.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::{Log, serve};
use twinloop_executors::ray::{RayConfig, RayExecutor, submission_id};
use twinloop_executors::{AttemptSpec, Executor, ExecutorError, Outcome, Resources};

const RUN: &str = "0123456789abcdef0123456789abcdef";

#[derive(Clone)]
enum End {
    Succeeded,
    Failed(i32),
    /// Runs until stopped.
    Never,
}

struct Held {
    end: End,
    polls: u32,
    stopped: bool,
}

#[derive(Clone, Default)]
struct Mock {
    log: Log,
    packages: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    jobs: Arc<Mutex<BTreeMap<String, Held>>>,
    /// How jobs whose submission id ends with a key go (default: succeed).
    ends: Arc<Mutex<BTreeMap<String, End>>>,
}

async fn handle(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mock.log.record(&method, &uri, &headers, &body);
    let path = uri.path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["api", "packages", "gcs", name]) => {
            if mock.packages.lock().unwrap().contains_key(*name) {
                StatusCode::OK.into_response()
            } else {
                (
                    StatusCode::NOT_FOUND,
                    format!("Package gcs://{name} does not exist"),
                )
                    .into_response()
            }
        }
        ("PUT", ["api", "packages", "gcs", name]) => {
            mock.packages
                .lock()
                .unwrap()
                .insert((*name).to_owned(), body.to_vec());
            StatusCode::OK.into_response()
        }
        ("POST", ["api", "jobs", ""]) => {
            let request: Value = serde_json::from_slice(&body).unwrap();
            let id = request["submission_id"].as_str().unwrap().to_owned();
            let mut jobs = mock.jobs.lock().unwrap();
            if jobs.contains_key(&id) {
                // Ray's job agent answers 400 and the head turns any agent error into a 500
                // with the traceback.
                let text = format!(
                    "Traceback (most recent call last):\nValueError: Job with submission_id {id} already exists. Please use a different submission_id."
                );
                return (StatusCode::INTERNAL_SERVER_ERROR, text).into_response();
            }
            if let Some(dir) = request["runtime_env"]["working_dir"].as_str() {
                let name = dir.trim_start_matches("gcs://");
                if !mock.packages.lock().unwrap().contains_key(name) {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("package {dir} not found"),
                    )
                        .into_response();
                }
            }
            let ends = mock.ends.lock().unwrap();
            let end = ends
                .iter()
                .find(|(suffix, _)| id.ends_with(suffix.as_str()))
                .map_or(End::Succeeded, |(_, end)| end.clone());
            jobs.insert(
                id.clone(),
                Held {
                    end,
                    polls: 0,
                    stopped: false,
                },
            );
            axum::Json(json!({"job_id": "02000000", "submission_id": id})).into_response()
        }
        ("GET", ["api", "jobs", id]) => {
            let mut jobs = mock.jobs.lock().unwrap();
            let Some(held) = jobs.get_mut(*id) else {
                return (StatusCode::NOT_FOUND, format!("Job {id} does not exist")).into_response();
            };
            held.polls += 1;
            let (status, message, code) = match (held.stopped, held.polls, &held.end) {
                (true, _, _) => (
                    "STOPPED",
                    "Job was intentionally stopped.".to_owned(),
                    Value::Null,
                ),
                (false, 1, _) => (
                    "PENDING",
                    "Job has not started yet.".to_owned(),
                    Value::Null,
                ),
                (false, 2, _) | (false, _, End::Never) => (
                    "RUNNING",
                    "Job is currently running.".to_owned(),
                    Value::Null,
                ),
                (false, _, End::Succeeded) => (
                    "SUCCEEDED",
                    "Job finished successfully.".to_owned(),
                    json!(0),
                ),
                (false, _, End::Failed(code)) => (
                    "FAILED",
                    format!("Job entrypoint command failed with exit code {code}"),
                    json!(code),
                ),
            };
            axum::Json(json!({
                "type": "SUBMISSION", "job_id": "02000000", "submission_id": id,
                "status": status, "message": message, "driver_exit_code": code,
                "entrypoint": "…", "error_type": null,
            }))
            .into_response()
        }
        ("POST", ["api", "jobs", id, "stop"]) => {
            let mut jobs = mock.jobs.lock().unwrap();
            match jobs.get_mut(*id) {
                Some(held) => {
                    held.stopped = true;
                    axum::Json(json!({"stopped": true})).into_response()
                }
                None => (StatusCode::NOT_FOUND, format!("Job {id} does not exist")).into_response(),
            }
        }
        ("GET", ["api", "jobs", id, "logs"]) => {
            if mock.jobs.lock().unwrap().contains_key(*id) {
                axum::Json(json!({"logs": format!("hello from {id}\n")})).into_response()
            } else {
                (StatusCode::NOT_FOUND, format!("Job {id} does not exist")).into_response()
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_mock() -> (Mock, RayExecutor) {
    let mock = Mock::default();
    let url = serve(Router::new().fallback(handle).with_state(mock.clone())).await;
    let mut config = RayConfig::new(url);
    config.poll = Duration::from_millis(5);
    config.token = Some("r4y".into());
    (mock, RayExecutor::new(config).unwrap())
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/train.py"), "print('train')\n").unwrap();
    dir
}

fn spec(repo: &std::path::Path, step: &str, attempt: u32) -> AttemptSpec {
    AttemptSpec {
        run_id: RUN.into(),
        pipeline: "fraud-train".into(),
        step: step.into(),
        item: None,
        attempt,
        command: "python src/train.py".into(),
        env: BTreeMap::from([("MLFLOW_RUN_ID".into(), "abc".into())]),
        image: None,
        resources: Resources {
            cpu: Some("500m".parse().unwrap()),
            memory: Some("1Gi".parse().unwrap()),
        },
        timeout: None,
        inputs: BTreeMap::from([("train".into(), "s3://bucket/train.parquet".into())]),
        outputs: BTreeMap::new(),
        repo: repo.to_owned(),
        code: vec!["src/train.py".into()],
        labels: BTreeMap::new(),
        workdir: None,
        launcher: None,
        grace: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn submits_with_its_package_uploaded_only_when_missing() {
    let (mock, ray) = start_mock().await;
    let repo = repo();

    let handle = ray.start(&spec(repo.path(), "train", 1)).await.unwrap();
    assert_eq!(handle.id, format!("twinloop-{RUN}-train-1"));
    assert_eq!(handle.id, submission_id(RUN, "train", 1));
    let seen = mock.log.all();
    let lines = mock.log.lines();
    let package = seen[0]
        .path
        .trim_start_matches("/api/packages/gcs/")
        .to_owned();
    assert!(
        package.starts_with("_ray_pkg_") && package.ends_with(".zip"),
        "{package}"
    );
    assert_eq!(
        lines,
        [
            format!("GET /api/packages/gcs/{package}"),
            format!("PUT /api/packages/gcs/{package}"),
            "POST /api/jobs/".to_owned(),
        ]
    );
    let zip = seen[1].body.clone();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut text = String::new();
    archive
        .by_name("src/train.py")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "print('train')\n");

    let submit = seen[2].json();
    assert_eq!(submit["entrypoint"], "python src/train.py");
    assert_eq!(submit["submission_id"], handle.id);
    assert_eq!(submit["entrypoint_num_cpus"], 0.5);
    assert_eq!(submit["entrypoint_memory"], 1u64 << 30);
    assert_eq!(
        submit["runtime_env"]["working_dir"],
        format!("gcs://{package}")
    );
    let env = &submit["runtime_env"]["env_vars"];
    assert_eq!(env["TWINLOOP_STEP"], "train");
    assert_eq!(env["TWINLOOP_INPUT_TRAIN"], "s3://bucket/train.parquet");
    assert_eq!(env["MLFLOW_RUN_ID"], "abc");
    assert_eq!(submit["metadata"]["twinloop.dev/run"], RUN);
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer r4y"))
    );

    // The next attempt with the same code finds the package and uploads nothing.
    mock.log.clear();
    ray.start(&spec(repo.path(), "train", 2)).await.unwrap();
    let methods: BTreeSet<String> = mock
        .log
        .all()
        .iter()
        .map(|s| s.method.to_string())
        .collect();
    assert_eq!(
        mock.log.lines()[0],
        format!("GET /api/packages/gcs/{package}")
    );
    assert!(!methods.contains("PUT"), "{:?}", mock.log.lines());
}

#[tokio::test]
async fn polls_to_succeeded_and_to_failed() {
    let (mock, ray) = start_mock().await;
    mock.ends
        .lock()
        .unwrap()
        .insert("-bad-1".into(), End::Failed(2));
    let repo = repo();

    let good = ray.start(&spec(repo.path(), "good", 1)).await.unwrap();
    assert_eq!(ray.wait(&good).await.unwrap(), Outcome::Succeeded);
    let polls = mock
        .log
        .lines()
        .iter()
        .filter(|l| *l == &format!("GET /api/jobs/{}", good.id))
        .count();
    assert_eq!(polls, 3, "PENDING, RUNNING, SUCCEEDED");
    assert_eq!(
        ray.logs(&good).await.unwrap(),
        format!("hello from {}\n", good.id)
    );

    let bad = ray.start(&spec(repo.path(), "bad", 1)).await.unwrap();
    match ray.wait(&bad).await.unwrap() {
        Outcome::Failed { exit_code, reason } => {
            assert_eq!(exit_code, Some(2));
            assert!(reason.contains("exit code 2"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cancel_stops_the_job() {
    let (mock, ray) = start_mock().await;
    mock.ends
        .lock()
        .unwrap()
        .insert("-forever-1".into(), End::Never);
    let repo = repo();
    let handle = ray.start(&spec(repo.path(), "forever", 1)).await.unwrap();
    assert_eq!(ray.poll(&handle).await.unwrap(), None);
    assert_eq!(ray.poll(&handle).await.unwrap(), None);

    ray.cancel(&handle).await.unwrap();
    assert!(
        mock.log
            .lines()
            .contains(&format!("POST /api/jobs/{}/stop", handle.id))
    );
    assert!(matches!(
        ray.wait(&handle).await.unwrap(),
        Outcome::Canceled { .. }
    ));
}

#[tokio::test]
async fn a_resubmitted_attempt_follows_the_existing_job_and_reattach_finds_it() {
    let (_mock, ray) = start_mock().await;
    let repo = repo();
    let first = ray.start(&spec(repo.path(), "train", 1)).await.unwrap();
    let again = ray.start(&spec(repo.path(), "train", 1)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(ray.reattach(&first.id).await.unwrap(), first);

    let e = ray.reattach("twinloop-gone-train-1").await.unwrap_err();
    assert!(matches!(e, ExecutorError::NotFound { .. }), "{e}");
    // An id with a slash stays one path segment: it names no job rather than another route.
    let e = ray.reattach("x/stop").await.unwrap_err();
    assert!(matches!(e, ExecutorError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn no_code_files_no_package() {
    let (mock, ray) = start_mock().await;
    let repo = repo();
    let mut bare = spec(repo.path(), "bare", 1);
    bare.code.clear();
    bare.resources = Resources::default();
    ray.start(&bare).await.unwrap();
    assert_eq!(mock.log.lines(), ["POST /api/jobs/"]);
    let submit = mock.log.all()[0].json();
    assert!(submit["runtime_env"].get("working_dir").is_none());
    assert!(submit.get("entrypoint_num_cpus").is_none());
}

#[tokio::test]
async fn a_bad_address_is_refused_up_front() {
    let e = RayExecutor::new(RayConfig::new("not a url")).err().unwrap();
    assert!(matches!(e, ExecutorError::Invalid(_)), "{e}");
}
