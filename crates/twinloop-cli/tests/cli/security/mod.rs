//! The regression corpus of issue 15 (docs/security.md): one case per MLflow advisory (and its
//! relatives in ONNX and the SSRF class) that has a surface in twinloop, each named after it and
//! run against the real binary on SQLite and local files.
//!
//! Every case runs inside a [`Jail`]: the server's data directory beside a directory holding a
//! secret file, and a loopback "attacker" listener. A case passes only if its requests are
//! refused, no answer carries the secret, the listener was never connected to, and nothing
//! outside the server's directory changed.

mod locations;
mod outbound;
mod stored;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::support::TestServer;

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

    /// With these environment variables set for the server.
    pub fn with_env(vars: &[(&str, &str)]) -> Jail {
        Self::start(&[], vars)
    }

    /// Stops the server and starts it again on the same data with `flags`.
    pub fn restart(&mut self, flags: &[&str]) {
        self.server.stop();
        self.server = TestServer::start_sqlite_with(&self.data(), flags);
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
        let server = if vars.is_empty() {
            TestServer::start_sqlite_with(&data, flags)
        } else {
            TestServer::start_sqlite_env(&data, vars)
        };
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
