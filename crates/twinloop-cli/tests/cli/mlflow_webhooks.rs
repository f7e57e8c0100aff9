//! MLflow's webhook API on the real binary: a webhook made through it hears a model version
//! created through the MLflow API, signed by MLflow's scheme (checked here with MLflow's
//! documented recipe) and retried like twinloop's own webhooks, with the same delivery id;
//! a disabled one hears nothing; by default (MLflow's policy) a plain-HTTP or private URL is
//! refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{TestServer, post_json};

const SECRET: &str = "mlflow-hook-secret";

type Deliveries = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A receiver that answers 503 to its first `failures` deliveries, then 200.
async fn receiver(failures: usize) -> (String, Deliveries) {
    let got: Deliveries = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let mut log = sink.lock().unwrap();
                log.push((headers, body));
                if log.len() <= failures {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// MLflow's receiver check: base64 HMAC-SHA256 of `{delivery id}.{timestamp}.{body}`.
fn verifies(headers: &axum::http::HeaderMap, body: &str, secret: &str) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let Some(sent) = header("x-mlflow-signature").strip_prefix("v1,") else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(
        format!(
            "{}.{}.{body}",
            header("x-mlflow-delivery-id"),
            header("x-mlflow-timestamp")
        )
        .as_bytes(),
    );
    STANDARD.encode(mac.finalize().into_bytes()) == sent
}

async fn wait_for(got: &Deliveries, n: usize) -> Vec<(axum::http::HeaderMap, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got.lock().unwrap().clone()
}

#[tokio::test]
async fn a_version_created_through_mlflow_reaches_an_mlflow_webhook_signed_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_env(
        dir.path(),
        &[
            ("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https"),
            ("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
        ],
    );
    let http = reqwest::Client::new();
    let (url, got) = receiver(1).await;
    let event = json!({"entity": "MODEL_VERSION", "action": "CREATED"});
    let (status, created) = post_json(
        &http,
        &server.api("webhooks"),
        json!({"name": "on-versions", "url": url, "events": [event], "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert!(created["webhook"].get("secret").is_none());
    let (status, _) = post_json(
        &http,
        &server.api("webhooks"),
        json!({"name": "off", "url": url, "events": [event], "status": "DISABLED"}),
    )
    .await;
    assert_eq!(status, 200);

    let (status, _) = post_json(
        &http,
        &server.api("registered-models/create"),
        json!({"name": "fraud"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post_json(
        &http,
        &server.api("model-versions/create"),
        json!({"name": "fraud", "source": "mlflow-artifacts:/models/fraud", "tags": [{"key": "k", "value": "v"}]}),
    )
    .await;
    assert_eq!(status, 200);

    // The first attempt gets a 503 and is retried after the backoff; nothing else comes.
    let deliveries = wait_for(&got, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deliveries_after = got.lock().unwrap().len();
    assert_eq!(
        deliveries.len(),
        2,
        "one retry, and the disabled webhook hears nothing"
    );
    assert_eq!(deliveries_after, 2);
    let id = |h: &axum::http::HeaderMap| h["x-mlflow-delivery-id"].to_str().unwrap().to_string();
    assert_eq!(
        id(&deliveries[0].0),
        id(&deliveries[1].0),
        "a retry is the same delivery"
    );
    for (headers, body) in &deliveries {
        assert!(verifies(headers, body, SECRET), "{body}");
        assert!(!verifies(headers, body, "another secret"));
        let sent: i64 = headers["x-mlflow-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((sent - chrono::Utc::now().timestamp()).abs() < 300);
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (&body["entity"], &body["action"]),
            (&json!("model_version"), &json!("created"))
        );
        assert_eq!(
            body["data"],
            json!({"name": "fraud", "version": "1", "source": "mlflow-artifacts:/models/fraud",
                   "run_id": null, "tags": {"k": "v"}, "description": null})
        );
    }
}

#[tokio::test]
async fn by_default_mlflow_webhooks_go_only_to_public_https_urls() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let http = reqwest::Client::new();
    let events = json!([{"entity": "REGISTERED_MODEL", "action": "CREATED"}]);
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:10.0.0.1]/hook",
        "https://localhost/hook",
    ] {
        let (status, body) = post_json(
            &http,
            &server.api("webhooks"),
            json!({"name": "h", "url": url, "events": events}),
        )
        .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    }
    let list: Value = http
        .get(server.api("webhooks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!({}), "nothing was saved");
}
