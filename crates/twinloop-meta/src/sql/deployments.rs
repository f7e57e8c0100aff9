//! Serving deployments on SQL: name-keyed documents in `deployments`.

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::deployments::DeploymentRecord;

use super::SqlStore;
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
}
