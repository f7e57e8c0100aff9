//! Pipelines inside `twinloop server`, through the real binary: `pipeline apply` registers a
//! file and its triggers; schedules tick (A17), monitor events start exactly one run each with
//! cooldown and replay safety (A19), and the concurrency policy queues, skips or cancels (A20).
//! Monitor events are written the way the server's monitors write them
//! (`MonitorStore::add_monitor_event` on the same database).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use twinloop_meta::{MonitorStore, PipelineStore, SqlStore, StoreUri};

use crate::support::TestServer;
use crate::support::pipelines::{json, ok, pipeline, runs, wait_for};

/// The recorded events of the pipeline's first trigger, newest first.
fn events(server: &TestServer, repo: &Path, name: &str) -> Vec<Value> {
    let out = pipeline(server, repo, &["triggers", name, "--json"]);
    json(&out)["triggers"][0]["recent"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn states(runs: &[Value]) -> Vec<String> {
    runs.iter()
        .map(|r| r["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn write(repo: &Path, name: &str, yaml: &str) -> String {
    let path = repo.join(name);
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn store(server: &TestServer) -> SqlStore {
    let uri = StoreUri::Sqlite(server.data_dir.join("twinloop.db"));
    SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap()
}

/// A `retrain_requested` event as a monitor's retrain action records it.
async fn retrain_requested(store: &SqlStore, deployment: &str) -> i64 {
    let alert = serde_json::json!({
        "deployment": deployment, "metric": "drift_share", "monitor": "m", "op": ">",
        "rule": "drift", "state": "firing", "threshold": 0.5, "value": 0.8,
        "window_end_us": 2, "window_start_us": 1,
    });
    store
        .add_monitor_event("m", "retrain_requested", &alert.to_string())
        .await
        .unwrap()
}

#[test]
fn a_schedule_ticks_and_a_restarted_server_records_missed_ticks_without_a_burst() {
    let root = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let file = write(
        repo.path(),
        "tick.yaml",
        "pipeline: tick\ntriggers:\n  - every: 2s\nsteps:\n  a:\n    run: echo tick\n",
    );
    let mut server = TestServer::start_pipelines(root.path(), repo.path());
    let applied = ok(&pipeline(&server, repo.path(), &["apply", &file]));
    assert!(
        applied.contains("pipeline tick: version 1 registered"),
        "{applied}"
    );
    assert!(applied.contains("+ trigger every 2s"), "{applied}");
    assert!(applied.contains("+ step a"), "{applied}");
    let again = ok(&pipeline(&server, repo.path(), &["apply", &file]));
    assert!(again.contains("unchanged (version 1)"), "{again}");

    std::thread::sleep(Duration::from_secs(7));
    let ticked = runs(&server, repo.path(), "tick");
    assert!(
        (3..=4).contains(&ticked.len()),
        "every 2s over 7 s makes 3 or 4 runs, not {}: {ticked:?}",
        ticked.len()
    );
    assert!(ticked.iter().all(|r| r["trigger"] == "every"));
    let oldest = ticked.last().unwrap();
    assert_eq!(oldest["state"], "SUCCEEDED", "{oldest}");
    assert!(oldest["cause"]["tick_ms"].is_i64());

    let stopped_with = runs(&server, repo.path(), "tick").len();
    server.stop();
    // Down for 7 s: three ticks or more pass with nobody to run them.
    std::thread::sleep(Duration::from_secs(7));
    let server = TestServer::start_pipelines(root.path(), repo.path());
    let missed = wait_for("a missed event", Duration::from_secs(10), || {
        events(&server, repo.path(), "tick")
            .into_iter()
            .find(|e| e["outcome"] == "missed")
    });
    let reason = missed["reason"].as_str().unwrap();
    assert!(reason.contains("catchup: false"), "{reason}");
    let count: usize = reason.split(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2, "{reason}");
    // No burst: no run for a missed tick, and no more than the on-time tick and the next.
    let (first, last) = missed["dedup_key"]
        .as_str()
        .and_then(|k| k.strip_prefix("missed:"))
        .and_then(|k| k.split_once('-'))
        .map(|(a, b)| (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap()))
        .expect("missed:FIRST-LAST");
    std::thread::sleep(Duration::from_millis(1_500));
    let after = runs(&server, repo.path(), "tick");
    assert!(
        after
            .iter()
            .filter_map(|r| r["cause"]["tick_ms"].as_i64())
            .all(|t| !(first..=last).contains(&t)),
        "a missed tick ran: {after:?}"
    );
    // One tick may have fired between the count and the stop.
    assert!(
        after.len() <= stopped_with + 3,
        "{count} missed ticks must not start a burst: {stopped_with} runs before, {} after",
        after.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_event_starts_exactly_one_run_and_cooldown_suppresses_the_next() {
    let root = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let file = write(
        repo.path(),
        "retrain.yaml",
        "pipeline: retrain\ntriggers:\n  - monitor: {event: retrain_requested, deployment: fraud}\npolicy:\n  cooldown: 1h\nsteps:\n  train:\n    run: test \"${{ trigger.payload.alert.rule }}\" = drift\n",
    );
    let server = TestServer::start_pipelines(root.path(), repo.path());
    ok(&pipeline(&server, repo.path(), &["apply", &file]));
    let store = store(&server).await;

    let first = retrain_requested(&store, "fraud").await;
    let started = wait_for("the retraining run", Duration::from_secs(20), || {
        let found = runs(&server, repo.path(), "retrain");
        found.first().filter(|r| r["state"] == "SUCCEEDED").cloned()
    });
    assert_eq!(started["trigger"], "monitor");
    assert_eq!(started["cause"]["monitor_event_id"], first);
    assert_eq!(started["cause"]["alert"]["deployment"], "fraud");

    // Another deployment's alert is not this trigger's; a second alert within the cooldown is
    // recorded as suppressed, with its reason.
    retrain_requested(&store, "other").await;
    let second = retrain_requested(&store, "fraud").await;
    let second_key = second.to_string();
    let suppressed = wait_for("the suppressed event", Duration::from_secs(10), || {
        events(&server, repo.path(), "retrain")
            .into_iter()
            .find(|e| e["dedup_key"] == second_key.as_str())
    });
    assert_eq!(suppressed["outcome"], "suppressed");
    assert_eq!(suppressed["reason"], "cooldown");
    assert_eq!(runs(&server, repo.path(), "retrain").len(), 1);

    // Replaying the events (the trigger's cursor moved back, as after a crash between reading
    // and recording) starts nothing: each event is recorded once per trigger.
    store
        .set_pipeline_cursor(
            "retrain",
            "0:monitor retrain_requested deployment=fraud",
            "0",
        )
        .await
        .unwrap();
    wait_for(
        "the cursor to pass the events again",
        Duration::from_secs(10),
        || {
            let cursor = block(
                store.pipeline_cursor("retrain", "0:monitor retrain_requested deployment=fraud"),
            );
            (cursor == Some(second.to_string())).then_some(())
        },
    );
    assert_eq!(runs(&server, repo.path(), "retrain").len(), 1);
    assert_eq!(events(&server, repo.path(), "retrain").len(), 2);

    let paused = ok(&pipeline(
        &server,
        repo.path(),
        &["trigger", "pause", "retrain/0"],
    ));
    assert!(
        paused.contains("retrain[0] monitor retrain_requested deployment=fraud: paused"),
        "{paused}"
    );
    let out = pipeline(&server, repo.path(), &["triggers", "retrain", "--json"]);
    assert_eq!(json(&out)["triggers"][0]["paused"], true);
    let unknown = pipeline(&server, repo.path(), &["trigger", "resume", "retrain/3"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no trigger 3"));
}

/// Polls a store future from the synchronous wait loop.
fn block<T>(future: impl std::future::Future<Output = twinloop_core::Result<T>>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_while_a_run_is_active_queues_skips_or_cancels_by_policy() {
    let root = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    for conflict in ["queue", "skip", "cancel_running"] {
        // The skipping pipeline's run outlasts the storm below, so every storm event meets it.
        let seconds = if conflict == "skip" { 8 } else { 2 };
        write(
            repo.path(),
            &format!("{conflict}.yaml"),
            &format!(
                "pipeline: {name}\ntriggers:\n  - monitor: {{event: retrain_requested, deployment: {conflict}}}\npolicy:\n  concurrency: {{max: 1, on_conflict: {conflict}}}\nsteps:\n  slow:\n    run: sleep {seconds}\n",
                name = conflict.replace('_', "-")
            ),
        );
    }
    let server = TestServer::start_pipelines(root.path(), repo.path());
    for conflict in ["queue", "skip", "cancel_running"] {
        let file = repo.path().join(format!("{conflict}.yaml"));
        ok(&pipeline(
            &server,
            repo.path(),
            &["apply", file.to_str().unwrap()],
        ));
    }
    let store = store(&server).await;
    for conflict in ["queue", "skip", "cancel_running"] {
        retrain_requested(&store, conflict).await;
    }
    // The first runs are under way before the second events arrive.
    for name in ["queue", "skip", "cancel-running"] {
        wait_for("a running run", Duration::from_secs(10), || {
            states(&runs(&server, repo.path(), name))
                .contains(&"RUNNING".to_owned())
                .then_some(())
        });
    }
    for conflict in ["queue", "skip", "cancel_running"] {
        retrain_requested(&store, conflict).await;
    }
    // A storm on the skipping pipeline: everything beyond the running run is suppressed.
    for _ in 0..200 {
        retrain_requested(&store, "skip").await;
    }

    let queued = wait_for("both queued runs to end", Duration::from_secs(30), || {
        let found = runs(&server, repo.path(), "queue");
        (states(&found) == ["SUCCEEDED", "SUCCEEDED"]).then_some(found)
    });
    let (later, earlier) = (&queued[0], &queued[1]);
    assert!(
        later["started_ms"].as_i64() >= earlier["ended_ms"].as_i64(),
        "the queued run starts after the first ends: {queued:?}"
    );

    let canceled = wait_for(
        "the canceled run and its successor",
        Duration::from_secs(30),
        || {
            let found = runs(&server, repo.path(), "cancel-running");
            (states(&found) == ["SUCCEEDED", "CANCELED"]).then_some(found)
        },
    );
    assert!(canceled[1]["reason"].as_str().is_some(), "{canceled:?}");

    // 1 fired and 201 suppressed (the second event and the storm), none dropped unrecorded.
    let recorded = wait_for("the storm to be recorded", Duration::from_secs(60), || {
        let all = block(store.trigger_events(Some("skip"), 1_000));
        (all.len() == 202).then_some(all)
    });
    let fired = recorded.iter().filter(|e| e.outcome == "fired").count();
    let suppressed = recorded
        .iter()
        .filter(|e| e.outcome == "suppressed" && e.reason.as_deref() == Some("concurrency"))
        .count();
    assert_eq!((fired, suppressed), (1, 201));
    let skip_runs = runs(&server, repo.path(), "skip");
    assert_eq!(skip_runs.len(), 1, "{skip_runs:?}");
}
