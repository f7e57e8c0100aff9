//! The regression corpus of issue 15 (docs/security.md): one case per MLflow advisory (and its
//! relatives in Triton, Feast, ONNX and the SSRF class) that has a surface in twinloop, each
//! named after it and run against the real binary twice: on SQLite and local files
//! (`security::sqlite::…`), and on PostgreSQL and S3 (moto) artifacts
//! (`security::postgres_s3::…`, skipped without `TWINLOOP_TEST_POSTGRES_URL` and
//! `TWINLOOP_TEST_S3_ENDPOINT`, required under `TWINLOOP_REQUIRE_ALL_BACKENDS=1`).
//!
//! Every case runs inside a [`Jail`]: the server's data directory beside a directory holding a
//! secret file, and a loopback "attacker" listener. A case passes only if its requests are
//! refused, no answer carries the secret, the listener was never connected to, and nothing
//! outside the server's directory changed.

mod advisories;
mod identity;
mod locations;
mod outbound;
mod resources;
mod stored;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::support::TestServer;

/// Where a case's server keeps its metadata and artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A fresh database on the throwaway PostgreSQL and a fresh bucket on moto; the data
    /// directory stays an allowed root, as the SQLite database's directory is by default.
    PostgresS3,
}

tokio::task_local! {
    static BACKEND: Backend;
}

impl Backend {
    /// The backend of the case running now.
    pub fn current() -> Backend {
        BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
    }

    /// Runs `case` on this backend, or skips it when the backend's services are not there.
    async fn run<F: std::future::Future<Output = ()>>(self, case: impl FnOnce() -> F) {
        if self == Backend::PostgresS3 {
            let missing: Vec<_> = ["TWINLOOP_TEST_POSTGRES_URL", "TWINLOOP_TEST_S3_ENDPOINT"]
                .into_iter()
                .filter(|v| std::env::var(v).is_err())
                .collect();
            if !missing.is_empty() {
                assert_ne!(
                    std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref(),
                    Ok("1"),
                    "TWINLOOP_REQUIRE_ALL_BACKENDS=1 but {missing:?} not set"
                );
                eprintln!("{missing:?} not set: the PostgreSQL + S3 case is skipped");
                return;
            }
        }
        BACKEND.scope(self, case()).await;
    }
}

/// Each case as a test on both backends (`both`) or on SQLite only (`sqlite_only`: it plants
/// files in the local artifact root).
macro_rules! corpus {
    (both: [$($m:ident::$case:ident),* $(,)?], sqlite_only: [$($lm:ident::$lcase:ident),* $(,)?]) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::Backend::Sqlite.run(super::$m::$case).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $lcase() {
                    super::Backend::Sqlite.run(super::$lm::$lcase).await;
                }
            )*
        }
        mod postgres_s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::Backend::PostgresS3.run(super::$m::$case).await;
                }
            )*
        }
    };
}

