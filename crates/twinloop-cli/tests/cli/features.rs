//! The feature store end to end through the real binary: plan/apply against the tracking
//! server's store, a training set logged to a run and visible in lineage, materialization,
//! and the feature server's HTTP routes, on the embedded store and on a Redis Cluster.

#[path = "../../../twinloop-features/tests/support/redis_cluster.rs"]
mod redis_cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{TestServer, free_port, post_json};

pub(crate) fn copy_example(to: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/feature_repo");
    let repo = to.join("repo");
    for dir in ["", "data"] {
        std::fs::create_dir_all(repo.join(dir)).unwrap();
        for entry in std::fs::read_dir(from.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, repo.join(dir).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
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

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn fails(output: Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[test]
fn a_bad_definition_is_one_line_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = copy_example(dir.path());
    let defs = std::fs::read_to_string(repo.join("features.yaml")).unwrap();
    std::fs::write(
        repo.join("features.yaml"),
        defs.replacen("entities: [driver]", "entities: [drivr]", 1),
    )
    .unwrap();
    let err = fails(features(&repo, &["plan"]));
    assert!(err.starts_with("error: features.yaml:16: feature_views[driver_hourly_stats].entities: unknown entity \"drivr\""), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let err = fails(features(dir.path(), &["plan"]));
    assert!(err.contains("twinloop.yaml not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn training_sets_reach_runs_and_lineage_and_online_features_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let repo = copy_example(dir.path());
    let server = TestServer::start_sqlite(dir.path());
    let config = std::fs::read_to_string(repo.join("twinloop.yaml")).unwrap();
    std::fs::write(
        repo.join("twinloop.yaml"),
        format!("{config}registry: {}\n", server.backend_uri),
    )
    .unwrap();

    let plan = ok(features(&repo, &["plan"]));
    assert!(
        plan.contains("+ feature_view driver_hourly_stats"),
        "{plan}"
    );
    ok(features(&repo, &["apply"]));
    assert!(
        ok(features(&repo, &["plan"])).contains("0 to add, 0 to change, 0 to remove, 8 unchanged")
    );

    // A training set logged to a run: the run lists it, and lineage walks from the run back to
    // the feature views and the entity file.
    let client = reqwest::Client::new();
    let (_, exp) = post_json(
        &client,
        &server.api("experiments/create"),
        json!({"name": "rides"}),
    )
    .await;
    let (_, run) = post_json(
        &client,
        &server.api("runs/create"),
        json!({"experiment_id": exp["experiment_id"]}),
    )
    .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let entities = repo.join("entities.csv");
    let output = dir.path().join("train.parquet");
    let out = ok(features(
        &repo,
        &[
            "get-historical",
            "--entities",
            entities.to_str().unwrap(),
            "--service",
            "ride_model_v1",
            "--output",
            output.to_str().unwrap(),
            "--run-id",
            &run_id,
        ],
    ));
    assert!(out.contains("wrote 7 rows with 3 feature columns"), "{out}");
    let got = get_json(&client, &server.api(&format!("runs/get?run_id={run_id}"))).await;
    let inputs = &got["run"]["inputs"]["dataset_inputs"];
    assert_eq!(inputs[0]["dataset"]["name"], "train", "{got}");
    let graph = get_json(
        &client,
        &format!(
            "{}/api/twinloop/v1/lineage/graph?node=run:{run_id}&direction=upstream&depth=4",
            server.url
        ),
    )
    .await;
    let types: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(
        types.contains(&"feature_view") && types.contains(&"feature_retrieval"),
        "{graph}"
    );

    // Materialize, then serve.
    let out = ok(features(
        &repo,
        &[
            "materialize",
            "2024-01-01T00:00:00Z",
            "2024-01-04T00:00:00Z",
        ],
    ));
    assert!(
        out.contains("driver_hourly_stats: 361 source rows"),
        "{out}"
    );
    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "features",
            "--repo",
            repo.to_str().unwrap(),
            "serve",
            "--port",
            &port.to_string(),
        ])
        .env("TWINLOOP_LOG", "warn")
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "feature server did not start");

    let ask = json!({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [1001, 4242]}});
    let (status, reply) =
        post_json(&client, &format!("{base}/get-online-features"), ask.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["metadata"]["feature_names"],
        json!(["driver_id", "conv_rate", "avg_daily_trips"])
    );
    // The example's rows are from 2024 and the view's TTL is a day.
    assert_eq!(
        reply["results"][1]["statuses"],
        json!(["OUTSIDE_MAX_AGE", "NOT_FOUND"])
    );

    let now = chrono_now();
    let (status, reply) = post_json(
        &client,
        &format!("{base}/push"),
        json!({"push_source_name": "driver_stats", "to": "online_and_offline",
               "df": {"driver_id": [1001], "event_timestamp": [now], "created": [now], "conv_rate": [0.25], "acc_rate": [0.5], "avg_daily_trips": [12]}}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (_, reply) = post_json(&client, &format!("{base}/get-online-features"), ask).await;
    assert_eq!(reply["results"][1]["values"], json!([0.25, null]));
    assert_eq!(reply["results"][2]["values"], json!([12, null]));
    assert_eq!(
        reply["results"][2]["statuses"],
        json!(["PRESENT", "NOT_FOUND"])
    );

    // The embedded store belongs to the server now: the CLI says so, the server materializes.
    let err = fails(features(
        &repo,
        &[
            "materialize",
            "2024-01-01T00:00:00Z",
            "2024-01-02T00:00:00Z",
        ],
    ));
    assert!(err.contains("POST /materialize"), "{err}");
    let (status, reply) = post_json(
        &client,
        &format!("{base}/materialize-incremental"),
        json!({"end_ts": "2024-01-05T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    for (body, needle) in [
        (
            json!({"features": ["nope:x"], "entities": {"driver_id": [1]}}),
            "unknown feature view",
        ),
        (
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [{"a": 1}]}}),
            "row 0",
        ),
        (
            json!({"features": "driver_hourly_stats:conv_rate", "entities": {}}),
            "invalid JSON body",
        ),
    ] {
        let (status, reply) =
            post_json(&client, &format!("{base}/get-online-features"), body).await;
        assert_eq!(status, 400, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains(needle), "{reply}");
    }
    let huge = client
        .post(format!("{base}/push"))
        .body(vec![b' '; 65 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status().as_u16(), 413);
    let reply: Value = huge.json().await.unwrap();
    assert!(
        reply["error"].as_str().unwrap().contains("limit 64 MiB"),
        "{reply}"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "twinloop_features_requests_total{route=\"get-online-features\",status=\"ok\"} 2"
        ),
        "{metrics}"
    );
    let _ = serve.kill();
    let _ = serve.wait();

    // The push went to the offline log too: training sees it.
    let late = dir.path().join("late.csv");
    std::fs::write(&late, format!("driver_id,event_timestamp\n1001,{now}\n")).unwrap();
    let out = ok(features(
        &repo,
        &[
            "get-historical",
            "--entities",
            late.to_str().unwrap(),
            "--features",
            "driver_hourly_stats:conv_rate",
            "--output",
            dir.path().join("late.parquet").to_str().unwrap(),
        ],
    ));
    assert!(
        out.contains("driver_hourly_stats: 1 of 1 rows found a value"),
        "{out}"
    );
}

fn chrono_now() -> String {
    let output = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// `twinloop features serve --auth` checks the tracking server's users and tokens with the same
/// rules: health open, reads for a caller who may read, /push for one who may write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_server_with_auth_checks_the_stores_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let repo = copy_example(dir.path());
    let root = dir.path().join("tracking");
    std::fs::create_dir_all(&root).unwrap();
    let tracking = TestServer::start_sqlite_auth(&root, "features-admin-pw");
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["auth", "--backend-store-uri", &tracking.backend_uri])
        .args(["token", "create", "--user", "admin", "--scope", "read"])
        .output()
        .unwrap();
    let read_token = ok(out).trim().to_owned();
    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "features",
            "--repo",
            repo.to_str().unwrap(),
            "serve",
            "--auth",
        ])
        .args(["--port", &port.to_string()])
        .args(["--backend-store-uri", &tracking.backend_uri])
        .env("TWINLOOP_LOG", "warn")
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "feature server did not start");
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    let ask =
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}});
    let read = format!("{base}/get-online-features");
    assert_eq!(status(client.post(&read).json(&ask)).await, 401);
    assert_eq!(
        status(client.post(&read).json(&ask).bearer_auth("tlp_forged")).await,
        401
    );
    assert_eq!(
        status(client.post(&read).json(&ask).bearer_auth(&read_token)).await,
        200
    );
    let now = chrono_now();
    let push = json!({"push_source_name": "driver_stats", "to": "online",
        "df": {"driver_id": [1001], "event_timestamp": [now], "created": [now], "conv_rate": [0.25], "acc_rate": [0.5], "avg_daily_trips": [12]}});
    let push_url = format!("{base}/push");
    assert_eq!(
        status(client.post(&push_url).json(&push).bearer_auth(&read_token)).await,
        403
    );
    assert_eq!(
        status(
            client
                .post(&push_url)
                .json(&push)
                .basic_auth("admin", Some("features-admin-pw"))
        )
        .await,
        200
    );
    let _ = serve.kill();
    let _ = serve.wait();
}

