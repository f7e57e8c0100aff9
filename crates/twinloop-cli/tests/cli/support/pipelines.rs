//! `twinloop pipeline …` against a test server, and bounded waits for what its runs do.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestServer;

/// `twinloop pipeline --repo REPO ARGS --server URL`.
pub fn pipeline(server: &TestServer, repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["pipeline", "--repo"])
        .arg(repo)
        .args(args)
        .args(["--server", &server.url])
        .output()
        .expect("run twinloop")
}

/// The command's stdout, failing the test (with both streams) unless it exited 0.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

/// The runs of pipeline `name`, newest first.
pub fn runs(server: &TestServer, repo: &Path, name: &str) -> Vec<Value> {
    let out = pipeline(server, repo, &["runs", name, "--json"]);
    json(&out)["runs"].as_array().cloned().unwrap_or_default()
}

/// Polls `check` until it answers, failing the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