corpus! {
    both: [
        locations::cve_2023_1177_a_local_source_outside_the_roots_is_refused,
        locations::cve_2023_2780_and_2356_file_uri_spellings_are_refused,
        locations::cve_2023_6977_proc_self_root_is_refused,
        locations::cve_2026_116690_a_schemeless_relative_source_is_refused,
        locations::cve_2023_6018_and_6974_http_sources_are_never_fetched,
        locations::cve_2023_6909_cve_2024_1483_2928_8859_artifact_locations_are_refused,
        locations::locations_inside_the_roots_and_references_stay_valid,
        locations::an_allowed_root_and_scheme_widen_the_policy,
        locations::cve_2026_27489_a_model_whose_file_links_out_of_its_directory_is_not_deployed,
        locations::a_monitor_reference_outside_the_roots_is_not_read,
        locations::monitor_references_are_read_through_the_artifact_store,
        locations::pipeline_repositories_outside_the_roots_are_refused,
        outbound::cve_2026_2393_native_webhooks_to_internal_addresses_are_refused_at_create,
        outbound::cve_2026_2393_mlflow_webhooks_to_internal_addresses_are_refused_at_create,
        outbound::monitor_alert_webhooks_to_internal_addresses_are_refused_at_create,
        outbound::cve_2026_64849_a_webhook_saved_while_allowed_is_not_delivered_once_disallowed,
        stored::cve_2023_30172_get_artifact_traversal_is_refused,
        stored::webhook_ids_are_never_reused_after_a_delete,
        advisories::cve_2023_1176_absolute_paths_are_refused,
        advisories::cve_2023_3765_absolute_listing_paths_are_refused,
        advisories::cve_2023_6014_users_are_not_created_anonymously,
        advisories::cve_2023_6015_and_6976_artifact_puts_cannot_leave_the_root,
        advisories::cve_2023_6568_errors_are_json_and_echo_no_header,
        advisories::cve_2023_6709_no_server_side_templating_of_names,
        advisories::cve_2023_6753_and_6975_encoded_traversal_in_artifact_paths,
        advisories::cve_2023_6831_double_encoded_delete_is_a_file_name,
        advisories::cve_2023_43472_the_preview_api_is_not_served_cross_origin,
        advisories::cve_2024_1558_validated_and_stored_locations_are_the_same_string,
        advisories::cve_2024_1594_and_3848_fragments_in_locations_are_refused,
        advisories::cve_2024_3099_encoded_names_are_other_names,
        advisories::cve_2024_3573_empty_and_file_schemes_are_local,
        advisories::cve_2024_4263_deleting_artifacts_needs_manage,
        advisories::cve_2024_8859_upload_paths_stay_inside_the_root,
        advisories::cve_2024_6838_oversized_bodies_are_refused,
        advisories::cve_2025_1473_cross_site_signup_is_refused,
        advisories::cve_2025_11200_empty_passwords_are_refused,
        advisories::cve_2026_2635_no_default_admin_password,
        advisories::cve_2026_0545_and_2652_every_route_is_gated,
        advisories::cve_2026_115886_no_scorer_invoke_route,
        advisories::cve_2026_118628_http_artifact_locations_are_not_fetched,
        advisories::huntr_ssrf_artifact_location_is_not_fetched,
        advisories::triton_cve_2023_31036_and_2025_23316_model_names_are_identifiers,
        advisories::triton_cve_2024_0087_no_client_settable_log_or_trace_files,
        advisories::triton_cve_2025_23310_oversized_bodies_are_refused,
        advisories::feast_cve_2026_23536_no_file_path_parameter,
        advisories::feast_cve_2024_11602_no_cors_by_default,
        advisories::onnx_cve_2022_25882_and_2024_27318_external_data_outside_the_model,
        identity::the_event_actor_is_the_signed_in_user,
        resources::a_full_route_class_answers_429_while_others_answer,
        resources::client_errors_name_no_server_path_and_no_sql,
    ],
    sqlite_only: [
        locations::symlinks_in_the_artifact_root_are_not_followed,
        stored::the_prediction_log_is_not_served_listed_or_written_through_the_proxy,
    ]
}

