//! Metric summaries (min, max, count, last per run and key) and experiment keys: kept by every
//! write, under concurrent writers, searchable as `metrics.<key>.min|max|count|last`, and filled
//! by the migration for data written before it.

use std::sync::Arc;

use twinloop_core::ErrorKind;
use twinloop_core::run_columns::{GroupQuery, KeyCount, KeyKind, KeyQuery, MetricSummary};
use twinloop_core::tracking::*;
use twinloop_meta::{ExperimentStore, RunQuery, RunStore, SqlStore, StoreUri, TrackingStore};

async fn new_run(s: &dyn TrackingStore, exp: &str, name: &str, start: i64) -> String {
    s.create_run(NewRun {
        experiment_id: exp.into(),
        user_id: "u".into(),
        run_name: Some(name.into()),
        start_time: Some(start),
        tags: vec![],
    })
    .await
    .unwrap()
    .info
    .run_id
}

async fn summary(s: &dyn TrackingStore, run: &str, key: &str) -> MetricSummary {
    let runs = s
        .metric_summaries(&[run.to_string()], Some(&[key.to_string()]))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let mut metrics = runs[0].metrics.clone();
    assert_eq!(metrics.len(), 1, "{key} of {run}: {metrics:?}");
    metrics.remove(0)
}

async fn keys(s: &dyn TrackingStore, exp: &str, kind: KeyKind, q: &str) -> Vec<(String, i64)> {
    let query = KeyQuery {
        kind,
        contains: q.into(),
        limit: 1000,
    };
    let list = s.experiment_keys(exp, &query).await.unwrap();
    assert_eq!(list.total, list.keys.len() as i64);
    list.keys
        .into_iter()
        .map(|KeyCount { key, runs }| (key, runs))
        .collect()
}

fn m(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
    Metric::new(key, value, timestamp, step)
}

on_every_backend!(summaries_follow_every_write, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("summaries", None, &[]).await.unwrap();
    let run = new_run(s, &exp, "r", 1).await;
    let batch = [
        m("loss", 3.0, 10, 0),
        m("loss", f64::NAN, 11, 1),
        m("loss", 1.0, 12, 2),
        m("loss", 5.0, 13, 3),
    ];
    s.log_batch(&run, &batch, &[], &[]).await.unwrap();
    // A retried batch stores nothing new, so it counts nothing.
    s.log_batch(&run, &batch, &[], &[]).await.unwrap();
    s.log_batch(&run, &[m("loss", f64::INFINITY, 14, 1)], &[], &[])
        .await
        .unwrap();
    let loss = summary(s, &run, "loss").await;
    assert_eq!(
        (loss.min, loss.max, loss.count),
        (Some(1.0), Some(f64::INFINITY), 5)
    );
    assert_eq!(
        (loss.last, loss.last_step, loss.last_timestamp),
        (5.0, 3, 13),
        "a lower step does not replace the last value"
    );

    // Of two points at the same step and time the later write is last, as MLflow's latest.
    s.log_batch(&run, &[m("tie", 1.0, 7, 4)], &[], &[])
        .await
        .unwrap();
    s.log_batch(&run, &[m("tie", 2.0, 7, 4)], &[], &[])
        .await
        .unwrap();
    let tie = summary(s, &run, "tie").await;
    let latest = s.get_run(&run).await.unwrap().data.metrics;
    let latest = latest.iter().find(|m| m.key == "tie").unwrap();
    assert_eq!((tie.last, tie.count), (latest.value, 2));
    assert_eq!((tie.min, tie.max), (Some(1.0), Some(2.0)));

    // NaN points are counted and left out of min and max.
    s.log_batch(
        &run,
        &[m("nan", f64::NAN, 1, 0), m("nan", f64::NAN, 2, 1)],
        &[],
        &[],
    )
    .await
    .unwrap();
    let nan = summary(s, &run, "nan").await;
    assert_eq!((nan.min, nan.max, nan.count), (None, None, 2));
    assert!(nan.last.is_nan());
    s.log_batch(&run, &[m("nan", -2.0, 3, 0)], &[], &[])
        .await
        .unwrap();
    let nan = summary(s, &run, "nan").await;
    assert_eq!((nan.min, nan.max, nan.count), (Some(-2.0), Some(-2.0), 3));
    assert!(nan.last.is_nan(), "step 1 stays the latest");

    // Deleting and restoring a run keeps its rows, so its summaries stay as they were.
    s.delete_run(&run).await.unwrap();
    assert_eq!(summary(s, &run, "loss").await, loss);
    s.restore_run(&run).await.unwrap();
    assert_eq!(summary(s, &run, "loss").await, loss);

    // Every key when none are named; runs once each, in the order asked; unknown runs empty.
    let other = new_run(s, &exp, "other", 2).await;
    let all = s
        .metric_summaries(
            &[other.clone(), run.clone(), "f".repeat(32), run.clone()],
            None,
        )
        .await
        .unwrap();
    let shape: Vec<(String, Vec<String>)> = all
        .iter()
        .map(|r| {
            let keys = r.metrics.iter().map(|m| m.key.clone()).collect();
            (r.run_id.clone(), keys)
        })
        .collect();
    assert_eq!(
        shape,
        [
            (other.clone(), vec![]),
            (run.clone(), vec!["loss".into(), "nan".into(), "tie".into()]),
            ("f".repeat(32), vec![]),
        ]
    );
    let too_many: Vec<String> = (0..1001).map(|i| format!("{i:032x}")).collect();
    let e = s.metric_summaries(&too_many, None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("At most 1000 runs"), "{}", e.message);
});

