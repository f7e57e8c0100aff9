//! `--default-artifact-root` and `--no-serve-artifacts` as `mlflow server` has them: where new
//! experiments' artifacts go, what the proxy answers when serving is off, and the flags refused.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{TestServer, free_port, post_ok};

async fn get(c: &reqwest::Client, url: &str) -> Value {
    let r = c.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test]
async fn without_serving_experiments_and_runs_live_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root_arg = root.to_str().unwrap();
    let server = TestServer::start_sqlite_with(
        dir.path(),
        &[
            "--no-serve-artifacts",
            "--default-artifact-root",
            root_arg,
            "--allowed-scheme",
            "s3",
        ],
    );
    let c = reqwest::Client::new();
    let default = get(&c, &server.api("experiments/get?experiment_id=0")).await;
    assert_eq!(
        default["experiment"]["artifact_location"],
        format!("{root_arg}/0")
    );
    let id =
        post_ok(&c, &server.api("experiments/create"), json!({"name": "e"})).await["experiment_id"]
            .as_str()
            .unwrap()
            .to_string();
    let exp = get(
        &c,
        &server.api(&format!("experiments/get?experiment_id={id}")),
    )
    .await;
    assert_eq!(
        exp["experiment"]["artifact_location"],
        format!("{root_arg}/{id}")
    );
    let run = post_ok(&c, &server.api("runs/create"), json!({"experiment_id": id})).await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
    assert_eq!(
        run["run"]["info"]["artifact_uri"],
        format!("{root_arg}/{id}/{run_id}/artifacts")
    );
    // A location given at creation is still the client's choice, among what the server allows.
    let mine = post_ok(
        &c,
        &server.api("experiments/create"),
        json!({"name": "mine", "artifact_location": "s3://bucket/mine"}),
    )
    .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let exp = get(
        &c,
        &server.api(&format!("experiments/get?experiment_id={mine}")),
    )
    .await;
    assert_eq!(exp["experiment"]["artifact_location"], "s3://bucket/mine");

    // The proxy answers as MLflow's does with serving off.
    let proxy = format!("{}/api/2.0/mlflow-artifacts/artifacts", server.url);
    let file = format!("{proxy}/{id}/x.txt");
    for r in [
        c.get(&file).send().await.unwrap(),
        c.put(&file).body("x").send().await.unwrap(),
    ] {
        assert_eq!(r.status().as_u16(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["detail"],
            "Artifact serving is disabled. Run `mlflow server` with `--serve-artifacts` to enable."
        );
    }
    let endpoint = |rule: &str| {
        format!(
            "Endpoint: {rule} disabled due to the mlflow server running with `--no-serve-artifacts`. \
             To enable artifacts server functionality, run `mlflow server` with `--serve-artifacts`"
        )
    };
    let r = c.get(&proxy).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.text().await.unwrap(),
        endpoint("/api/2.0/mlflow-artifacts/artifacts")
    );
    let r = c
        .get(format!(
            "{}/ajax-api/2.0/mlflow-artifacts/artifacts?path=a",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.text().await.unwrap(),
        endpoint("/ajax-api/2.0/mlflow-artifacts/artifacts")
    );
    let r = c.delete(&file).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.text().await.unwrap(),
        endpoint("/api/2.0/mlflow-artifacts/artifacts/<path:artifact_path>")
    );
    assert!(
        !root.exists(),
        "the server writes nothing under a root its clients write to"
    );
}

/// Starts `twinloop server ARGS` in `cwd` and waits for it; `Err` holds stderr if it exited.
fn spawn(cwd: &std::path::Path, args: &[&str]) -> Result<TestProcess, String> {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["server", "--port", &port.to_string()])
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(TestProcess { child, port });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("twinloop server did not start");
}

struct TestProcess {
    child: std::process::Child,
    port: u16,
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_relative_root_is_made_absolute_and_bad_flags_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let server = spawn(
        &cwd,
        &[
            "--no-serve-artifacts",
            "--default-artifact-root",
            "./rel//x/",
        ],
    )
    .unwrap();
    let c = reqwest::Client::new();
    let url = format!(
        "http://127.0.0.1:{}/api/2.0/mlflow/experiments/get?experiment_id=0",
        server.port
    );
    let exp = get(&c, &url).await;
    assert_eq!(
        exp["experiment"]["artifact_location"],
        format!("{}/rel/x/0", cwd.display())
    );
    drop(server);

    // Without a root, no serving puts experiments under the artifacts destination.
    let other = cwd.join("other");
    std::fs::create_dir(&other).unwrap();
    let server = spawn(&other, &["--no-serve-artifacts"]).unwrap();
    let url = format!(
        "http://127.0.0.1:{}/api/2.0/mlflow/experiments/get?experiment_id=0",
        server.port
    );
    let exp = get(&c, &url).await;
    assert_eq!(
        exp["experiment"]["artifact_location"],
        format!("{}/twinloop-data/artifacts/0", other.display())
    );
    drop(server);

    for (args, says) in [
        (
            &["--artifacts-only"][..],
            "--artifacts-only is not supported",
        ),
        (
            &["--default-artifact-root", "s3://b/p#frag"][..],
            "invalid --default-artifact-root",
        ),
        (
            &["--default-artifact-root", "runs:/abc/model"][..],
            "invalid --default-artifact-root",
        ),
    ] {
        let empty = cwd.join(format!("refused-{}", free_port()));
        std::fs::create_dir(&empty).unwrap();
        let stderr = spawn(&empty, args).err().expect("refused");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            !empty.join("twinloop-data").exists(),
            "a refused start leaves nothing behind"
        );
    }
}
