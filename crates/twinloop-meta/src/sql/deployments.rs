//! Serving deployments on SQL: name-keyed documents in `deployments`, and the canary traffic
//! every replica adds to (`canary_traffic`).

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::deployments::DeploymentRecord;

use super::SqlStore;
use super::query::{Arg, RowExt};
use crate::store::DeploymentStore;

#[async_trait]
impl DeploymentStore for SqlStore {
    async fn put_deployment(&self, record: &DeploymentRecord) -> Result<()> {
        self.put_document("deployments", &record.name, &record.spec, &record.state)
            .await
    }

    async fn put_deployment_moving_alias(
        &self,
        record: &DeploymentRecord,
        model: &str,
        alias: &str,
        version: &str,
        actor: &str,
    ) -> Result<()> {
        let put = self.document_upsert("deployments", &record.name, &record.spec, &record.state);
        self.set_alias_with(model, alias, version, actor, Some(put))
            .await
    }

    async fn deployments(&self) -> Result<Vec<DeploymentRecord>> {
        Ok(self
            .documents("deployments")
            .await?
            .into_iter()
            .map(|(name, spec, state, update_time)| DeploymentRecord {
                name,
                spec,
                state,
                update_time,
            })
            .collect())
    }

    async fn delete_deployment(&self, name: &str) -> Result<bool> {
        self.delete_document("deployments", name).await
    }

    async fn add_canary_traffic(
        &self,
        deployment: &str,
        model: &str,
        version: &str,
        counts: &[(i64, i64)],
    ) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        // In bucket order, so that two replicas adding at once lock the rows in one order.
        let mut counts = counts.to_vec();
        counts.sort_unstable();
        let mut sql = self
            .sql("INSERT INTO canary_traffic (deployment, model, version, bucket, count) VALUES ");
        for (i, (bucket, count)) in counts.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.tuple([
                Arg::from(deployment),
                Arg::from(model),
                Arg::from(version),
                Arg::from(bucket),
                Arg::from(count),
            ]);
        }
        sql.push(
            " ON CONFLICT (deployment, model, version, bucket) \
             DO UPDATE SET count = canary_traffic.count + excluded.count",
        );
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn canary_traffic(
        &self,
        deployment: &str,
        model: &str,
        version: &str,
    ) -> Result<Vec<(i64, i64)>> {
        let mut sql = self.sql("SELECT bucket, count FROM canary_traffic WHERE deployment = ");
        sql.arg(deployment)
            .push(" AND model = ")
            .arg(model)
            .push(" AND version = ")
            .arg(version)
            .push(" ORDER BY bucket");
        sql.fetch_all(&self.writer)
            .await?
            .iter()
            .map(|row| Ok((row.int(0)?, row.int(1)?)))
            .collect()
    }

    async fn clear_canary_traffic(&self, deployment: &str) -> Result<()> {
        let mut sql = self.sql("DELETE FROM canary_traffic WHERE deployment = ");
        sql.arg(deployment);
        sql.execute(&self.writer).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use twinloop_core::registry::NewModelVersion;

    use super::*;
    use crate::store::{
        ModelAliasStore, ModelVersionStore, RegisteredModelStore, RegistryEventLog,
    };

    /// The other half of the one transaction (the suite's case refuses the alias): a deployment
    /// that cannot be stored takes the alias move and its event with it.
    #[tokio::test]
    async fn a_promotion_whose_deployment_cannot_be_stored_leaves_the_alias_alone() {
        let dir = tempfile::tempdir().unwrap();
        let uri = crate::sql::StoreUri::Sqlite(dir.path().join("t.db"));
        let store = SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap();
        store
            .create_registered_model("m", None, &[], "a")
            .await
            .unwrap();
        for i in 1..=2 {
            let version = NewModelVersion {
                name: "m".into(),
                source: format!("s3://b/{i}"),
                ..Default::default()
            };
            store.create_model_version(version, "a").await.unwrap();
        }
        store.set_alias("m", "champion", "1", "a").await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON deployments \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        let mut events = store.subscribe_registry_events();
        let before = store.latest_registry_event_id().await.unwrap();
        let record = DeploymentRecord {
            name: "d".into(),
            spec: "{}".into(),
            state: "{}".into(),
            update_time: 0,
        };
        store
            .put_deployment_moving_alias(&record, "m", "champion", "2", "c")
            .await
            .unwrap_err();
        let champion = store.get_model_version_by_alias("m", "champion").await;
        assert_eq!(champion.unwrap().version, 1);
        assert_eq!(store.latest_registry_event_id().await.unwrap(), before);
        assert!(events.try_recv().is_err());
        assert!(store.deployments().await.unwrap().is_empty());
    }
}
