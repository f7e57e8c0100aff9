//! Two replicas on one PostgreSQL and one artifact directory, as N stateless servers behind a
//! load balancer: started together on an empty database, they number versions and refuse
//! duplicate names as one server would; an alias moved through one reaches the other's event
//! stream and a deployment hosted on the other; webhooks are delivered by the lease holder alone,
//! and when it is killed the other takes over within 10 s without delivering anything twice.
//! Skipped without `TWINLOOP_TEST_POSTGRES_URL`.

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
    let shared = root.join("artifacts");
    let start = |name: &str| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (db, shared) = (db.to_string(), shared.clone());
        std::thread::spawn(move || {
            TestServer::start_full(
                &dir,
                &db,
                &[
                    "--artifacts-destination",
                    shared.to_str().unwrap(),
                    "--outbound-allow",
                    "127.0.0.1",
                ],
                &[],
            )
        })
    };
    let (a, b) = (start("a"), start("b"));
    (a.join().unwrap(), b.join().unwrap())
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
