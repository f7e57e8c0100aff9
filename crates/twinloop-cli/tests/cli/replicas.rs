//! Two replicas on one PostgreSQL and one artifact directory, as N stateless servers behind a
//! load balancer: started together on an empty database, they number versions and refuse
//! duplicate names as one server would; an alias moved through one reaches the other's event
//! stream and a deployment hosted on the other; webhooks are delivered by the lease holder alone,
//! and when it is killed the other takes over within 10 s without delivering anything twice;
//! pipeline triggers fire once, and only a dead replica's runs are settled; a canary steps once
//! per step and finishes on the survivor when the replica deciding it is killed, and is judged
//! on the traffic of every replica; a replica stopped gracefully gives its leases up at once;
//! monitor events committed out of order each start one run; a pipeline run is canceled through
//! any replica, and its concurrency policy counts every replica's runs; four replicas started
//! together on an empty database all come up. Skipped without `TWINLOOP_TEST_POSTGRES_URL`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, TestServer};

/// Both replicas, started at the same moment against `db` (an empty database).
fn start_two(root: &Path, db: &str) -> (TestServer, TestServer) {
    let mut both = start_replicas(root, db, 2, &[]);
    let b = both.pop().unwrap();
    (both.pop().unwrap(), b)
}

/// `n` replicas started at the same moment against `db`, sharing `root/artifacts`, each with
/// the `extra` flags.
fn start_replicas(root: &Path, db: &str, n: usize, extra: &[&str]) -> Vec<TestServer> {
    let starting: Vec<_> = (0..n)
        .map(|i| {
            let (root, db) = (root.to_path_buf(), db.to_string());
            let extra: Vec<String> = extra.iter().map(|s| (*s).to_string()).collect();
            std::thread::spawn(move || {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                start_replica(&root, &db, i, &extra)
            })
        })
        .collect();
    starting.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Replica `i` against `db`, sharing `root/artifacts`, with the `extra` flags.
fn start_replica(root: &Path, db: &str, i: usize, extra: &[&str]) -> TestServer {
    let dir = root.join(format!("replica{i}"));
    std::fs::create_dir_all(&dir).unwrap();
    let shared = root.join("artifacts");
    let mut flags = vec![
        "--artifacts-destination",
        shared.to_str().unwrap(),
        "--outbound-allow",
        "127.0.0.1",
    ];
    flags.extend(extra);
    TestServer::start_full(&dir, db, &flags, &[])
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = c.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_number_versions_and_refuse_duplicates_as_one_server() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_two(dir.path(), &db);
    let c = reqwest::Client::new();
    let (status, body) = post(
        &c,
        a.api("registered-models/create"),
        json!({"name": "fraud"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let creates = (0..200).map(|i| {
        let (c, url) = (c.clone(), [&a, &b][i % 2].api("model-versions/create"));
        tokio::spawn(async move {
            post(
                &c,
                url,
                json!({"name": "fraud", "source": format!("mlflow-artifacts:/m/{i}")}),
            )
            .await
        })
    });
    let mut versions = Vec::new();
    for created in creates.collect::<Vec<_>>() {
        let (status, body) = created.await.unwrap();
        assert_eq!(status, 200, "{body}");
        versions.push(
            body["model_version"]["version"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
    }
    versions.sort();
    assert_eq!(versions, (1..=200).collect::<Vec<_>>());

    let creates = (0..50).map(|i| {
        let (c, url) = (c.clone(), [&a, &b][i % 2].api("experiments/create"));
        tokio::spawn(async move { post(&c, url, json!({"name": "shared"})).await })
    });
    let (mut ok, mut exists) = (0, 0);
    for created in creates.collect::<Vec<_>>() {
        match created.await.unwrap() {
            (200, _) => ok += 1,
            (400, body) if body["error_code"] == "RESOURCE_ALREADY_EXISTS" => exists += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, exists), (1, 49));
}

/// The next line of a server-sent event stream.
async fn next_line(resp: &mut reqwest::Response, buf: &mut String) -> Option<String> {
    loop {
        if let Some(i) = buf.find('\n') {
            let line = buf[..i].to_string();
            buf.drain(..=i);
            return Some(line);
        }
        let chunk = resp.chunk().await.ok()??;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_moved_through_one_replica_reaches_the_other() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_two(dir.path(), &db);
    let c = reqwest::Client::new();
    let model = support::serving_fixture("logreg");
    for _ in 0..2 {
        support::register_model(&c, &a.url, "fraud", &model, "sources/fraud", None).await;
    }
    let (status, body) = post(
        &c,
        a.api("registered-models/alias"),
        json!({"name": "fraud", "alias": "champion", "version": "1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &c,
        format!("{}/api/twinloop/v1/deployments", b.url),
        json!({"name": "fraud", "routes": [{"model": "fraud", "alias": "champion"}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let events: Value = c
        .get(format!("{}/api/twinloop/v1/registry/events", b.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen = events["events"].as_array().unwrap().last().unwrap()["id"].clone();
    let mut stream = c
        .get(format!(
            "{}/api/twinloop/v1/registry/events/stream?after={seen}",
            b.url
        ))
        .send()
        .await
        .unwrap();

    let moved = Instant::now();
    let (status, body) = post(
        &c,
        a.api("registered-models/alias"),
        json!({"name": "fraud", "alias": "champion", "version": "2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let mut buf = String::new();
    let data = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), next_line(&mut stream, &mut buf))
            .await
            .expect("B's stream hears the alias moved through A")
            .expect("the stream stays open");
        if let Some(data) = line.strip_prefix("data: ") {
            break serde_json::from_str::<Value>(data).unwrap();
        }
    };
    assert_eq!(
        (
            data["kind"].as_str(),
            data["alias"].as_str(),
            data["after"].as_str()
        ),
        (Some("ALIAS_SET"), Some("champion"), Some("2")),
        "{data}"
    );

    // A client reconnecting through the other replica resumes after the last id it saw.
    let mut again = c
        .get(format!("{}/api/twinloop/v1/registry/events/stream", a.url))
        .header("Last-Event-ID", seen.to_string())
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let resumed = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), next_line(&mut again, &mut buf))
            .await
            .expect("A's stream resumes")
            .expect("the stream stays open");
        if let Some(data) = line.strip_prefix("data: ") {
            break serde_json::from_str::<Value>(data).unwrap();
        }
    };
    assert_eq!(resumed, data, "the first event after Last-Event-ID");

    let infer = json!({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.1]}]});
    loop {
        let answer: Value = c
            .post(format!("{}/v2/models/fraud/infer", b.url))
            .json(&infer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["model_version"] == "2" {
            break;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(30),
            "the deployment on B never followed the alias: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A receiver that answers 200 and records each delivery's body.
fn receiver() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            log.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let _ = reader
                .into_inner()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

/// The pid in the name of the holder of lease `name` (holders are named `pid<N>-…`).
fn lease_holder_pid(db: &str, name: &str) -> Option<u32> {
    let out = Command::new("psql")
        .arg(db)
        .args(["-At", "-c"])
        .arg(format!(
            "SELECT holder FROM leases WHERE name = '{name}' AND expires_at > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
        ))
        .output()
        .expect("run psql");
    let holder = String::from_utf8(out.stdout).unwrap();
    holder
        .trim()
        .strip_prefix("pid")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

async fn wait_deliveries(got: &Arc<Mutex<Vec<Value>>>, n: usize, within: Duration) -> Duration {
    let start = Instant::now();
    while got.lock().unwrap().len() < n {
        assert!(
            start.elapsed() < within,
            "{} deliveries after {within:?}, wanted {n}",
            got.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_webhook_lease_holder_hands_delivery_over_within_ten_seconds_once() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_two(dir.path(), &db);
    let c = reqwest::Client::new();
    let (port, got) = receiver();
    let (status, body) = post(
        &c,
        format!("{}/api/twinloop/v1/registry/webhooks", a.url),
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": "a-long-shared-secret", "events": ["ALIAS_SET"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    post(
        &c,
        a.api("registered-models/create"),
        json!({"name": "fraud"}),
    )
    .await;
    for i in 0..2 {
        let (status, body) = post(
            &c,
            b.api("model-versions/create"),
            json!({"name": "fraud", "source": format!("mlflow-artifacts:/m/{i}")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let alias = |server: &TestServer, version: &str| {
        post(
            &c,
            server.api("registered-models/alias"),
            json!({"name": "fraud", "alias": "champion", "version": version}),
        )
    };
    // Through each replica: delivered once each, by the holder alone.
    assert_eq!(alias(&a, "1").await.0, 200);
    assert_eq!(alias(&b, "2").await.0, 200);
    wait_deliveries(&got, 2, Duration::from_secs(10)).await;

    let holder = lease_holder_pid(&db, "webhooks").expect("one replica holds the webhook lease");
    let (mut dead, survivor) = if holder == a.child.id() {
        (a, b)
    } else {
        assert_eq!(holder, b.child.id(), "the holder is one of the replicas");
        (b, a)
    };
    dead.kill9();
    assert_eq!(alias(&survivor, "1").await.0, 200);
    let took = wait_deliveries(&got, 3, Duration::from_secs(10)).await;
    eprintln!("delivery resumed {took:?} after the holder was killed");
    assert_eq!(
        lease_holder_pid(&db, "webhooks"),
        Some(survivor.child.id()),
        "the survivor holds the lease now"
    );

    // Nothing more comes: no event was delivered twice.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = got.lock().unwrap();
    let versions: Vec<&str> = got
        .iter()
        .map(|d| d["after"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(versions, ["1", "2", "1"], "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_started_together_on_an_empty_database_all_come_up() {
    let c = reqwest::Client::new();
    for round in 0..3 {
        let Some(db) = support::postgres_database() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let replicas = start_replicas(dir.path(), &db, 4, &[]);
        for (i, r) in replicas.iter().enumerate() {
            let (status, body) = post(
                &c,
                r.api("experiments/create"),
                json!({"name": format!("e{i}")}),
            )
            .await;
            assert_eq!(status, 200, "round {round}, replica {i}: {body}");
        }
    }
}

async fn get(c: &reqwest::Client, url: String) -> Value {
    let r = c.get(&url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// The runs of `pipeline` as `server` reports them, newest first.
async fn pipeline_runs(c: &reqwest::Client, server: &TestServer, pipeline: &str) -> Vec<Value> {
    let url = format!(
        "{}/api/twinloop/v1/runs?pipeline={pipeline}&limit=1000",
        server.url
    );
    get(c, url).await["runs"].as_array().cloned().unwrap()
}

async fn run_state(c: &reqwest::Client, server: &TestServer, id: &str) -> Value {
    get(c, format!("{}/api/twinloop/v1/runs/{id}", server.url)).await
}

/// Polls `check` every 100 ms until it answers, failing after `within`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    check: impl Fn() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The replica whose pid holds lease `name`, and the other.
fn holder_and_other(
    db: &str,
    name: &str,
    a: TestServer,
    b: TestServer,
) -> (TestServer, TestServer) {
    let holder = lease_holder_pid(db, name).unwrap_or_else(|| panic!("nobody holds {name}"));
    if holder == a.child.id() {
        (a, b)
    } else {
        assert_eq!(holder, b.child.id(), "the holder is one of the replicas");
        (b, a)
    }
}

const RETRAIN: &str = "pipeline: retrain
triggers:
  - registry: {event: VERSION_CREATED, model: fraud}
policy:
  concurrency: {max: 10, on_conflict: queue}
steps:
  a: {run: 'true'}
";

// Two slots: the concurrency policy counts the runs of every replica.
const SLOW: &str = "pipeline: slow
policy: {on_restart: fail, concurrency: {max: 2}}
steps:
  a: {run: sleep 15}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_triggers_fire_once_and_only_a_dead_replicas_runs_are_settled() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let repo_flag = repo.to_str().unwrap().to_string();
    let mut both = start_replicas(dir.path(), &db, 2, &["--allowed-root", &repo_flag]);
    let (b, a) = (both.pop().unwrap(), both.pop().unwrap());
    let client = reqwest::Client::new();
    let c = &client;
    for (server, spec) in [(&a, RETRAIN), (&b, SLOW)] {
        let (status, body) = post(
            c,
            format!("{}/api/twinloop/v1/pipelines", server.url),
            json!({"spec": spec, "repo": repo_flag, "file": "p.yaml"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    post(
        c,
        a.api("registered-models/create"),
        json!({"name": "fraud"}),
    )
    .await;
    // Versions through both replicas: each event starts one run, whoever polls.
    for i in 0..6 {
        let (status, body) = post(
            c,
            [&a, &b][i % 2].api("model-versions/create"),
            json!({"name": "fraud", "source": format!("mlflow-artifacts:/m/{i}")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let b_ref = &b;
    let fired = until(
        "six registry runs",
        Duration::from_secs(15),
        move || async move {
            let runs = pipeline_runs(c, b_ref, "retrain").await;
            let ended = |r: &Value| r["state"] != "QUEUED" && r["state"] != "RUNNING";
            (runs.len() >= 6 && runs.iter().all(ended)).then_some(runs)
        },
    )
    .await;
    assert!(
        fired.iter().all(|r| r["state"] == "SUCCEEDED"),
        "{fired:#?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = pipeline_runs(c, &a, "retrain").await;
    assert_eq!(again.len(), 6, "one run per event: {again:?}");
    let mut events: Vec<i64> = fired
        .iter()
        .map(|r| r["cause"]["registry_event_id"].as_i64().unwrap())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), 6, "{fired:?}");

    // A run on each replica; then the lease holder dies.
    let (mut holder, survivor) = holder_and_other(&db, "pipelines", a, b);
    let mut ids = Vec::new();
    for server in [&holder, &survivor] {
        let url = format!("{}/api/twinloop/v1/pipelines/slow/runs", server.url);
        let (status, body) = post(c, url, json!({})).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let (on_holder, on_survivor) = (ids[0].as_str(), ids[1].as_str());
    let s = &survivor;
    for id in [on_holder, on_survivor] {
        until(
            "the run to start",
            Duration::from_secs(10),
            move || async move { (run_state(c, s, id).await["state"] == "RUNNING").then_some(()) },
        )
        .await;
    }
    holder.kill9();
    let killed = Instant::now();
    let settled = until(
        "the dead replica's run settled",
        Duration::from_secs(12),
        move || async move {
            let run = run_state(c, s, on_holder).await;
            (run["state"] == "FAILED").then_some(run)
        },
    )
    .await;
    eprintln!(
        "the dead replica's run was settled {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        settled["reason"].as_str().unwrap().contains("interrupted"),
        "{settled}"
    );
    let own = run_state(c, s, on_survivor).await;
    assert_ne!(
        own["state"], "FAILED",
        "the survivor's own run goes on: {own}"
    );
    assert_eq!(
        lease_holder_pid(&db, "pipelines"),
        Some(survivor.child.id()),
        "the survivor holds the lease now"
    );

    // Triggers fire on the survivor now.
    let (status, body) = post(
        c,
        survivor.api("model-versions/create"),
        json!({"name": "fraud", "source": "mlflow-artifacts:/m/late"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    until(
        "a registry run on the survivor",
        Duration::from_secs(10),
        move || async move { (pipeline_runs(c, s, "retrain").await.len() == 7).then_some(()) },
    )
    .await;
    let finished = until(
        "the survivor's run to end",
        Duration::from_secs(20),
        move || async move {
            let run = run_state(c, s, on_survivor).await;
            (run["state"] != "RUNNING").then_some(run)
        },
    )
    .await;
    assert_eq!(finished["state"], "SUCCEEDED", "{finished}");
}

/// A deployment's status as `server` reports it, or `None` while it has none of that name.
async fn deployment(c: &reqwest::Client, server: &TestServer, name: &str) -> Option<Value> {
    let url = format!("{}/api/twinloop/v1/deployments/{name}", server.url);
    let r = c.get(&url).send().await.unwrap();
    if !r.status().is_success() {
        return None;
    }
    Some(r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_steps_once_per_step_and_finishes_on_the_survivor() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_two(dir.path(), &db);
    let client = reqwest::Client::new();
    let c = &client;
    let model = support::serving_fixture("logreg");
    for _ in 0..2 {
        support::register_model(c, &a.url, "fraud", &model, "sources/fraud", None).await;
    }
    let (mut decider, survivor) = holder_and_other(&db, "deployments", a, b);
    let s = &survivor;
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/deployments", decider.url),
        json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    until(
        "the other replica to serve it, from the store",
        Duration::from_secs(10),
        move || async move { deployment(c, s, "fraud").await },
    )
    .await;
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/deployments/fraud/canary", decider.url),
        json!({"candidate": {"model": "fraud", "version": "2"}, "steps": [20, 50, 100], "interval_s": 3.0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    until(
        "the first step judged",
        Duration::from_secs(10),
        move || async move {
            let d = deployment(c, s, "fraud").await?;
            (d["state"]["canary"]["percent"] == 50).then_some(())
        },
    )
    .await;
    decider.kill9();
    let done = until(
        "the canary to finish on the survivor",
        Duration::from_secs(30),
        move || async move {
            let d = deployment(c, s, "fraud").await?;
            (d["state"]["canary"]["status"] != "running").then_some(d)
        },
    )
    .await;
    let canary = &done["state"]["canary"];
    assert_eq!(canary["status"], "promoted", "{done}");
    let percents: Vec<i64> = canary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["percent"].as_i64().unwrap())
        .collect();
    assert_eq!(percents, [20, 50, 100], "each step judged once: {done}");
    let notes: Vec<&str> = done["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    for step in ["20%", "50%", "100%"] {
        let note = format!("canary models:/fraud/2: {step}");
        assert_eq!(
            notes.iter().filter(|n| **n == note).count(),
            1,
            "{note} once: {notes:?}"
        );
    }
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.starts_with("canary promoted"))
            .count(),
        1,
        "{notes:?}"
    );
    let infer = json!({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.1]}]});
    let answer: Value = c
        .post(format!("{}/v2/models/fraud/infer", survivor.url))
        .json(&infer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["model_version"], "2", "{answer}");
}

const ON_ALERT: &str = "pipeline: onalert
triggers:
  - monitor: {event: retrain_requested}
policy:
  concurrency: {max: 10, on_conflict: queue}
steps:
  a: {run: 'true'}
";

/// Whether a session of `db` is inside `pg_sleep` now.
fn someone_sleeps(db: &str) -> bool {
    let out = Command::new("psql")
        .arg(db)
        .args(["-At", "-c"])
        .arg("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
        .output()
        .expect("run psql");
    String::from_utf8_lossy(&out.stdout).trim() != "0"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_events_committed_out_of_order_each_start_one_run() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let repo_flag = repo.to_str().unwrap().to_string();
    let mut both = start_replicas(dir.path(), &db, 2, &["--allowed-root", &repo_flag]);
    let (b, a) = (both.pop().unwrap(), both.pop().unwrap());
    let client = reqwest::Client::new();
    let c = &client;
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/pipelines", a.url),
        json!({"spec": ON_ALERT, "repo": repo_flag, "file": "p.yaml"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let insert = "INSERT INTO monitor_events (monitor, kind, time, payload) \
                  VALUES ('m', 'retrain_requested', 0, '{}') RETURNING id";
    // The lower id is taken first and committed seconds after the higher one.
    let mut late = Command::new("psql")
        .arg(&db)
        .args(["-q", "-c"])
        .arg(format!("BEGIN; {insert}; SELECT pg_sleep(4); COMMIT;"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run psql");
    let dbr = db.as_str();
    until(
        "the late transaction to hold its id",
        Duration::from_secs(10),
        move || async move { someone_sleeps(dbr).then_some(()) },
    )
    .await;
    let out = Command::new("psql")
        .arg(&db)
        .args(["-At", "-c", insert])
        .output()
        .unwrap();
    let early: i64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the early event's id");
    let b_ref = &b;
    until(
        "a run for the event committed first",
        Duration::from_secs(10),
        move || async move { (!pipeline_runs(c, b_ref, "onalert").await.is_empty()).then_some(()) },
    )
    .await;
    assert!(late.wait().unwrap().success());
    let runs = until(
        "a run for the event committed late",
        Duration::from_secs(15),
        move || async move {
            let runs = pipeline_runs(c, b_ref, "onalert").await;
            (runs.len() >= 2).then_some(runs)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs_now = pipeline_runs(c, &a, "onalert").await;
    assert_eq!(runs_now.len(), 2, "one run per event: {runs_now:#?}");
    let mut ids: Vec<i64> = runs
        .iter()
        .map(|r| r["cause"]["monitor_event_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [early - 1, early], "{runs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_gracefully_hands_its_leases_over_at_once() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    const LEASES: [&str; 4] = ["deployments", "pipelines", "monitors", "webhooks"];
    let dir = tempfile::tempdir().unwrap();
    // The first replica alone until it holds every lease, so that the one stopped holds them all.
    let mut decider = start_replica(dir.path(), &db, 0, &[]);
    let (dbr, pid) = (db.as_str(), decider.child.id());
    until(
        "the first replica to hold every lease",
        Duration::from_secs(10),
        move || async move {
            LEASES
                .iter()
                .all(|l| lease_holder_pid(dbr, l) == Some(pid))
                .then_some(())
        },
    )
    .await;
    let survivor = start_replica(dir.path(), &db, 1, &[]);
    let client = reqwest::Client::new();
    let c = &client;
    let (port, got) = receiver();
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/registry/webhooks", survivor.url),
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": "a-long-shared-secret", "events": ["ALIAS_SET"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let model = support::serving_fixture("logreg");
    for _ in 0..2 {
        support::register_model(c, &decider.url, "fraud", &model, "sources/fraud", None).await;
    }
    let s = &survivor;
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/deployments", survivor.url),
        json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/deployments/fraud/canary", survivor.url),
        json!({"candidate": {"model": "fraud", "version": "2"}, "steps": [50, 100], "interval_s": 1.0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    decider.stop();
    let stopped = Instant::now();
    for lease in LEASES {
        assert_ne!(
            lease_holder_pid(&db, lease),
            Some(pid),
            "{lease} is given up by a graceful stop, not left to expire"
        );
    }
    let sid = survivor.child.id();
    for lease in LEASES {
        until(
            &format!("the survivor to hold the {lease} lease"),
            Duration::from_secs(10),
            move || async move { (lease_holder_pid(dbr, lease) == Some(sid)).then_some(()) },
        )
        .await;
    }
    let took = stopped.elapsed();
    eprintln!("the survivor holds every lease {took:?} after the graceful stop");
    // Its next attempt, every 2 s; the stopped holder's leases had up to 6 s left.
    assert!(took < Duration::from_millis(3500), "{took:?}");
    let done = until(
        "the canary to finish on the survivor",
        Duration::from_secs(15),
        move || async move {
            let d = deployment(c, s, "fraud").await?;
            (d["state"]["canary"]["status"] != "running").then_some(d)
        },
    )
    .await;
    assert_eq!(done["state"]["canary"]["status"], "promoted", "{done}");
    // Moved through the survivor, delivered by it: webhook delivery was handed over too.
    let (status, body) = post(
        c,
        survivor.api("registered-models/alias"),
        json!({"name": "fraud", "alias": "champion", "version": "1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_deliveries(&got, 1, Duration::from_secs(10)).await;
}

/// Sends `n` inference requests for version `version` of deployment `fraud` through `server`,
/// well-formed or with a row the model refuses; answers how many failed.
async fn infer_version(
    c: &reqwest::Client,
    server: &TestServer,
    version: &str,
    n: usize,
    good: bool,
) -> usize {
    let row = if good {
        json!({"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.1]})
    } else {
        json!({"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1.0, 2.0]})
    };
    let url = format!("{}/v2/models/fraud/versions/{version}/infer", server.url);
    let mut failed = 0;
    for _ in 0..n {
        let r = c
            .post(&url)
            .json(&json!({"inputs": [row]}))
            .send()
            .await
            .unwrap();
        failed += usize::from(!r.status().is_success());
    }
    failed
}

/// Starts a canary of version 2 through `server` and sends it requests there (well-formed or
/// not) until it ends; answers the canary's final state.
async fn canary_fed_through(c: &reqwest::Client, server: &TestServer, good: bool) -> Value {
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/deployments/fraud/canary", server.url),
        json!({"candidate": {"model": "fraud", "version": "2"}, "steps": [50, 100], "interval_s": 2.0, "max_error_rate": 0.1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    loop {
        let failed = infer_version(c, server, "2", 5, good).await;
        assert_eq!(failed == 0, good, "{failed} of 5 failed");
        let d = deployment(c, server, "fraud").await.unwrap();
        if d["state"]["canary"]["status"] != "running" {
            return d["state"]["canary"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the canary did not end: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_is_judged_on_the_traffic_of_every_replica() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_two(dir.path(), &db);
    let client = reqwest::Client::new();
    let c = &client;
    let model = support::serving_fixture("logreg");
    for _ in 0..2 {
        support::register_model(c, &a.url, "fraud", &model, "sources/fraud", None).await;
    }
    // Every request goes through the replica that does not decide.
    let (decider, other) = holder_and_other(&db, "deployments", a, b);
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/deployments", other.url),
        json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let failing = canary_fed_through(c, &other, false).await;
    assert_eq!(failing["status"], "rolled_back", "{failing}");
    let step = &failing["steps"][0];
    assert!(step["requests"].as_i64().unwrap() > 0, "{failing}");
    assert_eq!(step["errors"], step["requests"], "{failing}");
    assert!(
        failing["reason"].as_str().unwrap().contains("error rate"),
        "{failing}"
    );

    let healthy = canary_fed_through(c, &other, true).await;
    assert_eq!(healthy["status"], "promoted", "{healthy}");
    for step in healthy["steps"].as_array().unwrap() {
        assert!(step["requests"].as_i64().unwrap() > 0, "{healthy}");
        assert_eq!(step["errors"], 0, "{healthy}");
    }
    assert_eq!(
        lease_holder_pid(&db, "deployments"),
        Some(decider.child.id()),
        "the same replica decided throughout"
    );
}

const ONE_AT_A_TIME: &str = "pipeline: one
policy:
  concurrency: {max: 1, on_conflict: queue}
steps:
  a: {run: sleep 30}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_canceled_and_counted_through_any_replica() {
    let Some(db) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let repo_flag = repo.to_str().unwrap().to_string();
    let mut both = start_replicas(dir.path(), &db, 2, &["--allowed-root", &repo_flag]);
    let (b, a) = (both.pop().unwrap(), both.pop().unwrap());
    let client = reqwest::Client::new();
    let c = &client;
    let (status, body) = post(
        c,
        format!("{}/api/twinloop/v1/pipelines", a.url),
        json!({"spec": ONE_AT_A_TIME, "repo": repo_flag, "file": "p.yaml"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let start = |server: &TestServer| {
        let url = format!("{}/api/twinloop/v1/pipelines/one/runs", server.url);
        async move {
            let (status, body) = post(c, url, json!({})).await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().to_string()
        }
    };
    let state_is = |server: &TestServer, id: String, wanted: &'static str| {
        let url = server.url.clone();
        move || {
            let (url, id) = (url.clone(), id.clone());
            async move {
                let run = get(c, format!("{url}/api/twinloop/v1/runs/{id}")).await;
                (run["state"] == wanted).then_some(run)
            }
        }
    };
    let first = start(&a).await;
    until(
        "the first run to start",
        Duration::from_secs(10),
        state_is(&b, first.clone(), "RUNNING"),
    )
    .await;
    // One slot, taken on the other replica: the second run waits.
    let second = start(&b).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = run_state(c, &a, &second).await;
    assert_eq!(waiting["state"], "QUEUED", "{waiting}");

    // Canceled through the replica that does not execute it.
    let url = format!("{}/api/twinloop/v1/runs/{first}/cancel", b.url);
    let (status, body) = post(c, url, json!({})).await;
    assert_eq!(status, 200, "{body}");
    until(
        "the first run canceled by its executor",
        Duration::from_secs(10),
        state_is(&a, first.clone(), "CANCELED"),
    )
    .await;
    until(
        "the second run to take the freed slot",
        Duration::from_secs(10),
        state_is(&a, second.clone(), "RUNNING"),
    )
    .await;
    let url = format!("{}/api/twinloop/v1/runs/{second}/cancel", a.url);
    let (status, body) = post(c, url, json!({})).await;
    assert_eq!(status, 200, "{body}");
    until(
        "the second run canceled by its executor",
        Duration::from_secs(10),
        state_is(&b, second.clone(), "CANCELED"),
    )
    .await;
}
