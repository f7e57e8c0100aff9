//! The PipelineStore behaviour, run against every backend: versions on apply, runs, and the
//! exactly-once rule of trigger events.

use twinloop_meta::pipelines::{
    NewPipelineVersion, PipelineRun, PipelineStore, RunChange, TriggerEvent,
};
use twinloop_meta::{LeaseStore, SqlStore};

fn spec(text: &str) -> NewPipelineVersion {
    NewPipelineVersion {
        name: "train".into(),
        spec: text.into(),
        digest: format!("digest-of-{text}"),
        repo: "/repo".into(),
        file: "pipelines/train.yaml".into(),
    }
}

fn run(id: &str, created_ms: i64) -> PipelineRun {
    PipelineRun {
        id: id.into(),
        pipeline: "train".into(),
        version: 1,
        state: "QUEUED".into(),
        trigger_kind: "monitor".into(),
        cause: "{\"monitor_event\":7}".into(),
        params: "{}".into(),
        chain: "[\"train\"]".into(),
        reason: None,
        created_ms,
        started_ms: None,
        ended_ms: None,
        executor: None,
    }
}

fn event(key: &str, outcome: &str, run_id: Option<&str>) -> TriggerEvent {
    TriggerEvent {
        id: 0,
        pipeline: "train".into(),
        trigger_index: 0,
        dedup_key: key.into(),
        outcome: outcome.into(),
        reason: None,
        run_id: run_id.map(str::to_owned),
        at_ms: 1,
    }
}

on_every_backend!(an_unchanged_spec_makes_no_new_version, |s: &SqlStore| {
    let (v1, created) = s.apply_pipeline(&spec("a")).await.unwrap();
    assert_eq!((v1.version, created), (1, true));
    let (again, created) = s.apply_pipeline(&spec("a")).await.unwrap();
    assert_eq!((again.version, created), (1, false));
    let (v2, created) = s.apply_pipeline(&spec("b")).await.unwrap();
    assert_eq!((v2.version, created), (2, true));
    let all = s.pipelines().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].version, all[0].spec.as_str()), (2, "b"));
    let first = s.pipeline_version("train", Some(1)).await.unwrap().unwrap();
    assert_eq!(first.spec, "a");
    assert!(s.pipeline_version("other", None).await.unwrap().is_none());
});

on_every_backend!(
    a_trigger_event_starts_one_run_however_often_it_is_recorded,
    |s: &SqlStore| {
        let first = s
            .record_trigger_event(
                &event("7", "fired", Some("r1")),
                Some(&run("r1", 10)),
                Some(("monitor", "7")),
            )
            .await
            .unwrap();
        assert!(first);
        // A replay of the same event (after a crash before the cursor was read back, say) writes
        // nothing: neither a second event nor a second run, and the cursor stays.
        let replay = s
            .record_trigger_event(
                &event("7", "fired", Some("r2")),
                Some(&run("r2", 11)),
                Some(("monitor", "8")),
            )
            .await
            .unwrap();
        assert!(!replay);
        let runs = s.pipeline_runs(Some("train"), None, 10).await.unwrap();
        assert_eq!(
            runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r1"]
        );
        assert_eq!(s.trigger_events(None, 10).await.unwrap().len(), 1);
        assert_eq!(
            s.pipeline_cursor("train", "monitor")
                .await
                .unwrap()
                .as_deref(),
            Some("7")
        );
        // Another event is recorded, suppressed, with no run.
        let mut suppressed = event("8", "suppressed", None);
        suppressed.reason = Some("cooldown".into());
        assert!(
            s.record_trigger_event(&suppressed, None, Some(("monitor", "8")))
                .await
                .unwrap()
        );
        let events = s.trigger_events(Some("train"), 10).await.unwrap();
        assert_eq!(
            events
                .iter()
                .map(|e| (
                    e.dedup_key.as_str(),
                    e.outcome.as_str(),
                    e.reason.as_deref()
                ))
                .collect::<Vec<_>>(),
            [("8", "suppressed", Some("cooldown")), ("7", "fired", None)]
        );
        assert_eq!(
            s.pipeline_cursor("train", "monitor")
                .await
                .unwrap()
                .as_deref(),
            Some("8")
        );
    }
);