// A batch of only NaN points has no min or max; the next batch of numbers must still be
// written (on PostgreSQL a NULL bound as a parameter once typed the prepared statement wrongly).
on_every_backend!(nan_only_batches_then_numbers, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("nan-first", None, &[]).await.unwrap();
    let run = new_run(s, &exp, "r", 1).await;
    for i in 0..8 {
        let key = format!("k{i}");
        s.log_batch(&run, &[m(&key, f64::NAN, 1, 0)], &[], &[])
            .await
            .unwrap();
        s.log_batch(&run, &[m(&key, i as f64, 2, 1)], &[], &[])
            .await
            .unwrap();
        let k = summary(s, &run, &key).await;
        assert_eq!(
            (k.min, k.max, k.count, k.last),
            (Some(i as f64), Some(i as f64), 2, i as f64)
        );
    }
});

on_every_backend!(concurrent_batches_lose_no_summary, |s| {
    let exp = s.create_experiment("concurrent", None, &[]).await.unwrap();
    let run = new_run(&*s, &exp, "r", 1).await;
    const TASKS: i64 = 8;
    const BATCHES: i64 = 20;
    const POINTS: i64 = 25;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let (s, run) = (Arc::clone(&s), run.clone());
        handles.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let batch: Vec<Metric> = (0..POINTS)
                    .flat_map(|p| {
                        let n = (t * BATCHES + b) * POINTS + p;
                        // Values spread on both sides of zero; every point unique.
                        let value = if n % 2 == 0 { n as f64 } else { -(n as f64) };
                        [
                            m("shared", value, n, n),
                            m(&format!("task{t}"), value, n, n),
                        ]
                    })
                    .collect();
                s.log_batch(&run, &batch, &[], &[]).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = TASKS * BATCHES * POINTS;
    let shared = summary(&*s, &run, "shared").await;
    let largest_even = (0..total).filter(|n| n % 2 == 0).max().unwrap();
    let largest_odd = (0..total).filter(|n| n % 2 == 1).max().unwrap();
    assert_eq!(shared.count, total);
    assert_eq!(shared.max, Some(largest_even as f64));
    assert_eq!(shared.min, Some(-(largest_odd as f64)));
    assert_eq!(shared.last_step, total - 1);
    for t in 0..TASKS {
        let own = summary(&*s, &run, &format!("task{t}")).await;
        assert_eq!(own.count, BATCHES * POINTS, "task{t}");
    }
    // The first write of each key counted the run once, whichever task made it.
    let metric_keys = keys(&*s, &exp, KeyKind::Metric, "").await;
    assert_eq!(metric_keys.len() as i64, TASKS + 1);
    assert!(
        metric_keys.iter().all(|(_, runs)| *runs == 1),
        "{metric_keys:?}"
    );
});

