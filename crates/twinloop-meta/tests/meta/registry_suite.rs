//! The RegistryStore and LineageStore behaviour, run against every backend.

use twinloop_core::ErrorKind;
use twinloop_core::lineage::{Direction, EventKind, NewNode, NodeKind};
use twinloop_core::registry::{NewModelVersion, RegistryEventKind};
use twinloop_core::tracking::*;
use twinloop_meta::{
    ExperimentStore, LineageStore, LoggedModelStore, ModelAliasStore, ModelVersionStore,
    RegisteredModelStore, RegistryEventLog, RegistryQuery, RunStore, SqlStore,
};

fn version(name: &str, source: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.into(),
        source: source.into(),
        ..Default::default()
    }
}

fn query(filter: &str, order_by: &[&str], max: i64) -> RegistryQuery {
    RegistryQuery {
        filter: Some(filter.into()),
        order_by: order_by.iter().map(|s| s.to_string()).collect(),
        max_results: max,
        page_token: None,
    }
}

on_every_backend!(models_versions_aliases_and_events, |s: &SqlStore| {
    let mut events = s.subscribe_registry_events();
    let m = s
        .create_registered_model("fraud", Some("d"), &[Tag::new("team", "risk")], "alice")
        .await
        .unwrap();
    assert_eq!(
        (m.name.as_str(), m.description.as_deref()),
        ("fraud", Some("d"))
    );
    let dup = s
        .create_registered_model("fraud", None, &[], "alice")
        .await
        .unwrap_err();
    assert_eq!(dup.kind, ErrorKind::AlreadyExists);
    assert_eq!(
        s.create_registered_model(" ", None, &[], "a")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );

    for i in 1..=3 {
        let v = s
            .create_model_version(version("fraud", &format!("s3://b/{i}")), "alice")
            .await
            .unwrap();
        assert_eq!(
            (v.version, v.current_stage.as_str(), v.status.as_str()),
            (i, "None", "READY")
        );
    }
    let missing = s
        .create_model_version(version("nope", "x"), "a")
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);

    s.set_alias("fraud", "champion", "1", "alice")
        .await
        .unwrap();
    s.set_alias("fraud", "champion", "2", "bob").await.unwrap();
    let champ = s
        .get_model_version_by_alias("fraud", "champion")
        .await
        .unwrap();
    assert_eq!(
        (champ.version, champ.aliases.clone()),
        (2, vec!["champion".to_string()])
    );
    assert_eq!(
        s.set_alias("fraud", "champion", "9", "a")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        s.set_alias("fraud", "latest", "1", "a")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        s.get_model_version_by_alias("fraud", "nope")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        s.get_model_version("fraud", "abc").await.unwrap_err().kind,
        ErrorKind::InvalidArgument
    );

    let model = s.get_registered_model("fraud").await.unwrap();
    assert_eq!(model.aliases.len(), 1);
    assert_eq!(
        model
            .latest_versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        [3]
    );

    let staged = s
        .transition_model_version_stage("fraud", "1", "production", false, "a")
        .await
        .unwrap();
    assert_eq!(staged.current_stage, "Production");
    s.transition_model_version_stage("fraud", "3", "Production", true, "a")
        .await
        .unwrap();
    assert_eq!(
        s.get_model_version("fraud", "1")
            .await
            .unwrap()
            .current_stage,
        "Archived"
    );
    let latest = s
        .get_latest_versions("fraud", &["Production".into()])
        .await
        .unwrap();
    assert_eq!(latest.iter().map(|v| v.version).collect::<Vec<_>>(), [3]);
    // The model's latest versions: the newest of each stage, in version order.
    let newest = |m: twinloop_core::registry::RegisteredModel| {
        m.latest_versions
            .into_iter()
            .map(|v| (v.version, v.current_stage))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        newest(s.get_registered_model("fraud").await.unwrap()),
        [
            (1, "Archived".to_string()),
            (2, "None".to_string()),
            (3, "Production".to_string())
        ]
    );

    s.delete_model_version("fraud", "2", "bob").await.unwrap();
    assert_eq!(
        newest(s.get_registered_model("fraud").await.unwrap()),
        [(1, "Archived".to_string()), (3, "Production".to_string())]
    );
    assert_eq!(
        s.get_model_version("fraud", "2").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert!(
        s.get_model_version_by_alias("fraud", "champion")
            .await
            .is_err(),
        "the alias went with the version"
    );
    let v4 = s
        .create_model_version(version("fraud", "s3://b/4"), "a")
        .await
        .unwrap();
    assert_eq!(v4.version, 4, "deleted numbers are not reused");

    let renamed = s
        .rename_registered_model("fraud", "fraud-v2", "alice")
        .await
        .unwrap();
    assert_eq!(renamed.name, "fraud-v2");
    assert_eq!(
        s.get_model_version("fraud-v2", "4").await.unwrap().name,
        "fraud-v2"
    );

    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(e.kind);
    }
    assert!(kinds.contains(&RegistryEventKind::AliasSet));
    let recorded = s.registry_events(0, 1000).await.unwrap();
    let moves: Vec<_> = recorded
        .iter()
        .filter(|e| e.kind == RegistryEventKind::AliasSet)
        .collect();
    assert_eq!(moves.len(), 2);
    assert_eq!(
        (
            moves[1].before.as_deref(),
            moves[1].after.as_deref(),
            moves[1].actor.as_str()
        ),
        (Some("1"), Some("2"), "bob")
    );
    assert!(recorded.windows(2).all(|w| w[0].id < w[1].id));

    s.delete_registered_model("fraud-v2", "alice")
        .await
        .unwrap();
    assert_eq!(
        s.get_registered_model("fraud-v2").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
});

