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