on_every_backend!(experiment_keys_count_runs, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("keys", None, &[]).await.unwrap();
    let other_exp = s.create_experiment("keys-other", None, &[]).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..3i64 {
        let run = new_run(s, &exp, &format!("r{i}"), i).await;
        let mut metrics = vec![m("loss", 1.0, 1, 0), m("loss", 0.5, 2, 1)];
        let mut params = vec![Tag::new("lr", "0.1")];
        if i > 0 {
            metrics.push(m("Val_Acc", 0.9, 1, 0));
            params.push(Tag::new("depth_5", "3"));
        }
        s.log_batch(&run, &metrics, &params, &[Tag::new("team", "a")])
            .await
            .unwrap();
        runs.push(run);
    }
    // Writing a key a run already has counts nothing.
    s.log_batch(
        &runs[0],
        &[m("loss", 0.1, 3, 2)],
        &[],
        &[Tag::new("team", "b")],
    )
    .await
    .unwrap();
    let elsewhere = new_run(s, &other_exp, "x", 0).await;
    s.log_batch(&elsewhere, &[m("loss", 1.0, 1, 0)], &[], &[])
        .await
        .unwrap();

    let owned = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(
        keys(s, &exp, KeyKind::Metric, "").await,
        owned(&[("loss", 3), ("Val_Acc", 2)])
    );
    assert_eq!(
        keys(s, &exp, KeyKind::Param, "").await,
        owned(&[("lr", 3), ("depth_5", 2)])
    );
    assert_eq!(
        keys(s, &exp, KeyKind::Tag, "").await,
        owned(&[("mlflow.runName", 3), ("team", 3)])
    );
    // Substrings match ignoring case; LIKE's wildcards are plain characters.
    assert_eq!(
        keys(s, &exp, KeyKind::Metric, "val_a").await,
        owned(&[("Val_Acc", 2)])
    );
    assert!(keys(s, &exp, KeyKind::Metric, "v%c").await.is_empty());
    assert!(keys(s, &exp, KeyKind::Param, "p_h").await.is_empty());
    assert_eq!(
        keys(s, &exp, KeyKind::Param, "H_5").await,
        owned(&[("depth_5", 2)])
    );

    // A deleted tag is uncounted; a key no run has is no longer listed.
    s.delete_tag(&runs[0], "team").await.unwrap();
    s.delete_tag(&runs[1], "team").await.unwrap();
    s.delete_tag(&runs[2], "team").await.unwrap();
    assert_eq!(
        keys(s, &exp, KeyKind::Tag, "").await,
        owned(&[("mlflow.runName", 3)])
    );
    s.log_batch(&runs[2], &[], &[], &[Tag::new("team", "c")])
        .await
        .unwrap();
    assert_eq!(
        keys(s, &exp, KeyKind::Tag, "team").await,
        owned(&[("team", 1)])
    );

    // A limit cuts the list but not the total.
    let page = s
        .experiment_keys(
            &exp,
            &KeyQuery {
                kind: KeyKind::Metric,
                contains: String::new(),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!((page.keys.len(), page.total), (1, 2));
    for (id, limit, kind) in [
        (exp.as_str(), 0, ErrorKind::InvalidArgument),
        ("999999", 10, ErrorKind::NotFound),
        ("x", 10, ErrorKind::InvalidArgument),
    ] {
        let query = KeyQuery {
            kind: KeyKind::Metric,
            contains: String::new(),
            limit,
        };
        let e = s.experiment_keys(id, &query).await.unwrap_err();
        assert_eq!(e.kind, kind, "{id} {limit}: {}", e.message);
    }
});

fn run_query(exp: &str, filter: &str, order_by: &[&str]) -> RunQuery {
    RunQuery {
        experiment_ids: vec![exp.to_string()],
        filter: Some(filter.to_string()),
        order_by: order_by.iter().map(|s| s.to_string()).collect(),
        view_type: ViewType::ActiveOnly,
        max_results: 1000,
        page_token: None,
    }
}

async fn names(s: &dyn TrackingStore, q: RunQuery) -> Vec<String> {
    let page = s.search_runs(&q).await.unwrap();
    page.items.into_iter().map(|r| r.info.run_name).collect()
}

on_every_backend!(summaries_in_the_search_language, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("dsl", None, &[]).await.unwrap();
    // loss histories: r0 falls low then ends high, r1 stays middling, r2 has few points.
    let histories: [(&str, &[f64]); 3] = [
        ("r0", &[5.0, 0.1, 4.0]),
        ("r1", &[2.0, 1.0, 1.5, 1.2]),
        ("r2", &[3.0, 2.5]),
    ];
    for (i, (name, values)) in histories.iter().enumerate() {
        let run = new_run(s, &exp, name, i as i64).await;
        let mut points: Vec<Metric> = values
            .iter()
            .enumerate()
            .map(|(step, v)| m("loss", *v, step as i64, step as i64))
            .collect();
        // A dotted key, summarised as a whole.
        points.push(m("val.acc", i as f64, 0, 0));
        points.push(m("val.acc", 10.0 - i as f64, 1, 1));
        s.log_batch(&run, &points, &[], &[]).await.unwrap();
    }
    let q = |f: &str, o: &[&str]| run_query(&exp, f, o);

    assert_eq!(names(s, q("metrics.loss.min < 0.5", &[])).await, ["r0"]);
    assert_eq!(
        names(s, q("metrics.loss.max <= 3", &[])).await,
        ["r2", "r1"]
    );
    assert_eq!(names(s, q("metrics.loss.count = 2", &[])).await, ["r2"]);
    assert_eq!(
        names(s, q("metrics.loss.last > 2", &[])).await,
        ["r2", "r0"]
    );
    assert_eq!(
        names(s, q("metrics.loss > 2", &[])).await,
        names(s, q("metrics.loss.last > 2", &[])).await,
        "last is MLflow's latest value"
    );
    assert_eq!(
        names(s, q("", &["metrics.loss.min ASC"])).await,
        ["r0", "r1", "r2"]
    );
    assert_eq!(
        names(s, q("", &["metrics.loss.max DESC"])).await,
        ["r0", "r2", "r1"]
    );
    assert_eq!(
        names(s, q("", &["metrics.loss.count DESC"])).await,
        ["r1", "r0", "r2"]
    );
    assert_eq!(
        names(s, q("", &["metrics.loss.last ASC"])).await,
        ["r1", "r2", "r0"]
    );
    // Dotted keys: `val.acc.min` is the min of `val.acc`; quoted forms say which is meant.
    assert_eq!(
        names(
            s,
            q("metrics.val.acc.min >= 1", &["metrics.val.acc.max ASC"])
        )
        .await,
        ["r2", "r1"]
    );
    assert_eq!(
        names(
            s,
            q("metrics.`val.acc`.min >= 1", &["metrics.`val.acc`.max ASC"])
        )
        .await,
        ["r2", "r1"]
    );
    assert!(
        names(s, q("metrics.`val.acc.min` >= 1", &[]))
            .await
            .is_empty(),
        "a quoted key is the literal key, which no run has"
    );

    // Where a run of the searched experiments has the literal key `loss.min`, the unquoted form
    // keeps MLflow's meaning (that key's latest value) for every run.
    let literal = s.create_experiment("dsl-literal", None, &[]).await.unwrap();
    let a = new_run(s, &literal, "a", 0).await;
    let b = new_run(s, &literal, "b", 1).await;
    s.log_batch(
        &a,
        &[m("loss", 0.5, 0, 0), m("loss.min", 9.0, 0, 0)],
        &[],
        &[],
    )
    .await
    .unwrap();
    s.log_batch(&b, &[m("loss", 0.1, 0, 0)], &[], &[])
        .await
        .unwrap();
    let l = |f: &str, o: &[&str]| run_query(&literal, f, o);
    assert_eq!(names(s, l("metrics.loss.min > 1", &[])).await, ["a"]);
    assert_eq!(
        names(s, l("metrics.loss.min < 1", &[])).await,
        Vec::<String>::new()
    );
    assert_eq!(names(s, l("metrics.`loss`.min < 1", &[])).await, ["b", "a"]);
    assert_eq!(
        names(s, l("", &["metrics.loss.min DESC"])).await,
        ["a", "b"],
        "b has no loss.min, so it sorts last"
    );
    assert_eq!(
        names(s, l("", &["metrics.`loss`.min DESC"])).await,
        ["a", "b"]
    );
    assert_eq!(
        names(s, l("", &["metrics.`loss`.min ASC"])).await,
        ["b", "a"]
    );

    // Bad summaries are INVALID_PARAMETER_VALUE naming the position.
    for (filter, order, position) in [
        ("metrics.`loss`.avg > 1", None, 15),
        ("params.`p`.min = 'x'", None, 11),
        ("metrics.`loss`. > 1", None, 14),
        ("", Some("metrics.`loss`.median DESC"), 15),
        ("metrics.loss.min LIKE 'x'", None, 0),
    ] {
        let order_by: Vec<&str> = order.into_iter().collect();
        let e = s.search_runs(&q(filter, &order_by)).await.unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::InvalidArgument,
            "{filter}: {}",
            e.message
        );
        if position > 0 {
            assert!(
                e.message.contains(&format!("position {position}")),
                "{filter} {order:?}: {}",
                e.message
            );
        }
    }
});

