//! The registry's native surfaces on the real binary: the event stream a serving process
//! follows, the lineage API, and the `twinloop models` / `twinloop lineage` commands.

use std::process::Command;
use std::time::Duration;

use futures_util_like::next_line;
use serde_json::{Value, json};

use crate::support::{self, TestServer};

async fn post(c: &reqwest::Client, url: String, body: Value) -> Value {
    let resp = c.post(url).json(&body).send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

fn twinloop(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(args)
        .env("MLFLOW_TRACKING_URI", &server.url)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads server-sent-event lines from a streaming response without extra dependencies.
mod futures_util_like {
    pub async fn next_line(resp: &mut reqwest::Response, buf: &mut String) -> Option<String> {
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
}

#[tokio::test]
async fn alias_moves_stream_as_events_and_the_cli_drives_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    post(
        &c,
        server.api("registered-models/create"),
        json!({"name": "fraud"}),
    )
    .await;
    for _ in 0..2 {
        post(
            &c,
            server.api("model-versions/create"),
            json!({"name": "fraud", "source": "mlflow-artifacts:/b/m"}),
        )
        .await;
    }

    let mut stream = c
        .get(format!(
            "{}/api/twinloop/v1/registry/events/stream?after=0",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    let (ok, out, err) = twinloop(
        &server,
        &["models", "alias", "set", "fraud", "champion", "2"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("fraud@champion -> version 2"), "{out}");

    // The backlog (model + 2 versions) then the live alias move, in order.
    let mut buf = String::new();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while kinds.len() < 4 && tokio::time::Instant::now() < deadline {
        let line = tokio::time::timeout(Duration::from_secs(10), next_line(&mut stream, &mut buf))
            .await
            .expect("an event arrives")
            .expect("the stream stays open");
        if let Some(kind) = line.strip_prefix("event: ") {
            kinds.push(kind.to_string());
        }
    }
    assert_eq!(
        kinds,
        [
            "MODEL_CREATED",
            "VERSION_CREATED",
            "VERSION_CREATED",
            "ALIAS_SET"
        ]
    );

    let events: Value = c
        .get(format!(
            "{}/api/twinloop/v1/registry/events?after=3",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"][0]["kind"], "ALIAS_SET");
    assert_eq!(events["events"][0]["after"], "2");

    let (ok, out, _) = twinloop(&server, &["models", "list"]);
    assert!(
        ok && out.contains("fraud") && out.contains("champion=2"),
        "{out}"
    );
    let (ok, out, _) = twinloop(&server, &["models", "versions", "fraud"]);
    assert!(ok && out.lines().nth(1).unwrap().starts_with('2'), "{out}");
    let (ok, _, err) = twinloop(&server, &["models", "versions", "missing"]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = twinloop(
        &server,
        &["models", "alias", "set", "fraud", "champion", "7"],
    );
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, out, err) = twinloop(&server, &["models", "alias", "rm", "fraud", "champion"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed"));

    let unreachable = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "models",
            "list",
            "--tracking-uri",
            &format!("http://127.0.0.1:{}", support::free_port()),
        ])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("hint"));
}

#[tokio::test]
async fn lineage_api_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let lineage = |path: &str| format!("{}/api/twinloop/v1/lineage/{path}", server.url);
    let raw = post(&c, lineage("artifacts"), json!({"type": "dataset", "name": "raw", "external_id": "ds:raw", "properties": {"rows": 10}})).await;
    assert_eq!(raw["node"]["properties"]["rows"], 10);
    post(
        &c,
        lineage("executions"),
        json!({"type": "step", "name": "clean", "external_id": "step:clean"}),
    )
    .await;
    post(
        &c,
        lineage("artifacts"),
        json!({"type": "dataset", "name": "clean", "external_id": "ds:clean"}),
    )
    .await;
    post(
        &c,
        lineage("events"),
        json!({"artifact": "ds:raw", "execution": "step:clean", "type": "INPUT"}),
    )
    .await;
    post(
        &c,
        lineage("events"),
        json!({"artifact": "ds:clean", "execution": "step:clean", "type": "OUTPUT"}),
    )
    .await;

    let cycle = c
        .post(lineage("events"))
        .json(&json!({"artifact": "ds:clean", "execution": "step:clean", "type": "INPUT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cycle.status().as_u16(), 400);
    let body: Value = cycle.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("cycle"));
    for (query, status) in [
        ("node=ds:clean&depth=100000", 400),
        ("node=nothing", 404),
        ("node=ds:clean&direction=sideways", 400),
        ("depth=2", 400),
    ] {
        let resp = c
            .get(format!("{}?{query}", lineage("graph")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query}");
    }
    let bad = c
        .post(lineage("artifacts"))
        .json(&json!({"name": "no type"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    let graph: Value = c
        .get(format!(
            "{}?node=ds:clean&direction=upstream",
            lineage("graph")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(graph["edges"].as_array().unwrap().len(), 2);

    let (ok, out, err) = twinloop(
        &server,
        &["lineage", "ds:clean", "--upstream", "--depth", "1"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("step:clean") && !out.contains("ds:raw"),
        "{out}"
    );
    let (ok, out, _) = twinloop(&server, &["lineage", "ds:raw", "--downstream", "--json"]);
    assert!(ok);
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["nodes"].as_array().unwrap().len(), 3);

    let spec: Value = c
        .get(format!("{}/api/twinloop/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.0.3");
    assert!(spec["paths"]["/lineage/graph"].is_object());
}
