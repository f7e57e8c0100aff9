//! The DeploymentStore behaviour, run against every backend.

use twinloop_core::deployments::DeploymentRecord;
use twinloop_meta::{DeploymentStore, SqlStore};

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