on_every_backend!(
    counts_and_groups_follow_the_filter,
    |s: &dyn TrackingStore| {
        let exp = s.create_experiment("groups", None, &[]).await.unwrap();
        // (optimizer, loss): adam thrice (one NaN), sgd twice, one run without the param.
        let runs: [(Option<&str>, f64); 6] = [
            (Some("adam"), 1.0),
            (Some("adam"), 3.0),
            (Some("adam"), f64::NAN),
            (Some("sgd"), 5.0),
            (Some("sgd"), 7.0),
            (None, 2.0),
        ];
        for (i, (opt, loss)) in runs.iter().enumerate() {
            let run = new_run(s, &exp, &format!("r{i}"), i as i64).await;
            let params: Vec<Param> = opt.iter().map(|o| Param::new("optimizer", *o)).collect();
            s.log_batch(&run, &[m("loss", *loss, 0, 0)], &params, &[])
                .await
                .unwrap();
        }
        let q = |f: &str| run_query(&exp, f, &[]);
        assert_eq!(s.count_runs(&q("")).await.unwrap(), 6);
        assert_eq!(s.count_runs(&q("metrics.loss > 2")).await.unwrap(), 3);
        assert_eq!(
            s.count_runs(&q("metrics.loss >> 2"))
                .await
                .unwrap_err()
                .kind,
            ErrorKind::InvalidArgument
        );
        let group = GroupQuery {
            param: "optimizer".into(),
            metric: Some("loss".into()),
            limit: 10,
        };
        let groups = s.group_runs(&q(""), &group).await.unwrap();
        let shape: Vec<(Option<&str>, i64, i64)> = groups
            .iter()
            .map(|g| (g.value.as_deref(), g.runs, g.with_metric))
            .collect();
        assert_eq!(
            shape,
            [(Some("adam"), 3, 2), (Some("sgd"), 2, 2), (None, 1, 1)]
        );
        assert_eq!(
            (groups[0].mean, groups[0].min, groups[0].max),
            (Some(2.0), Some(1.0), Some(3.0))
        );
        assert_eq!(groups[1].mean, Some(6.0));
        // The filter applies before grouping; no metric, no aggregates.
        let filtered = s
            .group_runs(
                &q("metrics.loss >= 3"),
                &GroupQuery {
                    metric: None,
                    ..group.clone()
                },
            )
            .await
            .unwrap();
        let shape: Vec<(Option<&str>, i64, Option<f64>)> = filtered
            .iter()
            .map(|g| (g.value.as_deref(), g.runs, g.mean))
            .collect();
        assert_eq!(shape, [(Some("sgd"), 2, None), (Some("adam"), 1, None)]);
        // Windows by position: the page token is the offset of the first row.
        let mut window = q("");
        window.max_results = 2;
        window.page_token = Some(twinloop_meta::search::encode_page_token(4));
        assert_eq!(names(s, window).await, ["r1", "r0"]);
    }
);

