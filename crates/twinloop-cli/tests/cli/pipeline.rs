//! `twinloop pipeline`: exit codes (0 succeeded, 1 failed, 2 invalid or usage), the located
//! one-line errors, and plan naming what changed (A1, A7 through the binary).

use std::path::Path;
use std::process::{Command, Output};

/// Runs in `dir`, so that a run's default store (`twinloop-data/`) is made there too.
fn twinloop(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .current_dir(dir)
        .args(["pipeline", "--repo"])
        .arg(dir)
        .args(args)
        .output()
        .expect("run twinloop")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, yaml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let bad = file(
        "bad.yaml",
        "pipeline: p\nsteps:\n  a:\n    run: 'true'\n    needs: [b]\n",
    );
    let out = twinloop(dir.path(), &["validate", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {bad}:5: steps[a].needs: unknown step \"b\"\nhint: "
        )),
        "{stderr}"
    );

    let good = file(
        "good.yaml",
        "pipeline: p\nparams: {n: 1}\nsteps:\n  a:\n    run: echo ${{ params.n }} > out.txt\n",
    );
    let out = twinloop(dir.path(), &["validate", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pipeline p is valid (1 steps)"));

    let out = twinloop(dir.path(), &["run", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: cannot read missing.yaml: "),
        "{}",
        text(&out.stderr)
    );

    let out = twinloop(dir.path(), &["run", &good, "-p", "nope=2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown param \"nope\""));

    let out = twinloop(dir.path(), &["run", &good, "-p", "n=7"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "7\n"
    );
    assert!(
        dir.path().join(".twinloop/runs").is_dir(),
        "the home defaults to REPO/.twinloop"
    );

    let failing = file(
        "failing.yaml",
        "pipeline: f\nsteps:\n  a:\n    run: exit 4\n",
    );
    let out = twinloop(dir.path(), &["run", &failing, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "FAILED");
    assert_eq!(report["steps"][0]["reason"], "exited with 4");
}

#[test]
fn plan_names_the_changed_code_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("data.csv"), "1\n").unwrap();
    std::fs::write(
        dir.path().join("src/train.sh"),
        "cat \"$TWINLOOP_INPUT_DATA\" > \"$TWINLOOP_OUTPUT_MODEL\"\n",
    )
    .unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "pipeline: p\nsteps:\n  prep:\n    run: cp data.csv \"$TWINLOOP_OUTPUT_DATA\"\n    inputs: {raw: data.csv}\n    outputs: {data: {kind: file}}\n  train:\n    run: sh src/train.sh\n    inputs:\n      data: ${{ steps.prep.outputs.data }}\n    outputs: {model: {kind: file}}\n",
    )
    .unwrap();
    let pipeline = pipeline.to_str().unwrap();
    assert_eq!(
        twinloop(dir.path(), &["run", pipeline]).status.code(),
        Some(0)
    );
    std::fs::write(
        dir.path().join("src/train.sh"),
        "echo v2 > \"$TWINLOOP_OUTPUT_MODEL\"\n",
    )
    .unwrap();
    let out = twinloop(dir.path(), &["plan", pipeline]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("CACHED") && l.contains("prep")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("RUN")
            && l.contains("train")
            && l.ends_with("code: src/train.sh changed")),
        "{stdout}"
    );
}

