//! Starts the real `twinloop` binary on a free port with its own data directory.

pub mod grpc;
pub mod pipelines;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    pub child: Child,
    pub port: u16,
    pub url: String,
    pub backend_uri: String,
    pub data_dir: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestServer {
    /// Starts a server on SQLite in a fresh directory under `root`.
    pub fn start_sqlite(root: &Path) -> TestServer {
        Self::start_sqlite_with(root, &[])
    }

    /// On SQLite, with more `twinloop server` flags.
    pub fn start_sqlite_with(root: &Path, extra: &[&str]) -> TestServer {
        let uri = format!("sqlite:///{}", root.join("twinloop.db").display());
        Self::start_with(root, &uri, extra)
    }

    pub fn start(root: &Path, backend_uri: &str) -> TestServer {
        Self::start_with(root, backend_uri, &[])
    }

    /// On SQLite, allowing the pipeline repository `repo` (outside `root`) as a location.
    pub fn start_pipelines(root: &Path, repo: &Path) -> TestServer {
        Self::start_sqlite_with(root, &["--allowed-root", repo.to_str().unwrap()])
    }

    /// On SQLite, with these environment variables set for the server.
    pub fn start_sqlite_env(root: &Path, vars: &[(&str, &str)]) -> TestServer {
        let uri = format!("sqlite:///{}", root.join("twinloop.db").display());
        Self::start_full(root, &uri, &[], vars)
    }

    /// On SQLite with `--auth`, its first admin (`admin`) signing in with `admin_password`.
    pub fn start_sqlite_auth(root: &Path, admin_password: &str) -> TestServer {
        Self::start_sqlite_auth_with(root, admin_password, &[])
    }

    /// On SQLite with `--auth` and more `twinloop server` flags.
    pub fn start_sqlite_auth_with(root: &Path, admin_password: &str, extra: &[&str]) -> TestServer {
        let uri = format!("sqlite:///{}", root.join("twinloop.db").display());
        let flags: Vec<&str> = ["--auth"].iter().chain(extra).copied().collect();
        Self::start_full(
            root,
            &uri,
            &flags,
            &[("TWINLOOP_ADMIN_PASSWORD", admin_password)],
        )
    }

    fn start_with(root: &Path, backend_uri: &str, extra: &[&str]) -> TestServer {
        Self::start_full(root, backend_uri, extra, &[])
    }

    /// With `extra` flags and `vars` in the server's environment; an `--artifacts-destination`
    /// among the flags replaces the default (`root/artifacts`).
    pub fn start_full(
        root: &Path,
        backend_uri: &str,
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> TestServer {
        let port = free_port();
        let child = Command::new(server_binary())
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--backend-store-uri", backend_uri])
            .args(extra)
            .envs(vars.iter().copied())
            .args(
                (!extra.contains(&"--artifacts-destination"))
                    .then(|| ["--artifacts-destination".into(), root.join("artifacts")])
                    .into_iter()
                    .flatten(),
            )
            .env(
                "TWINLOOP_LOG",
                std::env::var("TWINLOOP_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start twinloop");
        let server = TestServer {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            backend_uri: backend_uri.to_string(),
            data_dir: root.to_path_buf(),
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply);
                if reply.ends_with("OK") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("twinloop did not become healthy on port {}", self.port);
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.url)
    }

    /// Sends raw bytes and returns the whole reply: for requests an HTTP client would refuse
    /// to send or would normalise (`..` in paths).
    pub fn raw(&self, request: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    /// SIGTERM, then waits: the graceful stop (in-flight requests and logs finish).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh database on the throwaway PostgreSQL named by `TWINLOOP_TEST_POSTGRES_URL`, or
/// `None` when there is none (a failure instead under `TWINLOOP_REQUIRE_ALL_BACKENDS=1`).
pub fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("TWINLOOP_TEST_POSTGRES_URL") else {
        if std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref() == Ok("1") {
            panic!("TWINLOOP_REQUIRE_ALL_BACKENDS=1 but TWINLOOP_TEST_POSTGRES_URL is not set");
        }
        eprintln!("TWINLOOP_TEST_POSTGRES_URL not set: PostgreSQL case skipped");
        return None;
    };
    let name = format!("tl_cli_{}_{}", std::process::id(), free_port());
    let status = Command::new("psql")
        .arg(&admin)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("run psql");
    assert!(status.success(), "CREATE DATABASE failed");
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// The finished prediction-log segments under `dir` (object_store writes a file under a staging
/// name and renames it when complete, so a `.parquet` name is a whole segment).
pub fn prediction_log_segments(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push(path);
            }
        }
    }
    found
}

/// `(role, model_version, request_id)` of every row of the finished segments under `dir`.
pub fn prediction_log_rows(dir: &Path) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for path in prediction_log_segments(dir) {
        let bytes = std::fs::read(&path).unwrap();
        let segment = twinloop_predlog::segment::decode(bytes, &path.display().to_string());
        rows.extend(
            segment
                .unwrap()
                .into_iter()
                .map(|r| (r.role.as_str().to_string(), r.model_version, r.request_id)),
        );
    }
    rows
}

/// Uploads an MLflow model directory (`MLmodel` + `model.onnx`) through the artifact proxy under
/// `prefix` and registers it as the next version of `model`; returns the version.
pub async fn register_model(
    http: &reqwest::Client,
    base: &str,
    model: &str,
    dir: &Path,
    prefix: &str,
    run_id: Option<&str>,
) -> String {
    for file in ["MLmodel", "model.onnx"] {
        let body = std::fs::read(dir.join(file)).unwrap();
        let url = format!("{base}/api/2.0/mlflow-artifacts/artifacts/{prefix}/{file}");
        let r = http.put(url).body(body).send().await.unwrap();
        assert!(r.status().is_success(), "upload {file}: {}", r.status());
    }
    let _ = http
        .post(format!("{base}/api/2.0/mlflow/registered-models/create"))
        .json(&serde_json::json!({"name": model}))
        .send()
        .await;
    let mut version =
        serde_json::json!({"name": model, "source": format!("mlflow-artifacts:/{prefix}")});
    if let Some(run_id) = run_id {
        version["run_id"] = run_id.into();
    }
    let r = http
        .post(format!("{base}/api/2.0/mlflow/model-versions/create"))
        .json(&version)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(status.is_success(), "{body}");
    body["model_version"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until `GET {base}/v2/health/ready` answers 200 (models loaded); panics after 60 s.
pub async fn wait_v2_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/v2/health/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A model directory under crates/twinloop-serving/tests/models.
pub fn serving_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../twinloop-serving/tests/models")
        .join(name)
}

/// POSTs JSON and returns the answer's JSON, failing the test unless the status is 2xx.
pub async fn post_ok(
    http: &reqwest::Client,
    url: &str,
    body: impl serde::Serialize,
) -> serde_json::Value {
    let r = http.post(url).json(&body).send().await.unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// POSTs JSON; returns the status and the answer's JSON (`null` when it is not JSON).
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = http.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The binary servers are started from: this build's, or `TWINLOOP_TEST_SERVER_BIN`. A long
/// fault run copies the binary aside and names it there, so builds during the run (which replace
/// this build's binary) do not change what is being killed halfway through.
fn server_binary() -> std::ffi::OsString {
    std::env::var_os("TWINLOOP_TEST_SERVER_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_twinloop").into())
}
