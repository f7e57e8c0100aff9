//! D3 (F3, F4): fsync and write errors injected into the running server with `strace -e inject`.
//! The rule is PostgreSQL's since fsyncgate: a write whose fsync failed is never acknowledged.
//!
//! SQLite commits with `synchronous = FULL` in WAL mode, so every commit fsyncs the WAL. With the
//! WAL's N-th fsync (or write) failing, the request that met the failure is refused and none
//! during which a call failed is acknowledged; with every such call failing nothing is; once the
//! injection stops writes succeed again. Artifact uploads on a local root are fsynced before
//! their answer: with every fsync failing none is acknowledged.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, start_timed};
use crate::ledger::{Ledger, LedgerClient, Outcome, Rng, is_mlflow_error};

/// strace attached to every thread of a running process, injecting faults until dropped.
struct Strace {
    child: Child,
    log: PathBuf,
}

impl Strace {
    /// Attaches to `pid` with `args` (what to trace and inject) and waits until every thread of
    /// the process is traced.
    fn attach(pid: u32, log: &Path, args: &[&str]) -> Strace {
        let child = Command::new("strace")
            .args(["-f", "-qq", "-p", &pid.to_string(), "-o"])
            .arg(log)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run strace");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_traced(pid) {
            assert!(Instant::now() < deadline, "strace did not attach to {pid}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Strace {
            child,
            log: log.to_path_buf(),
        }
    }

    /// How many syscalls it has failed so far.
    fn injected(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("(INJECTED)")
            .count()
    }
}

impl Drop for Strace {
    /// SIGINT: strace detaches and the process runs on untouched.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn all_threads_traced(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("status")).is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
        })
    })
}

fn strace_missing() -> Option<String> {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| "strace is not installed".to_string())
}

/// Writes until one is acknowledged again; returns how long that took.
async fn writes_resume(client: &LedgerClient, run: &str) -> Duration {
    let since = Instant::now();
    while client.log_batch(run, 20).await.acked().is_none() {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "writes did not resume within 30 s of the faults stopping"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    since.elapsed()
}

/// A refusal of a write whose commit failed: a 5xx in MLflow's shape, never a dropped request.
fn assert_clean_refusal<T: std::fmt::Debug>(what: &str, outcome: &Outcome<T>) {
    match outcome {
        Outcome::Refused { status, body } => assert!(
            *status >= 500 && is_mlflow_error(body),
            "{what}: {status} {body}"
        ),
        other => panic!("{what}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_write_is_acknowledged_after_its_wal_fsync_or_write_failed() {
    if let Some(why) = strace_missing() {
        return harness::skip(&why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let db = root.join("twinloop.db");
    let uri = format!("sqlite:///{}", db.display());
    let (mut server, _) = start_timed(&root, &uri).await;
    let ledger = Ledger::new();
    let client = LedgerClient::new(ledger.clone(), &server.url, Duration::from_secs(30));
    let experiment = client.experiment("fsync").await;
    let run = client.create_run(&experiment).await.acked().unwrap();
    // Written by now: strace's -P matches the path its descriptor was opened with.
    let wal = format!("{}-wal", db.display());

    // CI: the first 10 calls of each; `TWINLOOP_FAULTS_INJECT_MAX` for a longer sweep.
    let max_n = std::env::var("TWINLOOP_FAULTS_INJECT_MAX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u32);
    let faults = [
        ("fsync,fdatasync", "EIO"),
        ("write,pwrite64,writev,pwritev", "ENOSPC"),
    ];
    let mut resumed = Vec::new();
    for (calls, errno) in faults {
        for n in 1..=max_n {
            let what = format!("{calls} on the WAL failing with {errno} from call {n} on");
            let log = root.join(format!("strace-{n}-{errno}.log"));
            let strace = Strace::attach(
                server.child.id(),
                &log,
                &[
                    "-e",
                    &format!("trace={calls}"),
                    "-P",
                    &wal,
                    "-e",
                    &format!("inject={calls}:error={errno}:when={n}+"),
                ],
            );
            // Until the first refusal: a request during which a call failed must not be
            // acknowledged, and the refused one must be the one that met the failure.
            let mut refused = false;
            for i in 0..n + 10 {
                let before = strace.injected();
                let outcome = client.log_batch(&run, 50).await;
                let failed = strace.injected() > before;
                match &outcome {
                    Outcome::Acked(()) => assert!(
                        !failed,
                        "{what}: request {i} was acknowledged though a call failed meanwhile"
                    ),
                    refusal => {
                        assert_clean_refusal(&what, refusal);
                        assert!(failed, "{what}: request {i} refused with no call failing");
                        refused = true;
                        break;
                    }
                }
            }
            assert!(
                refused,
                "{what}: nothing was refused ({} calls failed)",
                strace.injected()
            );
            drop(strace);
            // Then with every such call failing, in every thread (strace counts calls per
            // thread, and a new writer connection is a new thread): nothing is acknowledged.
            let strace = Strace::attach(
                server.child.id(),
                &log,
                &[
                    "-e",
                    &format!("trace={calls}"),
                    "-P",
                    &wal,
                    "-e",
                    &format!("inject={calls}:error={errno}"),
                ],
            );
            for i in 0..3 {
                let outcome = client.log_batch(&run, 50).await;
                assert_clean_refusal(&format!("{what}, then all: request {i}"), &outcome);
            }
            drop(strace);
            resumed.push(writes_resume(&client, &run).await);
        }
    }
    eprintln!(
        "{} injections: no write acknowledged after a failed WAL fsync or write; writes resumed \
         after each ({})",
        resumed.len(),
        harness::spread(&resumed)
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    ledger
        .verify(&server.url)
        .await
        .assert_clean("after the injections");
    server.kill9();
    assert_eq!(harness::sqlite_integrity(&db), "ok");
    let (server, _) = start_timed(&root, &uri).await;
    ledger
        .verify(&server.url)
        .await
        .assert_clean("after kill -9 and a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_artifact_upload_is_not_acknowledged_when_its_fsync_fails() {
    if let Some(why) = strace_missing() {
        return harness::skip(&why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let uri = format!("sqlite:///{}", root.join("twinloop.db").display());
    let (server, _) = start_timed(&root, &uri).await;
    let ledger = Ledger::new();
    let client = LedgerClient::new(ledger.clone(), &server.url, Duration::from_secs(30));
    let mut rng = Rng::new(Rng::seed());
    client
        .upload("before", rng.bytes(4096))
        .await
        .acked()
        .unwrap();

    let strace = Strace::attach(
        server.child.id(),
        &root.join("strace.log"),
        &[
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            "inject=fsync,fdatasync:error=EIO",
        ],
    );
    for i in 0..5 {
        let outcome = client.upload("failing", rng.bytes(64 * 1024)).await;
        assert_clean_refusal(&format!("upload {i} with every fsync failing"), &outcome);
    }
    assert!(strace.injected() > 0, "no fsync was attempted");
    drop(strace);
    let since = Instant::now();
    while client
        .upload("after", rng.bytes(4096))
        .await
        .acked()
        .is_none()
    {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "uploads did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ledger
        .verify(&server.url)
        .await
        .assert_clean("uploads after failed fsyncs");
}