/// Materialization and the feature server on a three-node Redis Cluster (Feast's
/// `redis_type: redis_cluster`): the CLI writes into the cluster while the server reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_and_serve_on_a_redis_cluster() {
    let Some(cluster) = redis_cluster::RedisCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = copy_example(dir.path());
    std::fs::write(
        repo.join("twinloop.yaml"),
        format!(
            "project: rides\nonline_store:\n  type: redis\n  redis_type: redis_cluster\n  \
             connection_string: \"{}\"\n",
            cluster.connection_string
        ),
    )
    .unwrap();
    ok(features(&repo, &["apply"]));
    let out = ok(features(
        &repo,
        &[
            "materialize",
            "2024-01-01T00:00:00Z",
            "2024-01-04T00:00:00Z",
        ],
    ));
    assert!(
        out.contains("driver_hourly_stats: 361 source rows"),
        "{out}"
    );
    let stored: u64 = cluster
        .ports
        .iter()
        .map(|&p| cluster.cli(p, &["dbsize"]).trim().parse::<u64>().unwrap())
        .sum();
    assert!(stored > 0, "nothing reached the cluster");

    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["features", "--repo", repo.to_str().unwrap(), "serve"])
        .args(["--port", &port.to_string()])
        .env("TWINLOOP_LOG", "warn")
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "feature server did not start");

    let ask = json!({"features": ["driver_hourly_stats:conv_rate", "driver_daily_activity:trips"],
                     "entities": {"driver_id": [1001, 1005, 4242]}});
    let (status, reply) =
        post_json(&client, &format!("{base}/get-online-features"), ask.clone()).await;
    assert_eq!(status, 200, "{reply}");
    // The example's rows are from 2024, older than the views' TTLs, yet found.
    for column in [1, 2] {
        assert_eq!(
            reply["results"][column]["statuses"],
            json!(["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE", "NOT_FOUND"]),
            "{reply}"
        );
    }

    // Unlike the embedded store, the cluster is not held by the server: the CLI materializes
    // beside it, and a push reaches the readers at once.
    ok(features(
        &repo,
        &["materialize-incremental", "2024-01-05T00:00:00Z"],
    ));
    let now = chrono_now();
    let (status, reply) = post_json(
        &client,
        &format!("{base}/push"),
        json!({"push_source_name": "driver_stats", "to": "online",
               "df": {"driver_id": [4242], "event_timestamp": [now], "created": [now], "conv_rate": [0.25], "acc_rate": [0.5], "avg_daily_trips": [12]}}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (_, reply) = post_json(&client, &format!("{base}/get-online-features"), ask).await;
    assert_eq!(reply["results"][1]["values"][2], json!(0.25), "{reply}");
    assert_eq!(
        reply["results"][1]["statuses"],
        json!(["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE", "PRESENT"])
    );
    let _ = serve.kill();
    let _ = serve.wait();
}
