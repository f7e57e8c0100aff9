//! One behavioural suite for the TrackingStore trait, run against every backend.

use twinloop_core::ErrorKind;
use twinloop_core::tracking::*;
use twinloop_meta::{
    DatasetFilter, ExperimentQuery, ExperimentStore, LoggedModelOrder, LoggedModelQuery, RunQuery,
    RunStore, TrackingStore,
};

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

async fn new_run(store: &dyn TrackingStore, exp: &str, name: &str, start: i64) -> String {
    store
        .create_run(NewRun {
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

async fn names(store: &dyn TrackingStore, q: RunQuery) -> Vec<String> {
    store
        .search_runs(&q)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.info.run_name)
        .collect()
}

on_every_backend!(default_experiment_exists, |s: &dyn TrackingStore| {
    let e = s.get_experiment("0").await.unwrap();
    assert_eq!(e.name, "Default");
    assert_eq!(e.artifact_location, "mlflow-artifacts:/0");
});

on_every_backend!(experiment_lifecycle, |s: &dyn TrackingStore| {
    let id = s
        .create_experiment("exp-a", None, &[Tag::new("team", "x")])
        .await
        .unwrap();
    let e = s.get_experiment(&id).await.unwrap();
    assert_eq!((e.name.as_str(), e.tags.len()), ("exp-a", 1));
    assert_eq!(e.artifact_location, format!("mlflow-artifacts:/{id}"));
    let dup = s.create_experiment("exp-a", None, &[]).await.unwrap_err();
    assert_eq!(dup.kind, ErrorKind::AlreadyExists);
    assert_eq!(
        s.get_experiment_by_name("exp-a")
            .await
            .unwrap()
            .experiment_id,
        id
    );
    assert_eq!(
        s.get_experiment_by_name("nope").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        s.get_experiment("999999").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    // Any integer is an id, as in MLflow: a negative one is not found rather than invalid.
    assert_eq!(
        s.get_experiment("-1337").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        s.get_experiment("abc").await.unwrap_err().kind,
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        s.create_experiment("", None, &[]).await.unwrap_err().kind,
        ErrorKind::InvalidArgument
    );

    s.rename_experiment(&id, "exp-b").await.unwrap();
    assert_eq!(s.get_experiment(&id).await.unwrap().name, "exp-b");
    s.set_experiment_tag(&id, &Tag::new("team", "y"))
        .await
        .unwrap();
    s.delete_experiment_tag(&id, "team").await.unwrap();
    assert!(s.get_experiment(&id).await.unwrap().tags.is_empty());
    assert_eq!(
        s.delete_experiment_tag(&id, "team").await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    let run = new_run(s, &id, "r", 1).await;
    let gone = new_run(s, &id, "deleted-before", 2).await;
    s.delete_run(&gone).await.unwrap();
    // As in MLflow, restoring brings back the runs deleted at the experiment's deletion time (ms):
    // a run deleted by hand in that same millisecond would come back too.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    s.delete_experiment(&id).await.unwrap();
    assert_eq!(
        s.get_experiment(&id).await.unwrap().lifecycle_stage,
        LifecycleStage::Deleted
    );
    assert_eq!(
        s.get_run(&run).await.unwrap().info.lifecycle_stage,
        LifecycleStage::Deleted
    );
    let err = s
        .create_run(NewRun {
            experiment_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    s.restore_experiment(&id).await.unwrap();
    assert_eq!(
        s.get_run(&run).await.unwrap().info.lifecycle_stage,
        LifecycleStage::Active
    );
    assert_eq!(
        s.get_run(&gone).await.unwrap().info.lifecycle_stage,
        LifecycleStage::Deleted
    );
    assert!(s.delete_experiment("0").await.is_err());
});

on_every_backend!(
    /// A relative location is made absolute against the working directory, and a run's artifact
    /// URI goes into the location's path, before its query, as MLflow builds them.
    artifact_locations_as_mlflow_builds_them,
    |s: &dyn TrackingStore| {
        let relative = s
            .create_experiment("relative", Some("my_location"), &[])
            .await
            .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            s.get_experiment(&relative).await.unwrap().artifact_location,
            cwd.join("my_location").to_string_lossy()
        );
        let queried = s
            .create_experiment("queried", Some("s3://bucket/path?versionId=1"), &[])
            .await
            .unwrap();
        let run = s
            .create_run(NewRun {
                experiment_id: queried.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            run.info.artifact_uri,
            format!(
                "s3://bucket/path/{}/artifacts?versionId=1",
                run.info.run_id
            )
        );
        let model = s
            .create_logged_model(NewLoggedModel {
                experiment_id: queried,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            model.artifact_uri,
            format!(
                "s3://bucket/path/models/{}/artifacts?versionId=1",
                model.model_id
            )
        );
    }
);

on_every_backend!(experiment_search, |s: &dyn TrackingStore| {
    for i in 0..5 {
        s.create_experiment(&format!("pfx-{i}"), None, &[Tag::new("i", i.to_string())])
            .await
            .unwrap();
    }
    s.create_experiment("other", None, &[]).await.unwrap();
    let q = |filter: &str, order: &[&str], max: i64, token: Option<String>| ExperimentQuery {
        filter: Some(filter.into()),
        order_by: order.iter().map(|s| s.to_string()).collect(),
        view_type: ViewType::ActiveOnly,
        max_results: max,
        page_token: token,
    };
    let page = s
        .search_experiments(&q("name LIKE 'pfx-%'", &["name DESC"], 1000, None))
        .await
        .unwrap();
    let got: Vec<_> = page.items.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(got, ["pfx-4", "pfx-3", "pfx-2", "pfx-1", "pfx-0"]);
    let page = s
        .search_experiments(&q("tags.i = '3' AND name ILIKE 'PFX%'", &[], 1000, None))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let first = s
        .search_experiments(&q("name LIKE 'pfx-%'", &["name ASC"], 2, None))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let second = s
        .search_experiments(&q(
            "name LIKE 'pfx-%'",
            &["name ASC"],
            2,
            first.next_page_token,
        ))
        .await
        .unwrap();
    assert_eq!(second.items[0].name, "pfx-2");
    let bad = s
        .search_experiments(&q("name = ", &[], 10, None))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidArgument);
    let bad = s
        .search_experiments(&q("", &["nonsense DESC"], 10, None))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidArgument);
});

on_every_backend!(run_lifecycle_and_batches, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("runs", None, &[]).await.unwrap();
    let run = s
        .create_run(NewRun {
            experiment_id: exp.clone(),
            user_id: "me".into(),
            run_name: None,
            start_time: None,
            tags: vec![Tag::new("k", "v")],
        })
        .await
        .unwrap();
    let id = run.info.run_id.clone();
    assert!(!run.info.run_name.is_empty(), "a name is made up");
    assert!(
        run.data
            .tags
            .iter()
            .any(|t| t.key == "mlflow.runName" && t.value == run.info.run_name)
    );
    assert_eq!(
        run.info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/{id}/artifacts")
    );

    let metrics = vec![
        Metric::new("loss", 1.0, 10, 0),
        Metric::new("loss", 0.5, 20, 2),
        Metric::new("loss", 0.7, 30, 1),
        Metric::new("nan", f64::NAN, 1, 0),
        Metric::new("inf", f64::INFINITY, 1, 0),
    ];
    s.log_batch(
        &id,
        &metrics,
        &[Tag::new("lr", "0.1")],
        &[Tag::new("mlflow.runName", "renamed")],
    )
    .await
    .unwrap();
    let got = s.get_run(&id).await.unwrap();
    assert_eq!(got.info.run_name, "renamed");
    let latest = |k: &str| {
        got.data
            .metrics
            .iter()
            .find(|m| m.key == k)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (latest("loss").value, latest("loss").step),
        (0.5, 2),
        "highest step wins"
    );
    assert!(latest("nan").value.is_nan());
    assert_eq!(latest("inf").value, f64::INFINITY);

    s.log_batch(&id, &[], &[Tag::new("lr", "0.1")], &[])
        .await
        .unwrap();
    let err = s
        .log_batch(
            &id,
            &[Metric::new("loss", 9.0, 1, 9)],
            &[Tag::new("lr", "0.2")],
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    let history = s.get_metric_history(&id, "loss", None, None).await.unwrap();
    assert_eq!(history.items.len(), 3, "a rejected batch writes nothing");

    let dup = [Tag::new("a", "1"), Tag::new("a", "2")];
    assert!(s.log_batch(&id, &[], &dup, &[]).await.is_err());
    let too_many: Vec<_> = (0..1001).map(|i| Metric::new("m", 0.0, 0, i)).collect();
    assert!(s.log_batch(&id, &too_many, &[], &[]).await.is_err());
    assert!(
        s.log_batch(&id, &[Metric::new("../x", 0.0, 0, 0)], &[], &[])
            .await
            .is_err()
    );

    let info = s
        .update_run(
            &id,
            RunUpdate {
                status: Some(RunStatus::Finished),
                end_time: Some(99),
                run_name: Some("final".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (info.status, info.end_time, info.run_name.as_str()),
        (RunStatus::Finished, Some(99), "final")
    );

    s.delete_tag(&id, "k").await.unwrap();
    assert_eq!(
        s.delete_tag(&id, "k").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    s.delete_run(&id).await.unwrap();
    let err = s
        .log_batch(&id, &[Metric::new("x", 1.0, 1, 1)], &[], &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    s.restore_run(&id).await.unwrap();
    assert_eq!(
        s.get_run("0123456789abcdef0123456789abcdef")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        s.get_run("../../etc").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
});

on_every_backend!(metric_history_pages, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("hist", None, &[]).await.unwrap();
    let id = new_run(s, &exp, "h", 1).await;
    for chunk in (0..2500i64).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|&i| Metric::new("m", i as f64, 1000 + i, i))
            .collect();
        s.log_batch(&id, &batch, &[], &[]).await.unwrap();
    }
    let mut token = None;
    let mut all = Vec::new();
    loop {
        let page = s
            .get_metric_history(&id, "m", Some(1000), token.as_deref())
            .await
            .unwrap();
        all.extend(page.items);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(all.len(), 2500);
    assert!(all.windows(2).all(|w| w[0].step < w[1].step));
    // Logging the exact same point again does not duplicate it.
    s.log_batch(&id, &[Metric::new("m", 0.0, 1000, 0)], &[], &[])
        .await
        .unwrap();
    assert_eq!(
        s.get_metric_history(&id, "m", None, None)
            .await
            .unwrap()
            .items
            .len(),
        2500
    );
});

on_every_backend!(run_search_language, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("search", None, &[]).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..6i64 {
        let id = new_run(s, &exp, &format!("sr-{i}"), 100 + i).await;
        let mut metrics = vec![Metric::new("acc", i as f64 / 10.0, 1, 0)];
        if i % 2 == 0 {
            metrics.push(Metric::new("my metric", i as f64, 1, 0));
        }
        let params = [
            Tag::new("p", if i < 3 { "a" } else { "b" }),
            Tag::new("lr", format!("0.{i}")),
        ];
        let tags = [Tag::new("parity", if i % 2 == 0 { "even" } else { "odd" })];
        s.log_batch(&id, &metrics, &params, &tags).await.unwrap();
        ids.push(id);
    }
    s.update_run(
        &ids[5],
        RunUpdate {
            status: Some(RunStatus::Failed),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let q = |f: &str, o: &[&str]| run_query(&exp, f, o);
    assert_eq!(
        names(s, q("", &[])).await,
        ["sr-5", "sr-4", "sr-3", "sr-2", "sr-1", "sr-0"],
        "default: newest first"
    );
    assert_eq!(
        names(s, q("metrics.acc > 0.25", &["metrics.acc ASC"])).await,
        ["sr-3", "sr-4", "sr-5"]
    );
    assert_eq!(
        names(s, q("metrics.acc >= 0.2 and metrics.acc < 0.4", &[]))
            .await
            .len(),
        2
    );
    assert_eq!(names(s, q("metrics.acc != 0.0", &[])).await.len(), 5);
    assert_eq!(names(s, q("metrics.acc <= 0.1", &[])).await.len(), 2);
    assert_eq!(names(s, q("metrics.acc = 0.3", &[])).await, ["sr-3"]);
    assert_eq!(
        names(
            s,
            q("metrics.`my metric` > 1", &["metrics.`my metric` DESC"])
        )
        .await,
        ["sr-4", "sr-2"]
    );
    assert_eq!(
        names(s, q("params.p = 'b'", &["params.lr DESC"])).await,
        ["sr-5", "sr-4", "sr-3"]
    );
    assert_eq!(names(s, q("params.lr LIKE '0.%'", &[])).await.len(), 6);
    assert_eq!(names(s, q("params.p ILIKE 'A'", &[])).await.len(), 3);
    assert_eq!(
        names(s, q("params.p LIKE 'A'", &[])).await.len(),
        0,
        "LIKE is case-sensitive"
    );
    assert_eq!(names(s, q("tags.parity != 'odd'", &[])).await.len(), 3);
    assert_eq!(
        names(s, q("tags.`mlflow.runName` = 'sr-1'", &[])).await,
        ["sr-1"]
    );
    assert_eq!(
        names(s, q("tags.mlflow.runName = 'sr-1'", &[])).await,
        ["sr-1"]
    );
    assert_eq!(
        names(s, q("attributes.status = 'FAILED'", &[])).await,
        ["sr-5"]
    );
    assert_eq!(
        names(s, q("status = 'FAILED'", &["start_time DESC"])).await,
        ["sr-5"],
        "keys without a prefix are attributes"
    );
    assert_eq!(
        names(s, q("attributes.run_name LIKE 'sr-1%'", &[])).await,
        ["sr-1"]
    );
    let in_list = format!("attributes.run_id IN ('{}', '{}')", ids[0], ids[1]);
    assert_eq!(
        names(s, q(&in_list, &["attributes.run_name ASC"])).await,
        ["sr-0", "sr-1"]
    );
    let not_in = format!("attributes.run_id NOT IN ('{}')", ids[0]);
    assert_eq!(names(s, q(&not_in, &[])).await.len(), 5);
    assert_eq!(
        names(
            s,
            q(
                "attributes.start_time >= 104",
                &["attributes.start_time ASC"]
            )
        )
        .await,
        ["sr-4", "sr-5"]
    );
    // Runs without the ordered metric come last, in both directions.
    assert_eq!(
        names(s, q("", &["metrics.`my metric` ASC"])).await[..3],
        ["sr-0", "sr-2", "sr-4"]
    );
    assert_eq!(
        names(s, q("", &["metrics.`my metric` DESC"])).await[..3],
        ["sr-4", "sr-2", "sr-0"]
    );

    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let mut query = q("", &["attributes.run_name ASC"]);
        query.max_results = 4;
        query.page_token = token;
        let page = s.search_runs(&query).await.unwrap();
        pages.push(page.items.len());
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, [4, 2]);

    for bad in [
        "metrics.acc > 'x'",
        "params.p > 1",
        "params.p IN ('a')",
        "attributes.nope = 'x'",
        "acc > 1",
        "attributes.status IN ('FAILED')",
        "metrics.acc LIKE '1%'",
        "metrics.acc > 1 OR metrics.acc < 0",
        "attributes.start_time > 1.5",
    ] {
        let err = s.search_runs(&q(bad, &[])).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{bad}");
    }
    let mut too_many = q("", &[]);
    too_many.max_results = 50_001;
    assert!(s.search_runs(&too_many).await.is_err());
    let mut forged = q("", &[]);
    forged.page_token = Some("garbage".into());
    assert!(s.search_runs(&forged).await.is_err());

    s.delete_run(&ids[0]).await.unwrap();
    let mut deleted = q("", &[]);
    deleted.view_type = ViewType::DeletedOnly;
    assert_eq!(names(s, deleted.clone()).await, ["sr-0"]);
    deleted.view_type = ViewType::All;
    assert_eq!(names(s, deleted).await.len(), 6);
});

on_every_backend!(inputs_and_dataset_filters, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("inputs", None, &[]).await.unwrap();
    let id = new_run(s, &exp, "with-data", 1).await;
    let other = new_run(s, &exp, "without", 2).await;
    let input = DatasetInput {
        tags: vec![Tag::new("mlflow.data.context", "train")],
        dataset: Dataset {
            name: "iris".into(),
            digest: "abc123".into(),
            source_type: "local".into(),
            source: "{\"uri\": \"/data/iris.csv\"}".into(),
            schema: Some("{}".into()),
            profile: None,
        },
    };
    // Logged after iris but sorted before it by name and digest: it comes back second.
    let later = DatasetInput {
        tags: vec![],
        dataset: Dataset {
            name: "aaa".into(),
            digest: "000".into(),
            ..input.dataset.clone()
        },
    };
    let model = |id: &str| ModelInput {
        model_id: id.into(),
    };
    s.log_inputs(&id, std::slice::from_ref(&input), &[model("m-b")])
        .await
        .unwrap();
    s.log_inputs(
        &id,
        &[later.clone(), input.clone()],
        &[model("m-a"), model("m-b")],
    )
    .await
    .unwrap();
    let run = s.get_run(&id).await.unwrap();
    assert_eq!(run.inputs, vec![input, later]);
    assert_eq!(run.model_inputs, vec![model("m-b"), model("m-a")]);
    let empty = s.get_run(&other).await.unwrap();
    assert!(empty.inputs.is_empty() && empty.model_inputs.is_empty());
    assert_eq!(
        names(
            s,
            run_query(
                &exp,
                "datasets.name = 'iris' AND datasets.context = 'train'",
                &[]
            )
        )
        .await,
        ["with-data"]
    );
    s.log_outputs(
        &id,
        &[ModelOutput {
            model_id: "m-1".into(),
            step: 3,
        }],
    )
    .await
    .unwrap();
    assert_eq!(s.get_run(&id).await.unwrap().outputs[0].step, 3);
});

on_every_backend!(logged_models, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("models", None, &[]).await.unwrap();
    let run = new_run(s, &exp, "trainer", 1).await;
    let mut ids = Vec::new();
    for (i, name) in ["model", "model", "other"].iter().enumerate() {
        let m = s
            .create_logged_model(NewLoggedModel {
                experiment_id: exp.clone(),
                name: Some(name.to_string()),
                source_run_id: Some(run.clone()),
                model_type: None,
                params: vec![Tag::new("alpha", i.to_string())],
                tags: vec![Tag::new("mlflow.user", "me")],
            })
            .await
            .unwrap();
        assert_eq!(m.status, LoggedModelStatus::Pending);
        assert_eq!(
            m.artifact_uri,
            format!("mlflow-artifacts:/{exp}/models/{}/artifacts", m.model_id)
        );
        let mut metric = Metric::new("val_acc", 0.8 + i as f64 / 20.0, 5, 0);
        metric.model_id = Some(m.model_id.clone());
        s.log_batch(&run, &[metric], &[], &[]).await.unwrap();
        ids.push(m.model_id);
    }
    let ready = s
        .finalize_logged_model(&ids[0], LoggedModelStatus::Ready)
        .await
        .unwrap();
    assert_eq!(ready.status, LoggedModelStatus::Ready);
    assert_eq!(ready.metrics.len(), 1);
    assert_eq!(ready.metrics[0].run_id.as_deref(), Some(run.as_str()));
    s.set_logged_model_tags(&ids[0], &[Tag::new("mlflow.modelVersions", "[]")])
        .await
        .unwrap();
    s.delete_logged_model_tag(&ids[0], "mlflow.user")
        .await
        .unwrap();
    s.log_logged_model_params(&ids[0], &[Tag::new("beta", "1")])
        .await
        .unwrap();
    let got = s.get_logged_model(&ids[0], false).await.unwrap();
    assert_eq!(got.tags, vec![Tag::new("mlflow.modelVersions", "[]")]);
    assert_eq!(got.params.len(), 2);

    let search = |filter: &str, order: Vec<LoggedModelOrder>| LoggedModelQuery {
        experiment_ids: vec![exp.clone()],
        filter: Some(filter.into()),
        datasets: vec![],
        order_by: order,
        max_results: 100,
        page_token: None,
    };
    assert_eq!(
        s.search_logged_models(&search("name = 'model'", vec![]))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let source = format!("source_run_id = '{run}'");
    assert_eq!(
        s.search_logged_models(&search(&source, vec![]))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let best = s
        .search_logged_models(&search(
            "metrics.val_acc > 0.82",
            vec![LoggedModelOrder {
                field_name: "metrics.val_acc".into(),
                ascending: false,
                dataset_name: None,
            }],
        ))
        .await
        .unwrap();
    let got: Vec<_> = best.items.iter().map(|m| m.model_id.clone()).collect();
    assert_eq!(got, [ids[2].clone(), ids[1].clone()]);
    assert!(
        s.search_logged_models(&search("name = 'nothing'", vec![]))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.search_logged_models(&search("bogus = 'x'", vec![]))
            .await
            .is_err()
    );

    // The datasets restrict to models with metrics on them, and the metric comparisons to
    // those metrics; without a digest any digest of the name matches.
    for (i, (dataset, digest, value)) in [
        ("eval", "d1", 0.9),
        ("eval", "d2", 0.5),
        ("train", "d1", 0.99),
    ]
    .into_iter()
    .enumerate()
    {
        let mut metric = Metric::new("acc", value, 7, 0);
        metric.model_id = Some(ids[i].clone());
        metric.dataset_name = Some(dataset.into());
        metric.dataset_digest = Some(digest.into());
        s.log_batch(&run, &[metric], &[], &[]).await.unwrap();
    }
    let on = |filter: &str, datasets: &[(&str, Option<&str>)]| {
        let mut q = search(filter, vec![]);
        q.datasets = datasets
            .iter()
            .map(|(name, digest)| DatasetFilter {
                dataset_name: name.to_string(),
                dataset_digest: digest.map(String::from),
            })
            .collect();
        q
    };
    let found = |q: LoggedModelQuery| async move {
        let mut got: Vec<String> = s
            .search_logged_models(&q)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.model_id)
            .collect();
        got.sort();
        got
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        found(on("", &[("eval", None)])).await,
        sorted(vec![ids[0].clone(), ids[1].clone()])
    );
    assert_eq!(
        found(on("", &[("eval", Some("d2"))])).await,
        [ids[1].clone()]
    );
    assert_eq!(
        found(on("metrics.acc >= 0.8", &[("eval", None)])).await,
        [ids[0].clone()]
    );
    assert_eq!(
        found(on("metrics.acc >= 0.8", &[("eval", None), ("train", None)])).await,
        sorted(vec![ids[0].clone(), ids[2].clone()])
    );
    assert_eq!(
        s.search_logged_models(&on("", &[("", Some("d1"))]))
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );
    let failed = s
        .finalize_logged_model(&ids[2], LoggedModelStatus::UploadFailed)
        .await
        .unwrap();
    assert_eq!(failed.status.as_str(), "LOGGED_MODEL_UPLOAD_FAILED");
    assert_eq!(
        found(search("status = 'LOGGED_MODEL_UPLOAD_FAILED'", vec![])).await,
        [ids[2].clone()]
    );

    s.delete_logged_model(&ids[1]).await.unwrap();
    assert_eq!(
        s.get_logged_model(&ids[1], false).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert!(s.get_logged_model(&ids[1], true).await.is_ok());
    assert_eq!(
        s.get_logged_model("m-nope", false).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
});

on_every_backend!(
    /// Concurrent writers to one run: every acknowledged metric is there, and the latest value is
    /// the one with the highest step however the writes interleaved.
    concurrent_batches_are_all_kept,
    |store| {
        let exp = store
            .create_experiment("concurrent", None, &[])
            .await
            .unwrap();
        let id = new_run(store.as_ref(), &exp, "c", 1).await;
        let mut tasks = Vec::new();
        for writer in 0..8i64 {
            let store = store.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                for batch in 0..5i64 {
                    let metrics: Vec<_> = (0..100)
                        .map(|i| {
                            let step = writer * 1000 + batch * 100 + i;
                            Metric::new("m", step as f64, step, step)
                        })
                        .collect();
                    store.log_batch(&id, &metrics, &[], &[]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let history = store
            .get_metric_history(&id, "m", None, None)
            .await
            .unwrap();
        assert_eq!(history.items.len(), 8 * 5 * 100);
        let run = store.get_run(&id).await.unwrap();
        assert_eq!(run.data.metrics[0].step, 7499);
    }
);

/// SQLite's log_batch writer skips the per-row foreign-key checks (it reads the run first, under
/// the write lock) and a lone batch's savepoint: what it writes must still pass SQLite's own
/// check, and a batch for a run that is not there, or refused halfway, must write nothing.
#[tokio::test]
async fn the_sqlite_batch_writer_keeps_every_reference_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = twinloop_meta::SqlStore::open(&twinloop_meta::StoreUri::Sqlite(path.clone()), "x:")
        .await
        .unwrap();
    let exp = store.create_experiment("fk", None, &[]).await.unwrap();
    let id = new_run(&store, &exp, "r", 1).await;
    let mut linked = Metric::new("acc", 0.9, 2, 1);
    linked.model_id = Some("m-1".into());
    let metrics: Vec<Metric> = (0..300)
        .map(|i| Metric::new(format!("k{}", i % 3), f64::from(i), 1, i64::from(i)))
        .chain([Metric::new("nan", f64::NAN, 1, 0), linked])
        .collect();
    store
        .log_batch(
            &id,
            &metrics,
            &[Param::new("p", "1")],
            &[Tag::new("t", "v")],
        )
        .await
        .unwrap();
    let gone = "0123456789abcdef0123456789abcdef";
    let refused = store
        .log_batch(
            gone,
            &metrics,
            &[Param::new("p", "1")],
            &[Tag::new("t", "v")],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::NotFound);
    // Refused after part of it was written (a new param, then a changed one): undone whole.
    let changed = [Param::new("fresh", "1"), Param::new("p", "2")];
    let refused = store
        .log_batch(&id, &metrics, &changed, &[])
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::InvalidArgument);
    let run = store.get_run(&id).await.unwrap();
    assert!(
        run.data.params.iter().all(|p| p.key != "fresh"),
        "{:?}",
        run.data.params
    );
    store.close().await;

    let db = rusqlite::Connection::open(&path).unwrap();
    let broken: Vec<String> = db
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(broken.is_empty(), "rows without their parent in {broken:?}");
    let stray: i64 = db
        .query_row(
            "SELECT (SELECT count(*) FROM metrics WHERE run_uuid = ?1) \
             + (SELECT count(*) FROM params WHERE run_uuid = ?1) \
             + (SELECT count(*) FROM tags WHERE run_uuid = ?1)",
            [gone],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stray, 0);
}