on_every_backend!(registry_search, |s: &SqlStore| {
    for i in 0..5 {
        s.create_registered_model(
            &format!("pfx-{i}"),
            None,
            &[Tag::new("k", (i % 2).to_string())],
            "a",
        )
        .await
        .unwrap();
        for _ in 0..=i {
            s.create_model_version(version(&format!("pfx-{i}"), "src"), "a")
                .await
                .unwrap();
        }
    }
    s.create_registered_model(
        "prompt-1",
        None,
        &[Tag::new("mlflow.prompt.is_prompt", "true")],
        "a",
    )
    .await
    .unwrap();
    let names = |page: twinloop_core::tracking::Page<twinloop_core::registry::RegisteredModel>| {
        page.items.into_iter().map(|m| m.name).collect::<Vec<_>>()
    };
    let all = s
        .search_registered_models(&query("", &[], 100))
        .await
        .unwrap();
    assert_eq!(
        names(all),
        ["pfx-0", "pfx-1", "pfx-2", "pfx-3", "pfx-4"],
        "prompts are hidden"
    );
    let client_style = query(
        "name LIKE 'pfx-%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
        &["name DESC"],
        2,
    );
    let first = s.search_registered_models(&client_style).await.unwrap();
    let token = first.next_page_token.clone();
    assert_eq!(names(first), ["pfx-4", "pfx-3"]);
    let second = s
        .search_registered_models(&RegistryQuery {
            page_token: token,
            ..client_style
        })
        .await
        .unwrap();
    assert_eq!(names(second), ["pfx-2", "pfx-1"]);
    assert_eq!(
        names(
            s.search_registered_models(&query("tags.k = '1'", &[], 100))
                .await
                .unwrap()
        ),
        ["pfx-1", "pfx-3"]
    );
    assert_eq!(
        s.search_registered_models(&query("tags.mlflow.prompt.is_prompt = 'true'", &[], 100))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let versions = s
        .search_model_versions(&query("name = 'pfx-4'", &["version_number DESC"], 3))
        .await
        .unwrap();
    assert_eq!(
        versions.items.iter().map(|v| v.version).collect::<Vec<_>>(),
        [5, 4, 3]
    );
    assert!(versions.next_page_token.is_some());
    assert_eq!(
        s.search_model_versions(&query("name LIKE 'pfx-%'", &[], 1000))
            .await
            .unwrap()
            .items
            .len(),
        15
    );
    assert_eq!(
        s.search_model_versions(&query("version_number > 3", &[], 1000))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    for bad in ["bogus = 1", "name >> 'x'", "metrics.x > 1"] {
        assert!(
            s.search_model_versions(&query(bad, &[], 10)).await.is_err(),
            "{bad}"
        );
    }
});

on_every_backend!(
    /// Two writers registering versions of one model at once never get the same number.
    concurrent_registration_numbers_are_unique,
    |store| {
        store
            .create_registered_model("race", None, &[], "a")
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..10 {
                    got.push(
                        store
                            .create_model_version(version("race", "src"), "a")
                            .await
                            .unwrap()
                            .version,
                    );
                }
                got
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        assert_eq!(all, (1..=80).collect::<Vec<_>>());
    }
);

on_every_backend!(tracking_fills_lineage, |s: &SqlStore| {
    let exp = s.create_experiment("lineage", None, &[]).await.unwrap();
    let run = s
        .create_run(NewRun {
            experiment_id: exp.clone(),
            run_name: Some("train".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .info
        .run_id;
    let dataset = Dataset {
        name: "rides".into(),
        digest: "d1".into(),
        source_type: "local".into(),
        source: "/data/rides.parquet".into(),
        schema: None,
        profile: None,
    };
    s.log_inputs(
        &run,
        &[DatasetInput {
            tags: vec![],
            dataset,
        }],
        &[],
    )
    .await
    .unwrap();
    let model = s
        .create_logged_model(NewLoggedModel {
            experiment_id: exp.clone(),
            name: Some("model".into()),
            source_run_id: Some(run.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    s.create_registered_model("rides", None, &[], "a")
        .await
        .unwrap();
    let mut new = version("rides", &format!("models:/{}", model.model_id));
    new.model_id = Some(model.model_id.clone());
    let v = s.create_model_version(new, "a").await.unwrap();
    assert_eq!(v.run_id, run, "run_id is filled from the logged model");

    let start = s.resolve_node("model_version:rides/1").await.unwrap();
    let up = s
        .lineage_graph(start.node, Direction::Upstream, 10)
        .await
        .unwrap();
    let ids: Vec<_> = up
        .nodes
        .iter()
        .filter_map(|n| n.external_id.clone())
        .collect();
    for expected in [
        format!("run:{run}"),
        format!("dataset:{exp}/rides@d1"),
        format!("logged_model:{}", model.model_id),
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    let shallow = s
        .lineage_graph(start.node, Direction::Upstream, 1)
        .await
        .unwrap();
    assert_eq!(shallow.nodes.len(), 2, "depth counts edges");

    let data = s
        .resolve_node(&format!("dataset:{exp}/rides@d1"))
        .await
        .unwrap();
    let down = s
        .lineage_graph(data.node, Direction::Downstream, 10)
        .await
        .unwrap();
    assert!(
        down.nodes
            .iter()
            .any(|n| n.external_id.as_deref() == Some("model_version:rides/1"))
    );

    assert!(
        s.lineage_graph(start.node, Direction::Upstream, 101)
            .await
            .is_err()
    );
    assert_eq!(
        s.resolve_node("run:nope").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
});

on_every_backend!(hand_recorded_lineage_refuses_cycles, |s: &SqlStore| {
    let node = |t: &str, ext: &str| NewNode {
        node_type: t.into(),
        name: ext.into(),
        external_id: Some(ext.into()),
        ..Default::default()
    };
    let a = s
        .put_node(NodeKind::Artifact, node("dataset", "raw"))
        .await
        .unwrap()
        .node;
    let e = s
        .put_node(NodeKind::Execution, node("step", "clean"))
        .await
        .unwrap()
        .node;
    let b = s
        .put_node(NodeKind::Artifact, node("dataset", "clean-data"))
        .await
        .unwrap()
        .node;
    let again = s
        .put_node(NodeKind::Artifact, node("dataset", "raw"))
        .await
        .unwrap()
        .node;
    assert_eq!(a, again, "the external id makes puts idempotent");
    s.put_event(a, e, EventKind::Input).await.unwrap();
    s.put_event(b, e, EventKind::Output).await.unwrap();
    let cycle = s.put_event(b, e, EventKind::Input).await.unwrap_err();
    assert_eq!(cycle.kind, ErrorKind::InvalidArgument);
    let e2 = s
        .put_node(NodeKind::Execution, node("step", "loop"))
        .await
        .unwrap()
        .node;
    s.put_event(b, e2, EventKind::Input).await.unwrap();
    assert!(s.is_downstream(a, e2).await.unwrap(), "a -> e -> b -> e2");
    assert!(s.is_downstream(a, a).await.unwrap());
    assert!(!s.is_downstream(e2, a).await.unwrap());
    assert!(
        s.put_event(a, e2, EventKind::Output).await.is_err(),
        "a -> e -> b -> e2 -> a is a cycle"
    );
    assert!(
        s.put_event(e, a, EventKind::Input).await.is_err(),
        "an event joins an artifact and an execution"
    );
    let bad_props = NewNode {
        properties: Some("[1]".into()),
        ..node("dataset", "x")
    };
    assert!(s.put_node(NodeKind::Artifact, bad_props).await.is_err());
    let ctx = s
        .put_node(NodeKind::Context, node("pipeline_run", "p1"))
        .await
        .unwrap()
        .node;
    s.put_membership(ctx, e).await.unwrap();
    assert!(s.lineage_graph(ctx, Direction::Both, 3).await.is_err());
});

on_every_backend!(a_models_timeline_follows_its_renames, |s: &SqlStore| {
    s.create_registered_model("old", None, &[], "a")
        .await
        .unwrap();
    s.create_model_version(version("old", "s3://b/1"), "a")
        .await
        .unwrap();
    s.create_registered_model("other", None, &[], "a")
        .await
        .unwrap();
    s.rename_registered_model("old", "new", "a").await.unwrap();
    // A model that takes the old name later has a history of its own.
    s.create_registered_model("old", None, &[], "b")
        .await
        .unwrap();
    s.set_alias("new", "champion", "1", "a").await.unwrap();
    s.delete_alias("new", "champion", "a").await.unwrap();

    let kinds = |events: &[twinloop_core::registry::RegistryEvent]| {
        events.iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    let all = s.model_registry_events("new", None, 100).await.unwrap();
    assert_eq!(
        kinds(&all),
        [
            RegistryEventKind::AliasDeleted,
            RegistryEventKind::AliasSet,
            RegistryEventKind::ModelRenamed,
            RegistryEventKind::VersionCreated,
            RegistryEventKind::ModelCreated,
        ]
    );
    // Pages by id, newest first.
    let first = s.model_registry_events("new", None, 2).await.unwrap();
    let rest = s
        .model_registry_events("new", Some(first[1].id), 100)
        .await
        .unwrap();
    assert_eq!(kinds(&rest), kinds(&all[2..]));
    let reused = s.model_registry_events("old", None, 100).await.unwrap();
    assert_eq!(kinds(&reused), [RegistryEventKind::ModelCreated]);
    assert_eq!(reused[0].actor, "b");
});
