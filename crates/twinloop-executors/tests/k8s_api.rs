//! A23's API half: the Kubernetes executor against a mock API server that answers like the
//! real one (Job objects with conditions, pods found by `job-name`, logs as plain text,
//! Status bodies for errors) and records every request.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::{Log, serve};
use twinloop_executors::k8s::{JobTemplate, K8sConfig, K8sExecutor, job_name};
use twinloop_executors::{AttemptSpec, Executor, ExecutorError, Outcome, Resources};

const NS: &str = "ml";
const RUN: &str = "0123456789abcdef0123456789abcdef";

/// How a Job the mock holds will go.
#[derive(Clone)]
struct Plan {
    /// Polls answered with an active pod before the end.
    running: u32,
    /// `None`: runs until deleted.
    end: Option<End>,
    log: &'static str,
}

#[derive(Clone)]
enum End {
    Complete,
    Exit(i32),
    Deadline,
}

struct Held {
    plan: Plan,
    polls: u32,
}

#[derive(Clone, Default)]
struct Mock {
    log: Log,
    plans: Arc<Mutex<BTreeMap<String, Plan>>>,
    jobs: Arc<Mutex<BTreeMap<String, Held>>>,
}

impl Mock {
    fn plan(&self, job: &str, plan: Plan) {
        self.plans.lock().unwrap().insert(job.to_owned(), plan);
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

async fn handle(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mock.log.record(&method, &uri, &headers, &body);
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["apis", "batch", "v1", "namespaces", ns, "jobs"]) => {
            if *ns == "forbidden" {
                let message = "jobs.batch is forbidden: User \"system:serviceaccount:x\" cannot \
                               create resource \"jobs\"";
                return status(StatusCode::FORBIDDEN, "Forbidden", message);
            }
            let job: Value = serde_json::from_slice(&body).unwrap();
            let name = job["metadata"]["name"].as_str().unwrap().to_owned();
            let mut jobs = mock.jobs.lock().unwrap();
            if jobs.contains_key(&name) {
                let message = format!("jobs.batch \"{name}\" already exists");
                return status(StatusCode::CONFLICT, "AlreadyExists", &message);
            }
            let plan = mock
                .plans
                .lock()
                .unwrap()
                .get(&name)
                .cloned()
                .unwrap_or(Plan {
                    running: 1,
                    end: Some(End::Complete),
                    log: "",
                });
            jobs.insert(name, Held { plan, polls: 0 });
            (StatusCode::CREATED, axum::Json(job)).into_response()
        }
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            let mut jobs = mock.jobs.lock().unwrap();
            let Some(held) = jobs.get_mut(*name) else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("jobs.batch \"{name}\" not found"),
                );
            };
            held.polls += 1;
            let conditions = match (&held.plan.end, held.polls > held.plan.running) {
                (Some(End::Complete), true) => json!([
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ]),
                (Some(End::Exit(_)), true) => json!([
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit"},
                ]),
                (Some(End::Deadline), true) => json!([
                    {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                     "message": "Job was active longer than specified deadline"},
                ]),
                _ => json!([]),
            };
            axum::Json(json!({
                "kind": "Job", "metadata": {"name": name},
                "status": {"active": 1, "conditions": conditions},
            }))
            .into_response()
        }
        ("DELETE", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            match mock.jobs.lock().unwrap().remove(*name) {
                Some(_) => {
                    axum::Json(json!({"kind": "Job", "metadata": {"name": name}})).into_response()
                }
                None => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
            }
        }
        ("GET", ["api", "v1", "namespaces", _, "pods"]) => {
            let query = uri.query().unwrap_or_default();
            let selector = query
                .strip_prefix("labelSelector=job-name%3D")
                .expect("pods listed by job-name");
            let jobs = mock.jobs.lock().unwrap();
            let items: Vec<Value> = jobs
                .get(selector)
                .map(|held| {
                    let state = match (&held.plan.end, held.polls > held.plan.running) {
                        (Some(End::Complete), true) => {
                            json!({"terminated": {"exitCode": 0, "reason": "Completed"}})
                        }
                        (Some(End::Exit(code)), true) => {
                            json!({"terminated": {"exitCode": code, "reason": "Error"}})
                        }
                        _ => json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
                    };
                    vec![json!({
                        "metadata": {"name": format!("{selector}-x7k2p")},
                        "status": {"containerStatuses": [
                            {"name": "sidecar", "state": {"terminated": {"exitCode": 9}}},
                            {"name": "step", "state": state},
                        ]},
                    })]
                })
                .unwrap_or_default();
            axum::Json(json!({"kind": "PodList", "items": items})).into_response()
        }
        ("GET", ["api", "v1", "namespaces", _, "pods", pod, "log"]) => {
            assert_eq!(uri.query(), Some("container=step"));
            let jobs = mock.jobs.lock().unwrap();
            let job = pod.trim_end_matches("-x7k2p");
            match jobs.get(job) {
                Some(held) => held.plan.log.into_response(),
                None => status(StatusCode::NOT_FOUND, "NotFound", "pod not found"),
            }
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

async fn start_mock() -> (Mock, String) {
    let mock = Mock::default();
    let router = Router::new().fallback(handle).with_state(mock.clone());
    let url = serve(router).await;
    (mock, url)
}

fn executor(url: &str, namespace: &str) -> K8sExecutor {
    let mut template = JobTemplate::new("python:3.12-slim");
    template.namespace = namespace.into();
    K8sExecutor::new(K8sConfig {
        api_server: format!("{url}/"),
        token: Some("t0ken".into()),
        ca_pem: None,
        template,
        poll: Duration::from_millis(5),
    })
    .unwrap()
}

fn spec(step: &str, attempt: u32) -> AttemptSpec {
    AttemptSpec {
        run_id: RUN.into(),
        pipeline: "fraud-train".into(),
        step: step.into(),
        item: None,
        attempt,
        command: "python src/train.py --lr 0.1".into(),
        env: BTreeMap::from([("TWINLOOP_PARAM_LR".into(), "0.1".into())]),
        image: None,
        resources: Resources {
            cpu: Some("1".parse().unwrap()),
            memory: Some("2Gi".parse().unwrap()),
        },
        timeout: Some(Duration::from_secs(3600)),
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([("model".into(), "/twinloop/work/outputs/model".into())]),
        repo: ".".into(),
        code: Vec::new(),
        labels: BTreeMap::new(),
        workdir: None,
        launcher: None,
        grace: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn create_watch_to_complete_read_logs() {
    let (mock, url) = start_mock().await;
    let name = job_name(RUN, "train", 1);
    mock.plan(
        &name,
        Plan {
            running: 2,
            end: Some(End::Complete),
            log: "auc=0.91\n",
        },
    );
    let k8s = executor(&url, NS);

    let handle = k8s.start(&spec("train", 1)).await.unwrap();
    assert_eq!(handle.id, name);
    assert_eq!(handle.executor, "k8s");
    assert_eq!(k8s.wait(&handle).await.unwrap(), Outcome::Succeeded);
    assert_eq!(k8s.logs(&handle).await.unwrap(), "auc=0.91\n");

    let seen = mock.log.all();
    let jobs = format!("/apis/batch/v1/namespaces/{NS}/jobs");
    let lines = mock.log.lines();
    assert_eq!(lines[0], format!("POST {jobs}"));
    // Two polls see it running, the third sees Complete, then the pod for the exit code.
    assert_eq!(lines[1..4], vec![format!("GET {jobs}/{name}"); 3]);
    assert_eq!(lines[4], format!("GET /api/v1/namespaces/{NS}/pods"));
    assert_eq!(
        seen[4].query.as_deref(),
        Some(format!("labelSelector=job-name%3D{name}").as_str())
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!("GET /api/v1/namespaces/{NS}/pods/{name}-x7k2p/log")
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer t0ken"))
    );

    let job = seen[0].json();
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["metadata"]["namespace"], NS);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(job["metadata"]["labels"]["twinloop.dev/run"], RUN);
    assert_eq!(pod["initContainers"][0]["command"][0], "cp");
    let step = &pod["containers"][0];
    assert_eq!(step["resources"]["limits"]["memory"], "2Gi");
    assert_eq!(step["command"][1], "step-exec");
    assert_eq!(step["command"][7], "python src/train.py --lr 0.1");
    let env: BTreeMap<String, String> = step["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(env["TWINLOOP_ATTEMPT"], "1");
    assert_eq!(env["TWINLOOP_OUTPUT_MODEL"], "/twinloop/work/outputs/model");
}

#[tokio::test]
async fn a_failed_attempt_is_retried_as_a_new_job() {
    let (mock, url) = start_mock().await;
    let first = job_name(RUN, "train", 1);
    let second = job_name(RUN, "train", 2);
    mock.plan(
        &first,
        Plan {
            running: 0,
            end: Some(End::Exit(3)),
            log: "boom\n",
        },
    );
    let k8s = executor(&url, NS);

    // What the engine's retry loop does: attempt 1 fails, attempt 2 is a new Job.
    let mut outcomes = Vec::new();
    for attempt in 1..=2 {
        let handle = k8s.start(&spec("train", attempt)).await.unwrap();
        let outcome = k8s.wait(&handle).await.unwrap();
        outcomes.push((handle.id, outcome.clone()));
        if outcome == Outcome::Succeeded {
            break;
        }
    }
    assert_eq!(
        outcomes,
        vec![
            (
                first.clone(),
                Outcome::Failed {
                    exit_code: Some(3),
                    reason: "exited with 3 (Error)".into()
                }
            ),
            (second.clone(), Outcome::Succeeded),
        ]
    );
    let created: Vec<String> = mock
        .log
        .all()
        .iter()
        .filter(|s| s.method == Method::POST)
        .map(|s| {
            s.json()["metadata"]["labels"]["twinloop.dev/attempt"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(created, ["1", "2"]);
}

#[tokio::test]
async fn the_deadline_is_a_timeout() {
    let (mock, url) = start_mock().await;
    mock.plan(
        &job_name(RUN, "slow", 1),
        Plan {
            running: 1,
            end: Some(End::Deadline),
            log: "",
        },
    );
    let k8s = executor(&url, NS);
    let handle = k8s.start(&spec("slow", 1)).await.unwrap();
    let outcome = k8s.wait(&handle).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::TimedOut { reason } if reason.contains("longer than specified deadline")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn cancel_deletes_the_job_with_foreground_propagation() {
    let (mock, url) = start_mock().await;
    let name = job_name(RUN, "forever", 1);
    mock.plan(
        &name,
        Plan {
            running: 0,
            end: None,
            log: "",
        },
    );
    let k8s = executor(&url, NS);
    let handle = k8s.start(&spec("forever", 1)).await.unwrap();
    assert_eq!(k8s.poll(&handle).await.unwrap(), None, "still running");

    k8s.cancel(&handle).await.unwrap();
    let delete = mock
        .log
        .all()
        .into_iter()
        .find(|s| s.method == Method::DELETE)
        .expect("a DELETE");
    assert_eq!(
        delete.path,
        format!("/apis/batch/v1/namespaces/{NS}/jobs/{name}")
    );
    assert_eq!(delete.json()["propagationPolicy"], "Foreground");
    assert!(matches!(
        k8s.wait(&handle).await.unwrap(),
        Outcome::Canceled { .. }
    ));
    // Canceling what is gone already is fine.
    k8s.cancel(&handle).await.unwrap();
}

#[tokio::test]
async fn start_is_idempotent_and_reattach_finds_jobs_by_name() {
    let (mock, url) = start_mock().await;
    let k8s = executor(&url, NS);
    let first = k8s.start(&spec("train", 1)).await.unwrap();
    let again = k8s.start(&spec("train", 1)).await.unwrap();
    assert_eq!(
        first, again,
        "the 409 of the second create names the same Job"
    );

    let found = k8s.reattach(&first.id).await.unwrap();
    assert_eq!(found, first);
    assert_eq!(k8s.wait(&found).await.unwrap(), Outcome::Succeeded);

    let missing = k8s.reattach("twinloop-gone-train-1").await.unwrap_err();
    assert!(
        matches!(missing, ExecutorError::NotFound { .. }),
        "{missing}"
    );
    mock.log.clear();
    let odd = k8s.reattach("../../api/v1/secrets").await.unwrap_err();
    assert!(matches!(odd, ExecutorError::NotFound { .. }), "{odd}");
    assert!(
        mock.log.all().is_empty(),
        "a non-name was sent to the API server"
    );
}

#[tokio::test]
async fn api_errors_carry_the_servers_message() {
    let (_mock, url) = start_mock().await;
    let k8s = executor(&url, "forbidden");
    let e = k8s.start(&spec("train", 1)).await.unwrap_err();
    match &e {
        ExecutorError::Api { status, body, .. } => {
            assert_eq!(*status, 403);
            assert!(body.starts_with("jobs.batch is forbidden"), "{body}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let k8s = executor(&url, NS);
    let e = k8s.start(&spec("train", 1)).await.unwrap_err();
    assert!(matches!(e, ExecutorError::Transport { .. }), "{e}");
}