/// A server and what it must never touch: a secret beside its data, and a canary listener.
pub struct Jail {
    pub server: TestServer,
    pub http: reqwest::Client,
    /// The directory beside the server's data; the secret file is in it.
    pub secret_dir: PathBuf,
    pub secret_file: PathBuf,
    /// What the secret file holds; no answer may contain it.
    pub sentinel: String,
    /// The canary's port on 127.0.0.1.
    pub canary: u16,
    connections: Arc<AtomicUsize>,
    before: BTreeMap<PathBuf, Vec<u8>>,
    /// What the backend adds to every start (S3 destination), and the server's environment.
    backend_flags: Vec<String>,
    vars: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Jail {
    pub fn new() -> Jail {
        Self::with(&[])
    }

    /// With more `twinloop server` flags.
    pub fn with(flags: &[&str]) -> Jail {
        Self::start(flags, &[])
    }

    /// With more flags and these environment variables set for the server.
    pub fn with_full(flags: &[&str], vars: &[(&str, &str)]) -> Jail {
        Self::start(flags, vars)
    }

    /// With these environment variables set for the server.
    pub fn with_env(vars: &[(&str, &str)]) -> Jail {
        Self::start(&[], vars)
    }

    /// Stops the server and starts it again on the same data with `flags`.
    pub fn restart(&mut self, flags: &[&str]) {
        self.server.stop();
        let mut all = self.backend_flags.clone();
        all.extend(flags.iter().map(|f| f.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.server =
            TestServer::start_full(&self.data(), &self.server.backend_uri.clone(), &all, &vars);
    }

    fn start(flags: &[&str], vars: &[(&str, &str)]) -> Jail {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("server");
        let secret_dir = dir.path().join("outside");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&secret_dir).unwrap();
        let sentinel = format!("SECRET-{}", uuid_like());
        let secret_file = secret_dir.join("secret.csv");
        std::fs::write(&secret_file, format!("x\n{sentinel}\n")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let canary = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        let before = snapshot(&secret_dir);
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (uri, backend_flags) = match Backend::current() {
            Backend::Sqlite => (
                format!("sqlite:///{}", data.join("twinloop.db").display()),
                Vec::new(),
            ),
            Backend::PostgresS3 => {
                let uri = crate::support::postgres_database().expect("a PostgreSQL database");
                let endpoint = std::env::var("TWINLOOP_TEST_S3_ENDPOINT").unwrap();
                let bucket = format!("tl-jail-{}", uuid_like());
                create_bucket(&endpoint, &bucket);
                for (k, v) in [
                    ("AWS_ENDPOINT_URL", endpoint.as_str()),
                    ("AWS_ACCESS_KEY_ID", "testing"),
                    ("AWS_SECRET_ACCESS_KEY", "testing"),
                    ("AWS_DEFAULT_REGION", "us-east-1"),
                    ("AWS_ALLOW_HTTP", "true"),
                ] {
                    vars.push((k.into(), v.into()));
                }
                let flags = vec![
                    "--artifacts-destination".to_string(),
                    format!("s3://{bucket}/jail"),
                    "--allowed-root".into(),
                    data.display().to_string(),
                ];
                (uri, flags)
            }
        };
        let mut all = backend_flags.clone();
        all.extend(flags.iter().map(|f| f.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = TestServer::start_full(&data, &uri, &all, &env);
        Jail {
            server,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            secret_dir,
            secret_file,
            sentinel,
            canary,
            connections,
            before,
            backend_flags,
            vars,
            dir,
        }
    }

    /// The server's data directory (its SQLite database and artifacts are in it).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    /// Sends `method path` with a JSON body (or none), checks the answer carries no secret and
    /// returns its status and text.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let url = format!("{}{path}", self.server.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.unwrap();
        let status = reply.status().as_u16();
        let text = reply.text().await.unwrap_or_default();
        self.no_leak(&text);
        (status, text)
    }

    /// `call`, expecting a 2xx; the answer's JSON.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self.call(method, path, body.clone()).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} {body:?}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap()
    }

    /// Creates an experiment from `body` (its name, location, …); its id.
    pub async fn experiment(&self, body: Value) -> String {
        let created = self
            .ok("POST", "/api/2.0/mlflow/experiments/create", Some(body))
            .await;
        created["experiment_id"].as_str().unwrap().to_string()
    }

    /// Creates a run in experiment `id`; its id.
    pub async fn run(&self, experiment_id: &str) -> String {
        let created = self
            .ok(
                "POST",
                "/api/2.0/mlflow/runs/create",
                Some(serde_json::json!({"experiment_id": experiment_id})),
            )
            .await;
        created["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `call`, expecting a 4xx in MLflow's error shape.
    pub async fn refused(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self.call(method, path, body.clone()).await;
        assert!(
            (400..500).contains(&status),
            "{method} {path} {body:?}: expected a refusal, got {status} {text}"
        );
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(
            parsed.get("error_code").is_some() || parsed.get("error").is_some(),
            "{path}: not an error body: {text}"
        );
        // No server path beyond what the client sent.
        let sent = body.map(|b| b.to_string()).unwrap_or_default() + path;
        let data = self.data().display().to_string();
        assert!(
            !text.contains(&data) || sent.contains(&data),
            "{path}: the answer names the server's directory: {text}"
        );
        parsed
    }

    pub fn no_leak(&self, text: &str) {
        assert!(!text.contains(&self.sentinel), "the secret leaked: {text}");
    }

    /// The oracles every case ends with.
    pub fn check(self) {
        // Give a delivery the server might have queued the time to reach the canary.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            self.connections.load(Ordering::SeqCst),
            0,
            "the canary listener was connected to"
        );
        assert_eq!(
            snapshot(&self.secret_dir),
            self.before,
            "files outside the server's directory changed"
        );
    }
}

/// moto makes a bucket on an unsigned PUT (real S3 would want credentials).
fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "PUT /{bucket} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
        "{reply}"
    );
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", std::process::id())
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}