/// A12 through the binary, then the cache verbs on what the runs left.
#[test]
fn resume_and_cache_verbs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/b.sh"), "exit 1\n").unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "pipeline: p\nsteps:\n  a:\n    run: echo a > \"$TWINLOOP_OUTPUT_OUT\"\n    outputs: {out: {kind: file}}\n  b:\n    run: sh src/b.sh\n    inputs:\n      in: ${{ steps.a.outputs.out }}\n",
    )
    .unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let out = twinloop(dir.path(), &["run", pipeline, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r1 = first["run_id"].as_str().unwrap().to_owned();
    std::fs::write(dir.path().join("src/b.sh"), "true\n").unwrap();

    let out = twinloop(
        dir.path(),
        &["plan", pipeline, "--resume", &r1, "--no-cache"],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("CACHED") && l.ends_with(&format!("from run {r1}"))),
        "{stdout}"
    );
    let out = twinloop(
        dir.path(),
        &["run", pipeline, "--resume", &r1, "--no-cache"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.starts_with(&format!("run {r1} ")), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  a:") || l.starts_with("  b:"))
        .collect();
    assert_eq!(
        lines,
        ["  a: CACHED", "  b: started (attempt 1)", "  b: SUCCEEDED"]
    );

    let out = twinloop(dir.path(), &["run", pipeline, "--resume", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("error: no run \"nope\" in the cache index: nothing to resume\nhint: "),
        "{}",
        text(&out.stderr)
    );

    let out = twinloop(dir.path(), &["cache", "ls", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["a", "b"], "the succeeded executions, oldest first");
    assert_eq!(entries[0]["run_id"], r1.as_str());
    assert_eq!(entries[0]["size_bytes"], 2);
    let key = entries[0]["key"].as_str().unwrap();
    let out = twinloop(dir.path(), &["cache", "ls"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("KEY\tSTEP\tPIPELINE\tRUN\tAGE\tSIZE\n"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{key}\ta\tp\t{r1}\t")), "{stdout}");

    let out = twinloop(dir.path(), &["cache", "rm", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: no cache entry with key \"nope\"\nhint: "),
        "{}",
        text(&out.stderr)
    );
    let out = twinloop(dir.path(), &["cache", "rm", key]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("removed cache entry {key}: 2 executions, 1 blobs (2 B)\n"),
        "a's execution and its reuse"
    );
    let out = twinloop(dir.path(), &["cache", "gc", "--older-than", "30d"]);
    assert_eq!(text(&out.stdout), "removed 0 executions, 0 blobs (0 B)\n");
    let out = twinloop(dir.path(), &["cache", "gc", "--older-than", "soon"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses a bad age");
}

#[test]
fn logs_show_each_attempt_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        "pipeline: p\nsteps:\n  a:\n    run: echo hello from a; echo oops >&2\n  b:\n    run: echo hello from b\n    needs: [a]\n",
    )
    .unwrap();
    let out = twinloop(
        dir.path(),
        &["run", path.to_str().unwrap(), "--no-store", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = report["run_id"].as_str().unwrap();
    let all = text(&twinloop(dir.path(), &["logs", run]).stdout);
    let a = all.find("hello from a").expect(&all);
    let b = all.find("hello from b").expect(&all);
    assert!(
        a < b && all.contains("==> a attempt 1 stderr <==\noops"),
        "{all}"
    );
    let one = text(&twinloop(dir.path(), &["logs", run, "b"]).stdout);
    assert!(
        one.contains("hello from b") && !one.contains("hello from a"),
        "{one}"
    );
    assert_eq!(
        twinloop(dir.path(), &["logs", "nope"]).status.code(),
        Some(2)
    );
}

#[test]
fn run_on_a_server_applies_starts_and_follows_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::support::TestServer::start_sqlite(dir.path());
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let file = repo.join("p.yaml");
    std::fs::write(
        &file,
        "pipeline: remote\nparams: {n: 1}\nsteps:\n  a:\n    run: echo ${{ params.n }} > out.txt\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = twinloop(&repo, &["run", file, "--server", &server.url, "-p", "n=7"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("of remote (version 1)") && stdout.contains("SUCCEEDED"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("out.txt")).unwrap(),
        "7\n"
    );
    let local_only = twinloop(&repo, &["run", file, "--server", &server.url, "--no-cache"]);
    assert_eq!(local_only.status.code(), Some(2));
    std::fs::write(
        repo.join("p.yaml"),
        "pipeline: remote\nsteps:\n  a:\n    run: exit 4\n",
    )
    .unwrap();
    let failed = twinloop(&repo, &["run", file, "--server", &server.url]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stdout).contains("FAILED"),
        "{}",
        text(&failed.stdout)
    );
    server.stop();
}

/// The server-sent events of a run the server executes, read until it ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_on_the_server_streams_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::support::TestServer::start_sqlite(dir.path());
    let base = format!("{}/api/twinloop/v1", server.url);
    let http = reqwest::Client::new();
    let mut stream = http
        .get(format!("{base}/pipelines/events"))
        .send()
        .await
        .unwrap();
    let repo = dir.path().to_str().unwrap();
    let apply = serde_json::json!({
        "repo": repo,
        "spec": "pipeline: sse\nsteps:\n  a:\n    run: 'true'\n  b:\n    run: exit 3\n    needs: [a]\n",
    });
    let applied = http
        .post(format!("{base}/pipelines"))
        .json(&apply)
        .send()
        .await
        .unwrap();
    assert!(applied.status().is_success());
    let run: serde_json::Value = http
        .post(format!("{base}/pipelines/sse/runs"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !text.contains("run_finished") && std::time::Instant::now() < deadline {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .filter(|e: &serde_json::Value| e["run_id"] == run["id"])
        .collect();
    let kinds: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (field("kind"), field("step"), field("state"))
        })
        .collect();
    let step = |kind: &str, step: &str, state: &str| (kind.into(), step.into(), state.into());
    assert_eq!(
        kinds.first(),
        Some(&step("run_started", "", "")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&step("step_finished", "a", "SUCCEEDED")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&step("step_finished", "b", "FAILED")),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last(),
        Some(&step("run_finished", "", "FAILED")),
        "{kinds:?}"
    );
    // A graceful stop with the stream still open: the stream never ends by itself, so the
    // server must drop it after its drain instead of waiting forever.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            server.kill9();
            panic!("the server did not stop while an event stream was open");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(stream);
}
