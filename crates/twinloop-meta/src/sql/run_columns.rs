//! [`RunColumnStore`] over `latest_metrics`' summaries (`summaries.rs`) and `experiment_keys`
//! (`keys.rs`).

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::run_columns::{KeyList, KeyQuery, RunSummaries};

use super::SqlStore;
use crate::store::RunColumnStore;

#[async_trait]
impl RunColumnStore for SqlStore {
    async fn metric_summaries(
        &self,
        run_ids: &[String],
        keys: Option<&[String]>,
    ) -> Result<Vec<RunSummaries>> {
        self.read_metric_summaries(run_ids, keys).await
    }

    async fn experiment_keys(&self, experiment_id: &str, query: &KeyQuery) -> Result<KeyList> {
        self.list_experiment_keys(experiment_id, query).await
    }
}
