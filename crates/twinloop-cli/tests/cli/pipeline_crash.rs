//! A22: a `kill -9` of the server mid-step leaves no orphan (each step's shell runs under
//! `twinloop step-exec`, which ends the step's process group when its parent dies); the restarted
//! server resumes the run from its finished steps to `SUCCEEDED`, and no step is recorded
//! `SUCCEEDED` without its outputs. A timeout through the launcher still ends the whole tree.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::TestServer;
use crate::support::pipelines::{ok, pipeline, runs, wait_for};

/// `second` writes its process group id and, while `hold` exists, starts a grandchild `sleep`
/// (its pid in `grandchild`) and sleeps itself.
const PIPELINE: &str = r#"pipeline: crash
steps:
  first:
    run: echo once >> first.count && echo data > "$TWINLOOP_OUTPUT_DATA"
    outputs: {data: {kind: file}}
  second:
    inputs:
      data: ${{ steps.first.outputs.data }}
    run: |
      cut -d' ' -f5 /proc/$$/stat > pgid
      if [ -f hold ]; then sleep 300 & echo $! > grandchild; sleep 300; fi
      cp "$TWINLOOP_INPUT_DATA" "$TWINLOOP_OUTPUT_COPY"
    outputs: {copy: {kind: file}}
"#;

fn start_run(server: &TestServer) -> Value {
    let reply = server.raw(
        "POST /api/twinloop/v1/pipelines/crash/runs HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(
        head.starts_with("HTTP/1.0 2") || head.starts_with("HTTP/1.1 2"),
        "{reply}"
    );
    serde_json::from_str(body).expect("a run")
}

/// A number a step wrote, once it is whole.
fn number(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.strip_suffix('\n')?.parse().ok()
}

/// Processes (not zombies) in process group `pgid`, from /proc.
fn live_processes_in_group(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the `(comm)` field: state, ppid, pgrp.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            out.push(pid);
        }
    }
    out
}

/// Waits until nothing of the group is left (a generous deadline: no timing is asserted).
fn group_ends(pgid: u32) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let live = live_processes_in_group(pgid);
        if live.is_empty() || Instant::now() > deadline {
            return live;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn executions(repo: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(repo.join(".twinloop/cache/executions.jsonl")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a22_kill_9_mid_step_leaves_no_orphan_and_the_restarted_server_resumes_the_run() {
    let root = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path();
    let file = repo.join("crash.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    std::fs::write(repo.join("hold"), "").unwrap();
    let mut server = TestServer::start_pipelines(root.path(), repo);
    ok(&pipeline(&server, repo, &["apply", file.to_str().unwrap()]));
    let interrupted = start_run(&server)["id"].as_str().unwrap().to_owned();

    let grandchild = wait_for("the grandchild", Duration::from_secs(60), || {
        number(&repo.join("grandchild"))
    });
    let pgid = number(&repo.join("pgid")).expect("the step's process group");
    let launcher = std::fs::read(format!("/proc/{pgid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&launcher).contains("step-exec"),
        "the group's leader is the launcher: {}",
        String::from_utf8_lossy(&launcher)
    );
    let live = live_processes_in_group(pgid);
    assert!(live.contains(&grandchild), "{live:?} lacks {grandchild}");
    assert!(live.len() >= 3, "launcher, shell and sleeps: {live:?}");

    server.kill9();
    assert_eq!(
        group_ends(pgid),
        Vec::<u32>::new(),
        "the step's tree outlived a kill -9 of the server"
    );

    // Fixed: the step no longer holds. The restarted server resumes the interrupted run.
    std::fs::remove_file(repo.join("hold")).unwrap();
    let server = TestServer::start_pipelines(root.path(), repo);
    let resumed = wait_for(
        "the resumed run to succeed",
        Duration::from_secs(60),
        || {
            runs(&server, repo, "crash").into_iter().find(|r| {
                r["cause"]["resumed_from"] == interrupted.as_str() && r["state"] == "SUCCEEDED"
            })
        },
    );
    let resumed = resumed["id"].as_str().unwrap().to_owned();
    let first = runs(&server, repo, "crash")
        .into_iter()
        .find(|r| r["id"] == interrupted.as_str())
        .unwrap();
    assert_eq!(first["state"], "FAILED", "{first}");
    assert!(
        first["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{first}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("first.count")).unwrap(),
        "once\n",
        "the finished step was reused, not run again"
    );

    let executions = executions(repo);
    let of = |run: &str, step: &str| -> Vec<&Value> {
        executions
            .iter()
            .filter(|e| e["run_id"] == run && e["step"] == step)
            .collect()
    };
    assert!(
        of(&interrupted, "second")
            .iter()
            .all(|e| e["state"] != "SUCCEEDED"),
        "the killed step was recorded SUCCEEDED: {executions:?}"
    );
    let reused = of(&resumed, "first");
    assert!(
        reused
            .iter()
            .all(|e| e["state"] == "CACHED" && e["cached_from"] == interrupted.as_str()),
        "{reused:?}"
    );
    let second = of(&resumed, "second");
    assert_eq!(second.len(), 1, "{executions:?}");
    assert_eq!(second[0]["state"], "SUCCEEDED");
    for execution in executions.iter().filter(|e| e["state"] == "SUCCEEDED") {
        let outputs = execution["outputs"].as_object().unwrap();
        assert!(
            !outputs.is_empty(),
            "SUCCEEDED without outputs: {execution}"
        );
        for output in outputs.values() {
            let digest = output["digest"].as_str().unwrap();
            let blob = repo
                .join(".twinloop/cas/sha256")
                .join(&digest[..2])
                .join(digest);
            assert!(blob.exists(), "{execution}: no blob {}", blob.display());
        }
    }
    let copy = second[0]["outputs"]["copy"]["digest"].as_str().unwrap();
    let blob = repo
        .join(".twinloop/cas/sha256")
        .join(&copy[..2])
        .join(copy);
    assert_eq!(std::fs::read_to_string(blob).unwrap(), "data\n");
}

#[test]
fn a_timeout_through_the_launcher_still_ends_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slow.yaml");
    std::fs::write(
        &file,
        "pipeline: slow\nsteps:\n  slow:\n    run: cut -d' ' -f5 /proc/$$/stat > pgid; sleep 300 & sleep 300\n    timeout: 1s\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .current_dir(dir.path())
        .args(["pipeline", "--repo"])
        .arg(dir.path())
        .arg("run")
        .arg(&file)
        .output()
        .expect("run twinloop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("TIMED_OUT"), "{stdout}");
    let pgid = number(&dir.path().join("pgid")).expect("the step's process group");
    assert_eq!(group_ends(pgid), Vec::<u32>::new());
}

#[test]
fn steps_still_launch_after_the_binary_was_replaced_under_a_running_twinloop() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("twinloop");
    // A second name for the same file (a copy where links are refused): removing it is what an
    // upgrade does to the path a running twinloop was started from.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_twinloop"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_twinloop"), &bin).unwrap();
    }
    let file = dir.path().join("upgrade.yaml");
    std::fs::write(
        &file,
        "pipeline: upgrade\nsteps:\n  remove:\n    run: rm twinloop\n  after:\n    run: echo ran > after\n    needs: [remove]\n",
    )
    .unwrap();
    let out = Command::new(&bin)
        .current_dir(dir.path())
        .args(["pipeline", "--repo"])
        .arg(dir.path())
        .arg("run")
        .arg(&file)
        .output()
        .expect("run twinloop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!bin.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("after")).unwrap(),
        "ran\n"
    );
}
