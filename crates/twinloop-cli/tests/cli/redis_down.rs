//! Redis down under the feature server (issue 17 part 5; docs/reliability.md, "S3 and Redis
//! faults"): while the online store's redis-server is stopped, or paused and not answering,
//! online reads fail at once with a JSON error instead of hanging, materialization fails
//! cleanly, and once Redis is back reads answer again without restarting the feature server and
//! a new materialization brings the online store back to the offline latest values.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::free_port;

/// A redis-server that can be stopped, paused and started again on the same port, without
/// persistence (a restart comes back empty, the worst case for convergence).
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// `None` when redis-server is not installed (a failure under
    /// TWINLOOP_REQUIRE_ALL_BACKENDS=1).
    fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert_ne!(
                std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref(),
                Ok("1"),
                "redis-server is not installed but TWINLOOP_REQUIRE_ALL_BACKENDS=1"
            );
            eprintln!("redis-server not found: the Redis-down test is skipped");
            return None;
        }
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        redis.up();
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the running server; whether it was delivered.
    fn signal(&self, signal: &str) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.down();
    }
}

/// A copy of the example repository on `redis`, its driver view without a TTL so that reads
/// answer the 2024 rows.
fn repo_on(dir: &Path, redis: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/feature_repo");
    let repo = dir.join("repo");
    for sub in ["", "data"] {
        std::fs::create_dir_all(repo.join(sub)).unwrap();
        for entry in std::fs::read_dir(from.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, repo.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::write(
        repo.join("twinloop.yaml"),
        format!("project: rides\nonline_store: {{type: redis, url: \"{redis}\"}}\n"),
    )
    .unwrap();
    let defs = std::fs::read_to_string(repo.join("features.yaml")).unwrap();
    std::fs::write(
        repo.join("features.yaml"),
        defs.replacen("ttl: 1d", "ttl: 0", 1),
    )
    .unwrap();
    repo
}

fn features(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .arg("features")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env("TWINLOOP_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const DRIVERS: [i64; 5] = [1001, 1002, 1003, 1004, 1005];
const FEATURES: [&str; 3] = ["conv_rate", "acc_rate", "avg_daily_trips"];
const START: &str = "2024-01-01T00:00:00Z";
const END: &str = "2024-01-04T00:00:00Z";

/// The offline store's latest value of each feature per driver at END: a point-in-time join
/// with entity rows at END (no TTL), as CSV text per driver.
fn offline_latest(repo: &Path, dir: &Path) -> Vec<Vec<f64>> {
    let entities = dir.join("latest.csv");
    let mut csv = String::from("driver_id,event_timestamp\n");
    for d in DRIVERS {
        csv.push_str(&format!("{d},{END}\n"));
    }
    std::fs::write(&entities, csv).unwrap();
    let output = dir.join("latest-out.csv");
    let refs: Vec<String> = FEATURES
        .iter()
        .map(|f| format!("driver_hourly_stats:{f}"))
        .collect();
    ok(&features(
        repo,
        &[
            "get-historical",
            "--entities",
            entities.to_str().unwrap(),
            "--features",
            &refs.join(","),
            "--output",
            output.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&output).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    DRIVERS
        .iter()
        .map(|d| {
            let row = rows
                .iter()
                .find(|r| r[column("driver_id")] == d.to_string())
                .unwrap();
            FEATURES
                .iter()
                .map(|f| row[column(f)].parse().unwrap())
                .collect()
        })
        .collect()
}

fn ask() -> Value {
    let refs: Vec<String> = FEATURES
        .iter()
        .map(|f| format!("driver_hourly_stats:{f}"))
        .collect();
    json!({"features": refs, "entities": {"driver_id": DRIVERS}})
}

/// One online read: status, answer, time taken.
async fn read(http: &reqwest::Client, base: &str) -> (u16, Value, Duration) {
    let began = Instant::now();
    let r = http
        .post(format!("{base}/get-online-features"))
        .json(&ask())
        .send()
        .await
        .expect("an answer, not a client timeout");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, began.elapsed())
}

/// The online answer's values per driver, in FEATURES order; `None` where a value is missing.
fn online_values(answer: &Value) -> Vec<Vec<Option<f64>>> {
    (0..DRIVERS.len())
        .map(|d| {
            (0..FEATURES.len())
                .map(|f| answer["results"][f + 1]["values"][d].as_f64())
                .collect()
        })
        .collect()
}

fn assert_converged(answer: &Value, offline: &[Vec<f64>]) {
    let online = online_values(answer);
    for (d, (got, want)) in online.iter().zip(offline).enumerate() {
        for (f, (got, want)) in got.iter().zip(want).enumerate() {
            let got = got.unwrap_or_else(|| {
                panic!(
                    "driver {} {} missing online: {answer}",
                    DRIVERS[d], FEATURES[f]
                )
            });
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "driver {} {}: online {got}, offline {want}",
                DRIVERS[d],
                FEATURES[f]
            );
        }
    }
}

/// Reads while Redis does not answer: each must come back within `bound` as a JSON error with
/// 503, which clients retry (Redis may be back any moment), not 500.
async fn reads_fail_fast(
    http: &reqwest::Client,
    base: &str,
    n: usize,
    bound: Duration,
) -> Vec<Duration> {
    let mut took = Vec::new();
    for _ in 0..n {
        let (status, body, elapsed) = read(http, base).await;
        assert_eq!(status, 503, "a read with Redis unavailable: {body}");
        assert_eq!(body["code"], "TEMPORARILY_UNAVAILABLE", "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("redis")),
            "a JSON error naming the online store: {body}"
        );
        assert!(
            elapsed <= bound,
            "a read took {elapsed:?} with Redis unavailable"
        );
        took.push(elapsed);
    }
    took.sort();
    took
}

fn p99(sorted: &[Duration]) -> f64 {
    let i = ((sorted.len() as f64 * 0.99).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_reads_fail_fast_while_redis_is_down_and_materialization_converges_after() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_on(dir.path(), &redis.url());
    ok(&features(&repo, &["apply"]));
    ok(&features(&repo, &["materialize", START, END]));
    let offline = offline_latest(&repo, dir.path());

    let port = free_port();
    let _serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(["features", "--repo", repo.to_str().unwrap(), "serve"])
            .args(["--port", &port.to_string()])
            .env("TWINLOOP_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "the feature server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, answer, _) = read(&http, &base).await;
    assert_eq!(status, 200, "{answer}");
    assert_converged(&answer, &offline);

    // Stopped: connections are refused, so reads fail at once.
    redis.down();
    let stopped = reads_fail_fast(&http, &base, 50, Duration::from_secs(2)).await;
    let began = Instant::now();
    let out = features(&repo, &["materialize", START, END]);
    assert!(
        !out.status.success(),
        "materialize with Redis stopped succeeded"
    );
    let materialize_failed_after = began.elapsed();
    assert!(
        materialize_failed_after < Duration::from_secs(60),
        "materialize took {materialize_failed_after:?} to fail"
    );

    // Back, empty: reads answer again without a restart of the feature server (NOT_FOUND until
    // the next materialization), and materializing converges on the offline values.
    redis.up();
    let back = Instant::now();
    loop {
        let (status, answer, _) = read(&http, &base).await;
        if status == 200 {
            assert!(
                online_values(&answer).iter().flatten().all(Option::is_none),
                "{answer}"
            );
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "reads did not recover within 30 s of Redis coming back: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_after = back.elapsed();
    ok(&features(&repo, &["materialize", START, END]));
    let (status, answer, _) = read(&http, &base).await;
    assert_eq!(status, 200, "{answer}");
    assert_converged(&answer, &offline);

    // Paused: the server accepts nothing and answers nothing; reads must not hang on it.
    assert!(redis.signal("-STOP"));
    let paused = reads_fail_fast(&http, &base, 5, Duration::from_secs(5)).await;
    assert!(redis.signal("-CONT"));
    let resumed = Instant::now();
    loop {
        let (status, answer, _) = read(&http, &base).await;
        if status == 200 {
            assert_converged(&answer, &offline);
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(30),
            "reads did not recover within 30 s of Redis resuming: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "redis down: reads while stopped p99 {:.1} ms (max {:.1} ms, 50 reads); materialize failed \
         after {:.2} s; reads back {:.2} s after restart; converged after one materialization; \
         reads while paused p99 {:.0} ms; back {:.2} s after resume",
        p99(&stopped),
        stopped.last().unwrap().as_secs_f64() * 1000.0,
        materialize_failed_after.as_secs_f64(),
        recovered_after.as_secs_f64(),
        p99(&paused),
        resumed.elapsed().as_secs_f64(),
    );
}

/// A child process killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
