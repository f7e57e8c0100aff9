//! The DeploymentStore behaviour, run against every backend.

use twinloop_core::ErrorKind;
use twinloop_core::deployments::DeploymentRecord;
use twinloop_core::registry::{NewModelVersion, RegistryEventKind};
use twinloop_meta::{
    DeploymentStore, ModelAliasStore, ModelVersionStore, RegisteredModelStore, RegistryEventLog,
    SqlStore,
};

fn record(name: &str, spec: &str) -> DeploymentRecord {
    DeploymentRecord {
        name: name.into(),
        spec: spec.into(),
        state: "{}".into(),
        update_time: 0,
    }
}

on_every_backend!(
    deployments_are_replaced_listed_and_deleted,
    |s: &SqlStore| {
        s.put_deployment(&record("b", "{\"v\":1}")).await.unwrap();
        s.put_deployment(&record("a", "{\"v\":1}")).await.unwrap();
        s.put_deployment(&record("b", "{\"v\":2}")).await.unwrap();
        let all = s.deployments().await.unwrap();
        let names: Vec<(&str, &str)> = all
            .iter()
            .map(|d| (d.name.as_str(), d.spec.as_str()))
            .collect();
        assert_eq!(names, vec![("a", "{\"v\":1}"), ("b", "{\"v\":2}")]);
        assert!(all.iter().all(|d| d.update_time > 0));
        assert!(s.delete_deployment("a").await.unwrap());
        assert!(!s.delete_deployment("a").await.unwrap());
        assert_eq!(s.deployments().await.unwrap().len(), 1);
    }
);

on_every_backend!(
    a_promotion_stores_the_deployment_and_moves_the_alias_at_once,
    |s: &SqlStore| {
        s.create_registered_model("fraud", None, &[], "a")
            .await
            .unwrap();
        for i in 1..=2 {
            let version = NewModelVersion {
                name: "fraud".into(),
                source: format!("s3://b/{i}"),
                ..Default::default()
            };
            s.create_model_version(version, "a").await.unwrap();
        }
        s.set_alias("fraud", "champion", "1", "a").await.unwrap();
        s.put_deployment(&record("d", "{\"canary\":true}"))
            .await
            .unwrap();
        let mut events = s.subscribe_registry_events();
        let before = s.latest_registry_event_id().await.unwrap();

        // The alias cannot move (no version 9): nothing is written, nothing announced.
        let refused = s
            .put_deployment_moving_alias(
                &record("d", "{\"promoted\":9}"),
                "fraud",
                "champion",
                "9",
                "c",
            )
            .await
            .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::NotFound, "{}", refused.message);
        assert_eq!(s.deployments().await.unwrap()[0].spec, "{\"canary\":true}");
        assert_eq!(s.latest_registry_event_id().await.unwrap(), before);
        assert!(events.try_recv().is_err());

        s.put_deployment_moving_alias(
            &record("d", "{\"promoted\":2}"),
            "fraud",
            "champion",
            "2",
            "c",
        )
        .await
        .unwrap();
        assert_eq!(s.deployments().await.unwrap()[0].spec, "{\"promoted\":2}");
        let champion = s
            .get_model_version_by_alias("fraud", "champion")
            .await
            .unwrap();
        assert_eq!(champion.version, 2);
        let logged = s.registry_events(before, 10).await.unwrap();
        let heard = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        for event in [&logged[0], &heard] {
            assert_eq!(
                (
                    event.kind,
                    event.actor.as_str(),
                    event.before.as_deref(),
                    event.after.as_deref()
                ),
                (RegistryEventKind::AliasSet, "c", Some("1"), Some("2"))
            );
        }
        assert_eq!(logged.len(), 1);
    }
);
