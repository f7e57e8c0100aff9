//! [`RunColumnStore`] over `latest_metrics`' summaries (`summaries.rs`), `experiment_keys`
//! (`keys.rs`) and the run search's filter (`run_search.rs`) for counts and groups.

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::run_columns::{GroupQuery, KeyList, KeyQuery, RunGroup, RunSummaries};

use super::run_search::{count_query, group_query, run_order_query};
use super::{Backend, SqlStore};
use crate::store::{RunColumnStore, RunQuery};

/// The tag MLflow records a nested run's parent in.
const PARENT_TAG: &str = "mlflow.parentRunId";

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

    async fn count_runs(&self, query: &RunQuery) -> Result<i64> {
        let Some(sql) = count_query(self.sql("SELECT COUNT(*) FROM runs r"), query)? else {
            return Ok(0);
        };
        let mut count = 0;
        sql.read(&self.bulk_reader).await?.for_each(|row| {
            count = row.int(0)?;
            Ok(())
        })?;
        Ok(count)
    }

    async fn run_order(&self, query: &RunQuery, at_most: usize) -> Result<Option<Vec<String>>> {
        let Some(mut sql) = run_order_query(self.sql("SELECT r.run_uuid FROM runs r"), query)?
        else {
            return Ok(Some(Vec::new()));
        };
        // One past the bound tells a search that has more from one that has exactly that many.
        sql.push(" LIMIT ")
            .arg(i64::try_from(at_most).unwrap_or(i64::MAX - 1) + 1);
        let ids = sql
            .read(&self.bulk_reader)
            .await?
            .decode(|row| row.text(0))?;
        Ok((ids.len() <= at_most).then_some(ids))
    }

    async fn run_parents(
        &self,
        query: &RunQuery,
        at_most: usize,
    ) -> Result<Option<Vec<(String, String)>>> {
        // Read from the parent tags (`tags_by_key_value`), not from the view's runs: an
        // experiment of 100,000 runs without nested runs is then one index seek, not 100,000
        // probes. SQLite, without statistics, would start from the runs; CROSS JOIN fixes its
        // order. PostgreSQL plans from its own statistics.
        let join = match self.backend {
            Backend::Sqlite => "CROSS JOIN",
            Backend::Postgres => "JOIN",
        };
        let mut sql = self.sql(&format!(
            "SELECT r.run_uuid, parent_tag.value FROM tags parent_tag {join} runs r \
             ON r.run_uuid = parent_tag.run_uuid AND parent_tag.key = "
        ));
        sql.arg(PARENT_TAG);
        let Some(mut sql) = count_query(sql, query)? else {
            return Ok(Some(Vec::new()));
        };
        sql.push(" AND parent_tag.value <> '' LIMIT ")
            .arg(i64::try_from(at_most).unwrap_or(i64::MAX - 1) + 1);
        let parents = sql
            .read(&self.bulk_reader)
            .await?
            .decode(|row| Ok((row.text(0)?, row.text(1)?)))?;
        Ok((parents.len() <= at_most).then_some(parents))
    }

    async fn group_runs(&self, query: &RunQuery, group: &GroupQuery) -> Result<Vec<RunGroup>> {
        let Some(sql) = group_query(self.sql(""), query, group)? else {
            return Ok(Vec::new());
        };
        sql.read(&self.bulk_reader).await?.decode(|row| {
            Ok(RunGroup {
                value: row.opt_text(0)?,
                runs: row.int(1)?,
                with_metric: row.int(2)?,
                mean: row.opt_float(3)?,
                min: row.opt_float(4)?,
                max: row.opt_float(5)?,
            })
        })
    }
}
