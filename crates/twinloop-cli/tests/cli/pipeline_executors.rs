//! `executor: NAME` end to end on the real binary: the repository's `twinloop.yaml` names a Ray
//! executor whose Jobs API is a local server that really runs each submitted entrypoint
//! (`twinloop-executors`' `tests/support/ray_jobs.rs`). Both steps of a pipeline go through it
//! under `twinloop step-exec`, their outputs reach the store, and a rerun is served from the
//! cache without a submission. An executor the configuration does not declare is refused at
//! load with its line.

#[path = "../../../twinloop-executors/tests/support/ray_jobs.rs"]
mod ray_jobs;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use sha2::{Digest, Sha256};

async fn twinloop(dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .current_dir(dir)
        .args(["pipeline", "--repo"])
        .arg(dir)
        .args(args)
        .output()
        .await
        .expect("run twinloop")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const PIPELINE: &str = "pipeline: remote\nsteps:\n  prep:\n    executor: ray\n    run: echo preparing; tr a-z A-Z < \"$TWINLOOP_INPUT_RAW\" > \"$TWINLOOP_OUTPUT_DATA\"\n    inputs: {raw: raw.txt}\n    outputs: {data: {kind: file}}\n  train:\n    executor: ray\n    run: |\n      (cat \"$TWINLOOP_INPUT_DATA\"; echo \"run $TWINLOOP_RUN_ID\") > \"$TWINLOOP_OUTPUT_MODEL\"\n      echo '{\"output\": \"rows\", \"value\": 1}' >> \"$TWINLOOP_MESSAGES\"\n    inputs:\n      data: ${{ steps.prep.outputs.data }}\n    outputs:\n      model: {kind: file}\n      rows: {kind: value}\n";

#[tokio::test]
async fn steps_run_on_a_ray_executor_reach_the_store_and_the_cache() {
    let (ray, url) = ray_jobs::RayJobs::start().await;
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    std::fs::write(dir.join("raw.txt"), "abc\n").unwrap();
    std::fs::write(
        dir.join("twinloop.yaml"),
        format!("executors:\n  ray:\n    kind: ray\n    address: {url}\n    poll: 50ms\n"),
    )
    .unwrap();
    std::fs::write(dir.join("pipeline.yaml"), PIPELINE).unwrap();

    let out = twinloop(dir, &["run", "pipeline.yaml", "--no-store", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "SUCCEEDED", "{report:#}");
    let run_id = report["run_id"].as_str().unwrap();
    let submitted = ray.submitted();
    assert_eq!(submitted.len(), 2, "{submitted:#?}");
    for entrypoint in &submitted {
        // The local launcher's argv, less --parent, run in the repository.
        assert!(
            entrypoint.contains("'step-exec' '--grace-ms'") && !entrypoint.contains("--parent"),
            "{entrypoint}"
        );
        assert!(entrypoint.starts_with("cd '"), "{entrypoint}");
    }
    let model = format!("ABC\nrun {run_id}\n");
    let digest = report["steps"][1]["outputs"]["model"]["digest"]
        .as_str()
        .unwrap();
    assert_eq!(digest, sha256(model.as_bytes()));
    let blob = dir
        .join(".twinloop/cas/sha256")
        .join(&digest[..2])
        .join(digest);
    assert_eq!(
        std::fs::read_to_string(blob).unwrap(),
        model,
        "the output is in the store"
    );
    assert_eq!(report["steps"][1]["outputs"]["rows"]["value"], 1);
    let log = dir
        .join(".twinloop/runs")
        .join(run_id)
        .join("prep/1/stdout.log");
    assert_eq!(std::fs::read_to_string(log).unwrap(), "preparing\n");

    let again = twinloop(dir, &["run", "pipeline.yaml", "--no-store", "--json"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    let states: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["CACHED", "CACHED"]);
    assert_eq!(ray.submitted().len(), 2, "a cache hit submits nothing");
}

#[tokio::test]
async fn an_executor_twinloop_yaml_does_not_declare_is_refused_with_its_line() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    std::fs::write(dir.join("pipeline.yaml"), PIPELINE).unwrap();
    let out = twinloop(dir, &["validate", "pipeline.yaml"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: pipeline.yaml:4: steps[prep].executor: unknown executor \"ray\" (twinloop.yaml declares no executors; `local` runs in this process)\n"
        ),
        "{stderr}"
    );
    std::fs::write(
        dir.join("twinloop.yaml"),
        "executors:\n  ray:\n    kind: ray\n    adress: http://x\n",
    )
    .unwrap();
    let out = twinloop(dir, &["run", "pipeline.yaml", "--no-store"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("twinloop.yaml:2: executors.ray.settings: unknown field `adress`"),
        "{stderr}"
    );
}