on_every_backend!(runs_change_state_and_filter, |s: &SqlStore| {
    s.create_pipeline_run(&run("a", 1)).await.unwrap();
    s.create_pipeline_run(&run("b", 2)).await.unwrap();
    s.update_pipeline_run(
        "a",
        &RunChange {
            state: "RUNNING".into(),
            started_ms: Some(5),
            ..RunChange::default()
        },
    )
    .await
    .unwrap();
    s.update_pipeline_run(
        "a",
        &RunChange {
            state: "FAILED".into(),
            reason: Some("interrupted".into()),
            ended_ms: Some(9),
            ..RunChange::default()
        },
    )
    .await
    .unwrap();
    let a = s.pipeline_run("a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.state.as_str(),
            a.reason.as_deref(),
            a.started_ms,
            a.ended_ms
        ),
        ("FAILED", Some("interrupted"), Some(5), Some(9))
    );
    let queued = s.pipeline_runs(None, Some("QUEUED"), 10).await.unwrap();
    assert_eq!(
        queued.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    let newest_first = s.pipeline_runs(Some("train"), None, 10).await.unwrap();
    assert_eq!(
        newest_first
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert!(s.pipeline_run("zz").await.unwrap().is_none());
    assert!(
        s.update_pipeline_run("zz", &RunChange::default())
            .await
            .is_err()
    );
    s.set_pipeline_cursor("train", "tick/0", "100")
        .await
        .unwrap();
    s.set_pipeline_cursor("train", "tick/0", "200")
        .await
        .unwrap();
    assert_eq!(
        s.pipeline_cursor("train", "tick/0")
            .await
            .unwrap()
            .as_deref(),
        Some("200")
    );
});

on_every_backend!(
    only_runs_whose_executor_is_gone_are_adopted_and_by_one_replica,
    |s: &SqlStore| {
        let with = |id: &str, created_ms: i64, executor: Option<&str>| PipelineRun {
            executor: executor.map(str::to_owned),
            ..run(id, created_ms)
        };
        assert_eq!(
            s.acquire_lease("exec:live", "me", 60_000).await.unwrap(),
            Some(1)
        );
        s.acquire_lease("exec:dead", "it", 60_000).await.unwrap();
        s.release_lease("exec:dead", "it").await.unwrap();
        s.create_pipeline_run(&with("live", 1, Some("exec:live")))
            .await
            .unwrap();
        s.create_pipeline_run(&with("dead", 2, Some("exec:dead")))
            .await
            .unwrap();
        s.create_pipeline_run(&with("unknown", 3, Some("exec:never")))
            .await
            .unwrap();
        s.create_pipeline_run(&with("old", 4, None)).await.unwrap();
        let orphans = s.orphaned_pipeline_runs("QUEUED", 10).await.unwrap();
        assert_eq!(
            orphans.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["dead", "unknown", "old"],
            "a live executor's run is nobody's to settle"
        );
        assert!(
            s.orphaned_pipeline_runs("RUNNING", 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !s.adopt_pipeline_run("live", "QUEUED", "exec:live")
                .await
                .unwrap(),
            "not orphaned"
        );
        assert!(
            !s.adopt_pipeline_run("dead", "RUNNING", "exec:live")
                .await
                .unwrap(),
            "not in that state"
        );
        assert!(
            s.adopt_pipeline_run("dead", "QUEUED", "exec:live")
                .await
                .unwrap()
        );
        assert!(
            !s.adopt_pipeline_run("dead", "QUEUED", "exec:other")
                .await
                .unwrap(),
            "adopted once: its new executor lives"
        );
        let dead = s.pipeline_run("dead").await.unwrap().unwrap();
        assert_eq!(dead.executor.as_deref(), Some("exec:live"));
        assert_eq!(
            s.orphaned_pipeline_runs("QUEUED", 10).await.unwrap().len(),
            2
        );
    }
);
