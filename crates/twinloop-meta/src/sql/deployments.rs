//! Serving deployments on SQL: one row per deployment, replaced whole on each change.

use twinloop_core::Result;
use twinloop_core::deployments::DeploymentRecord;
use twinloop_core::time::now_ms;

use super::SqlStore;
use super::query::{Arg, RowExt};

impl SqlStore {
    pub(super) async fn put_deployment_impl(&self, record: &DeploymentRecord) -> Result<()> {
        let mut sql = self.sql("INSERT INTO deployments (name, spec, state, update_time) VALUES ");
        sql.tuple([
            Arg::from(&record.name),
            Arg::from(&record.spec),
            Arg::from(&record.state),
            Arg::from(now_ms()),
        ]);
        sql.push(
            " ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, state = excluded.state, \
             update_time = excluded.update_time",
        );
        sql.execute(&self.writer).await?;
        Ok(())
    }

    pub(super) async fn deployments_impl(&self) -> Result<Vec<DeploymentRecord>> {
        let sql = self.sql("SELECT name, spec, state, update_time FROM deployments ORDER BY name");
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                Ok(DeploymentRecord {
                    name: row.text(0)?,
                    spec: row.text(1)?,
                    state: row.text(2)?,
                    update_time: row.int(3)?,
                })
            })
            .collect()
    }

    pub(super) async fn delete_deployment_impl(&self, name: &str) -> Result<bool> {
        let mut sql = self.sql("DELETE FROM deployments WHERE name = ");
        sql.arg(name);
        Ok(sql.execute(&self.writer).await? > 0)
    }
}
