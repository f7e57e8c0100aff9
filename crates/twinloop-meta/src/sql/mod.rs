//! [`SqlStore`]: the SQL implementation of [`TrackingStore`](crate::TrackingStore) for SQLite and
//! PostgreSQL. Both speak the same SQL (numbered `$n` parameters, `ON CONFLICT`, `RETURNING`)
//! through sqlx's `Any` driver; the few dialect differences live in [`Backend`] and in the two
//! migration folders, which define the same tables.
//!
//! SQLite gets one writer connection and a pool of readers: WAL lets readers run beside the
//! writer, and a single writer never meets `SQLITE_BUSY` on a lock upgrade.

mod experiments;
mod logged_models;
mod query;
mod run_search;
mod runs;
mod uri;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use twinloop_core::tracking::*;
use twinloop_core::{Error, Result};

use crate::store::{ExperimentQuery, LoggedModelQuery, RunQuery, TrackingStore};
pub use uri::StoreUri;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct SqlStore {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    /// Prefix of experiment artifact locations, e.g. `mlflow-artifacts:`.
    artifact_root: String,
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;";

impl SqlStore {
    /// Opens (creating if needed) the store at `uri` and brings its schema up to date.
    /// `artifact_root` prefixes the default artifact location of new experiments.
    pub async fn open(uri: &StoreUri, artifact_root: &str) -> Result<SqlStore> {
        install_default_drivers();
        let (backend, writer, reader) = match uri {
            StoreUri::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::internal(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let url = uri.sqlx_url();
                let writer = sqlite_pool(&url, 1).await?;
                let reader = sqlite_pool(&url, 4).await?;
                (Backend::Sqlite, writer, reader)
            }
            StoreUri::Postgres(_) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&uri.sqlx_url())
                    .await
                    .map_err(|e| Error::internal(format!("cannot connect to {uri}: {e}")))?;
                (Backend::Postgres, pool.clone(), pool)
            }
        };
        let store = SqlStore {
            backend,
            writer,
            reader,
            artifact_root: artifact_root.trim_end_matches('/').to_string(),
        };
        store.migrate().await?;
        store.ensure_default_experiment().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn sql(&self, text: &str) -> query::Sql {
        query::Sql::new(self.backend, text)
    }

    async fn migrate(&self) -> Result<()> {
        let result = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.writer).await,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.writer)
                    .await
            }
        };
        result.map_err(|e| Error::internal(format!("database migration failed: {e}")))
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

async fn sqlite_pool(url: &str, connections: u32) -> Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| Error::internal(format!("cannot open SQLite database {url}: {e}")))
}

/// Maps a database failure to the error a caller sees. Constraint violations are the caller's
/// doing; anything else is ours.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return Error::already_exists(db.message().to_string());
    }
    Error::internal(format!("database error: {e}"))
}

#[async_trait]
impl TrackingStore for SqlStore {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String> {
        self.create_experiment_impl(name, artifact_location, tags)
            .await
    }
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        self.get_experiment_impl(experiment_id).await
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.get_experiment_by_name_impl(name).await
    }
    async fn search_experiments(&self, query: &ExperimentQuery) -> Result<Page<Experiment>> {
        self.search_experiments_impl(query).await
    }
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        self.rename_experiment_impl(experiment_id, new_name).await
    }
    async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(experiment_id, LifecycleStage::Deleted)
            .await
    }
    async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(experiment_id, LifecycleStage::Active)
            .await
    }
    async fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()> {
        self.set_experiment_tag_impl(experiment_id, tag).await
    }
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        self.delete_experiment_tag_impl(experiment_id, key).await
    }

    async fn create_run(&self, run: NewRun) -> Result<Run> {
        self.create_run_impl(run).await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.get_run_impl(run_id).await
    }
    async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        self.update_run_impl(run_id, update).await
    }
    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Deleted).await
    }
    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Active).await
    }
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()> {
        self.log_batch_impl(run_id, metrics, params, tags).await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.delete_tag_impl(run_id, key).await
    }
    async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()> {
        self.log_inputs_impl(run_id, inputs).await
    }
    async fn log_outputs(&self, run_id: &str, outputs: &[ModelOutput]) -> Result<()> {
        self.log_outputs_impl(run_id, outputs).await
    }
    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        self.get_metric_history_impl(run_id, key, max_results, page_token)
            .await
    }
    async fn search_runs(&self, query: &RunQuery) -> Result<Page<Run>> {
        self.search_runs_impl(query).await
    }

    async fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel> {
        self.create_logged_model_impl(model).await
    }
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        self.get_logged_model_impl(model_id, allow_deleted).await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.finalize_logged_model_impl(model_id, status).await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.delete_logged_model_impl(model_id).await
    }
    async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()> {
        self.set_logged_model_tags_impl(model_id, tags).await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.delete_logged_model_tag_impl(model_id, key).await
    }
    async fn log_logged_model_params(&self, model_id: &str, params: &[Param]) -> Result<()> {
        self.log_logged_model_params_impl(model_id, params).await
    }
    async fn search_logged_models(&self, query: &LoggedModelQuery) -> Result<Page<LoggedModel>> {
        self.search_logged_models_impl(query).await
    }
}
