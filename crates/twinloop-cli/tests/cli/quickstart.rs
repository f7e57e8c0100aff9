//! A25: `twinloop quickstart` closes the dual loop on the real binary, and `--scenario
//! bad-model` ends with the gate's rejection. Beyond its exit code, the store it leaves is
//! read back through a server: who is champion, which runs ran and why, what the canary did.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::TestServer;

fn quickstart(dir: &Path, scenario: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["quickstart", "--dir"])
        .arg(dir)
        .args(["--scenario", scenario])
        .env("TWINLOOP_LOG", "warn")
        .output()
        .expect("run twinloop quickstart")
}

/// A server on the store the quickstart left in `dir`.
fn reopen(dir: &Path) -> TestServer {
    let uri = format!(
        "sqlite:///{}",
        dir.join("twinloop-data/twinloop.db").display()
    );
    TestServer::start(&dir.join("twinloop-data"), &uri)
}

async fn get(server: &TestServer, path: &str) -> Value {
    reqwest::get(format!("{}{path}", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn champion(server: &TestServer) -> String {
    let answer = get(
        server,
        "/api/2.0/mlflow/registered-models/alias?name=fraud&alias=champion",
    )
    .await;
    answer["model_version"]["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// fraud-train's runs, oldest first.
async fn runs(server: &TestServer) -> Vec<Value> {
    let mut runs = get(server, "/api/twinloop/v1/runs?pipeline=fraud-train").await["runs"]
        .as_array()
        .unwrap()
        .clone();
    runs.sort_by_key(|r| r["created_ms"].as_i64());
    runs
}

#[tokio::test(flavor = "multi_thread")]
async fn a25_the_loop_closes_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let out = quickstart(&dir, "good");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("The loop closed"), "{stdout}");
    for link in [
        "model_version fraud/2",
        "training_run train",
        "feature_view transactions",
    ] {
        assert!(
            stdout.contains(link),
            "the lineage chain shows {link}: {stdout}"
        );
    }
    // The repository it wrote is a real one: its pipeline file validates.
    let valid = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["pipeline", "validate"])
        .arg(dir.join("pipelines/fraud-train.yaml"))
        .output()
        .unwrap();
    assert!(valid.status.success());

    let mut server = reopen(&dir);
    assert_eq!(champion(&server).await, "2");
    let runs = runs(&server).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(
        (runs[0]["trigger"].as_str(), runs[0]["state"].as_str()),
        (Some("manual"), Some("SUCCEEDED"))
    );
    assert_eq!(
        (runs[1]["trigger"].as_str(), runs[1]["state"].as_str()),
        (Some("monitor"), Some("SUCCEEDED"))
    );
    assert_eq!(
        runs[1]["cause"]["alert"]["rule"], "auc_drop",
        "the retrain's cause is the alert"
    );
    // The alert is in lineage: an input of the retrain's pipeline run.
    let event = runs[1]["cause"]["monitor_event_id"].as_i64().unwrap();
    let graph = get(
        &server,
        &format!(
            "/api/twinloop/v1/lineage/graph?node=monitor_event:{event}&direction=downstream&depth=1"
        ),
    )
    .await;
    assert!(
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["external_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("run:"))),
        "{graph:#}"
    );
    let deployment = get(&server, "/api/twinloop/v1/deployments/fraud").await;
    let canary = &deployment["state"]["canary"];
    assert_eq!(canary["status"], "promoted", "{deployment:#}");
    let percents: Vec<i64> = canary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["percent"].as_i64())
        .collect();
    assert_eq!(percents, [10, 50, 100]);
    assert_eq!(deployment["spec"]["routes"][0]["alias"], "champion");
    let version = get(
        &server,
        "/api/2.0/mlflow/model-versions/get?name=fraud&version=2",
    )
    .await;
    let tags = version["model_version"]["tags"].as_array().unwrap();
    assert!(
        tags.iter()
            .any(|t| t["key"] == "source" && t["value"] == "pipeline"),
        "{tags:?}"
    );
    let alerts = get(&server, "/api/twinloop/v1/monitors/fraud-watch/alerts").await;
    assert_ne!(alerts["rules"]["auc_drop"]["state"], "firing", "{alerts:#}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a25_bad_model_is_rejected_and_nothing_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let out = quickstart(&dir, "bad-model");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("REJECTED, as intended"), "{stdout}");

    let mut server = reopen(&dir);
    assert_eq!(champion(&server).await, "1");
    let runs = runs(&server).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["state"], "REJECTED", "{runs:#?}");
    assert!(
        runs[1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the gate did not bless")),
        "{runs:#?}"
    );
    let deployment = get(&server, "/api/twinloop/v1/deployments/fraud").await;
    assert!(
        deployment["state"]["canary"].is_null(),
        "no canary: {deployment:#}"
    );
    let versions = get(
        &server,
        "/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud%27",
    )
    .await;
    assert_eq!(
        versions["model_versions"].as_array().map(Vec::len),
        Some(1),
        "nothing registered"
    );
    server.stop();
}
