//! Serving deployments on SQL: name-keyed documents in `deployments`.

use twinloop_core::Result;
use twinloop_core::deployments::DeploymentRecord;

use super::SqlStore;

impl SqlStore {
    pub(super) async fn put_deployment_impl(&self, record: &DeploymentRecord) -> Result<()> {
        self.put_document("deployments", &record.name, &record.spec, &record.state)
            .await
    }

    pub(super) async fn deployments_impl(&self) -> Result<Vec<DeploymentRecord>> {
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

    pub(super) async fn delete_deployment_impl(&self, name: &str) -> Result<bool> {
        self.delete_document("deployments", name).await
    }
}