on_every_backend!(
    a_deep_window_is_the_same_rows_as_the_full_order,
    |s: &dyn TrackingStore| {
        // Past 500 rows a newest-first window is sought through the index on SQLite; ties of start
        // time (seven runs each) and runs without one must land exactly where the full order has them.
        let exp = s.create_experiment("deep", None, &[]).await.unwrap();
        for i in 0..640i64 {
            let start = (i % 90 != 0).then_some(i / 7);
            s.create_run(NewRun {
                experiment_id: exp.clone(),
                user_id: "u".into(),
                run_name: Some(format!("r{i}")),
                start_time: start,
                tags: vec![],
            })
            .await
            .unwrap();
        }
        let mut all = run_query(&exp, "", &[]);
        all.max_results = 1000;
        let all = names(s, all).await;
        assert_eq!(all.len(), 640);
        for offset in [500usize, 503, 561, 600, 630, 639, 640] {
            let mut window = run_query(&exp, "", &[]);
            window.max_results = 17;
            window.page_token = Some(twinloop_meta::search::encode_page_token(offset as u64));
            let page = s.search_runs(&window).await.unwrap();
            let got: Vec<String> = page.items.into_iter().map(|r| r.info.run_name).collect();
            let want = &all[offset.min(640)..(offset + 17).min(640)];
            assert_eq!(got, want, "window at {offset}");
            assert_eq!(
                page.next_page_token.is_some(),
                offset + 17 < 640,
                "window at {offset}"
            );
        }
    }
);

