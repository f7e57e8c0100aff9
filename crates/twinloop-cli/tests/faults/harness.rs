//! What the faults share: starting the server and timing how soon it answers, the integrity
//! check, a small tmpfs, a PostgreSQL of the test's own that it may crash, and skipping a fault
//! this machine cannot inject.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::TestServer;

/// Says why the calling test skips its fault (which it then does), or fails it when CI asked for
/// every fault (`TWINLOOP_REQUIRE_ALL_BACKENDS=1`).
pub fn skip(why: &str) {
    assert!(
        std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref() != Ok("1"),
        "TWINLOOP_REQUIRE_ALL_BACKENDS=1 but {why}"
    );
    eprintln!("fault skipped: {why}");
}

/// How many kill cycles a test runs: `TWINLOOP_FAULTS_CYCLES`, else `default`.
pub fn cycles(default: usize) -> usize {
    std::env::var("TWINLOOP_FAULTS_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Starts a server on `backend_uri` with its artifacts under `root`, and the time from the start
/// until it answered an API read (the store open, migrations checked, the port bound).
pub async fn start_timed(root: &Path, backend_uri: &str) -> (TestServer, Duration) {
    let started = Instant::now();
    let (root, uri) = (root.to_path_buf(), backend_uri.to_string());
    let server = tokio::task::spawn_blocking(move || TestServer::start(&root, &uri))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = server.api("experiments/get?experiment_id=0");
    loop {
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (server, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server answered /health but no API read within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `PRAGMA integrity_check` of the SQLite database at `db`: "ok" or what it found.
pub fn sqlite_integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.join("; ")
}

/// `pg_amcheck` of the database at `uri` (its B-tree indexes against their heaps, every heap
/// page's tuples): "ok", or what it found. Crash recovery that left a torn page or an index
/// pointing at a missing row shows here, not in the queries the ledger replays.
pub fn pg_amcheck(uri: &str) -> String {
    // Debian keeps PostgreSQL's own tools off PATH.
    let debian = Path::new("/usr/lib/postgresql/15/bin/pg_amcheck");
    let binary = if debian.exists() {
        debian
    } else {
        Path::new("pg_amcheck")
    };
    let out = Command::new(binary)
        .args([
            "--install-missing",
            "--heapallindexed",
            "--rootdescend",
            uri,
        ])
        .output()
        .expect("run pg_amcheck");
    if out.status.success() && out.stdout.is_empty() {
        "ok".into()
    } else {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Summary of durations: median, 95th percentile, maximum, in milliseconds.
pub fn spread(times: &[Duration]) -> String {
    let mut ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    if ms.is_empty() {
        return "none".into();
    }
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {} ms, p95 {} ms, max {} ms",
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

/// A tmpfs of `size` mounted at a new directory, unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// `Err` says why it could not be mounted (not root, no mount permission).
    pub fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: at.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A PostgreSQL cluster of the test's own (scripts/pg-throwaway.sh), which it may crash and
/// bring back on the same port; removed when dropped.
pub struct OwnPostgres {
    dir: PathBuf,
    pub url: String,
}

fn pg_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-throwaway.sh")
}

fn pg_script_run(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(pg_script())
        .args(args)
        .output()
        .expect("run scripts/pg-throwaway.sh");
    assert!(
        out.status.success(),
        "pg-throwaway.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl OwnPostgres {
    /// Starts one under `dir`; `None` when this machine runs no PostgreSQL for tests (the suite's
    /// sign is `TWINLOOP_TEST_POSTGRES_URL`, as for every PostgreSQL case).
    pub fn start(dir: &Path) -> Option<OwnPostgres> {
        if std::env::var("TWINLOOP_TEST_POSTGRES_URL").is_err() {
            skip("TWINLOOP_TEST_POSTGRES_URL is not set (no PostgreSQL here)");
            return None;
        }
        let dir = dir.to_str().unwrap();
        let url = pg_script_run(&["start", dir]).trim().to_string();
        Some(OwnPostgres {
            dir: dir.into(),
            url,
        })
    }

    /// `pg_ctl stop -m immediate`: every backend dies without a checkpoint, as in a crash.
    pub fn crash(&self) {
        pg_script_run(&["crash", self.dir.to_str().unwrap()]);
    }

    /// Starts it again on the same port (crash recovery replays its WAL).
    pub fn resume(&self) {
        pg_script_run(&["resume", self.dir.to_str().unwrap()]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(pg_script())
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
    }
}