/// A database written before migration 0009 gets its summaries and keys from that migration.
#[tokio::test]
async fn the_migration_summarises_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before-0009");
    std::fs::create_dir(&before).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0009" {
            std::fs::copy(&path, before.join(name)).unwrap();
        }
    }
    let db = dir.path().join("t.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let run = "a".repeat(32);
    for sql in [
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (7, 'old', 'x', 'active', 0, 0)".to_string(),
        format!("INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, artifact_uri, lifecycle_stage) VALUES ('{run}', 7, 'r', 'u', 'RUNNING', 0, 'x', 'active')"),
        format!("INSERT INTO metrics VALUES ('{run}', 'loss', 0, 1, 3.0, 0), ('{run}', 'loss', 1, 2, 0.0, 1), ('{run}', 'loss', 2, 3, -1.0, 0)"),
        format!("INSERT INTO latest_metrics VALUES ('{run}', 'loss', 2, 3, -1.0, 0)"),
        format!("INSERT INTO params VALUES ('{run}', 'lr', '0.1')"),
        format!("INSERT INTO tags VALUES ('{run}', 'team', 'a')"),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = SqlStore::open(&StoreUri::Sqlite(db), "mlflow-artifacts:")
        .await
        .unwrap();
    let s: &dyn TrackingStore = &store;
    let loss = summary(s, &run, "loss").await;
    assert_eq!(
        (loss.min, loss.max, loss.count, loss.last),
        (Some(-1.0), Some(3.0), 3, -1.0)
    );
    for (kind, key) in [
        (KeyKind::Metric, "loss"),
        (KeyKind::Param, "lr"),
        (KeyKind::Tag, "team"),
    ] {
        assert_eq!(keys(s, "7", kind, "").await, [(key.to_string(), 1)]);
    }
    // And the store goes on from there.
    s.log_batch(&run, &[m("loss", -5.0, 4, 3)], &[], &[])
        .await
        .unwrap();
    let loss = summary(s, &run, "loss").await;
    assert_eq!((loss.min, loss.count, loss.last), (Some(-5.0), 4, -5.0));
}

// On SQLite concurrent batches share transactions (group commit) and take turns with the
// store's other writes: each batch must still stand or fall alone, and neither writer may meet
// "database is locked".
on_every_backend!(
    grouped_batches_stand_or_fall_alone_beside_other_writes,
    |s| {
        let exp = s.create_experiment("grouped", None, &[]).await.unwrap();
        let run = new_run(&*s, &exp, "r", 1).await;
        let first = [Tag::new("p", "first")];
        s.log_batch(&run, &[], &first, &[]).await.unwrap();
        const TASKS: i64 = 8;
        const BATCHES: i64 = 12;
        let refused = |n: i64| n % 3 == 0;
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let (s, run, exp) = (Arc::clone(&s), run.clone(), exp.clone());
            handles.push(tokio::spawn(async move {
                for b in 0..BATCHES {
                    let n = t * BATCHES + b;
                    let points = [m(&format!("k{n}"), n as f64, n, n)];
                    let tags = [Tag::new(format!("t{n}"), "v")];
                    if refused(n) {
                        let changed = [Tag::new("p", format!("other{n}"))];
                        let e = s
                            .log_batch(&run, &points, &changed, &tags)
                            .await
                            .unwrap_err();
                        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message);
                        assert!(e.message.contains("Changing param values"), "{}", e.message);
                    } else {
                        let same = [Tag::new("p", "first")];
                        s.log_batch(&run, &points, &same, &tags).await.unwrap();
                    }
                    s.set_experiment_tag(&exp, &Tag::new(format!("e{n}"), "v"))
                        .await
                        .unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let kept: Vec<i64> = (0..TASKS * BATCHES).filter(|n| !refused(*n)).collect();
        let mut want_metrics: Vec<String> = kept.iter().map(|n| format!("k{n}")).collect();
        let mut want_tags: Vec<String> = kept.iter().map(|n| format!("t{n}")).collect();
        want_metrics.sort();
        want_tags.push("mlflow.runName".into());
        want_tags.sort();
        let got = s.get_run(&run).await.unwrap();
        let metric_keys: Vec<String> = got.data.metrics.iter().map(|m| m.key.clone()).collect();
        let tag_keys: Vec<String> = got.data.tags.iter().map(|t| t.key.clone()).collect();
        assert_eq!(metric_keys, want_metrics);
        assert_eq!(tag_keys, want_tags);
        assert_eq!(got.data.params, first);
        let counted = keys(&*s, &exp, KeyKind::Metric, "").await;
        assert_eq!(counted.len(), kept.len());
        let experiment = s.get_experiment(&exp).await.unwrap();
        assert_eq!(experiment.tags.len() as i64, TASKS * BATCHES);
    }
);
