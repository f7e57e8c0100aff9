//! [`SqlStore`]: the SQL implementation of [`TrackingStore`](crate::TrackingStore) for SQLite and
//! PostgreSQL. Both speak the same SQL (numbered `$n` parameters, `ON CONFLICT`, `RETURNING`)
//! through sqlx's `Any` driver; the few dialect differences live in [`Backend`] and in the two
//! migration folders, which define the same tables.
//!
//! SQLite gets one writer connection and a pool of readers: WAL lets readers run beside the
//! writer, and a single writer never meets `SQLITE_BUSY` on a lock upgrade.

mod deployments;
mod documents;
mod experiments;
mod features;
mod lineage;
mod logged_models;
mod monitors;
mod pairs;
mod query;
mod registry;
mod registry_search;
mod run_search;
mod runs;
mod uri;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use twinloop_core::deployments::DeploymentRecord;
use twinloop_core::features::{FeatureChange, FeatureObject, MaterializationRun};
use twinloop_core::monitoring::{Label, MetricPoint, MonitorEvent, MonitorRecord};
use twinloop_core::tracking::*;
use twinloop_core::{Error, Result};

use crate::store::{
    DeploymentStore, ExperimentQuery, FeatureRegistry, LineageStore, LoggedModelQuery,
    MonitorStore, RegistryQuery, RegistryStore, RunQuery, TrackingStore, WebhookStore,
};
use tokio::sync::broadcast;
use twinloop_core::lineage::{
    Direction, EventKind, LineageGraph, LineageNode, NewNode, NodeKind, NodeRef,
};
use twinloop_core::registry::{
    ModelVersion, NewModelVersion, NewWebhook, RegisteredModel, RegistryEvent, Webhook,
    WebhookDelivery,
};
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
    /// Large reads (metric history, run and version searches) go through this pool.
    bulk_reader: query::Reader,
    /// Prefix of experiment artifact locations, e.g. `mlflow-artifacts:`.
    artifact_root: String,
    /// Registry events committed by this process, for in-process subscribers.
    events: broadcast::Sender<RegistryEvent>,
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;";

impl SqlStore {
    /// Opens (creating if needed) the store at `uri` and brings its schema up to date.
    /// `artifact_root` prefixes the default artifact location of new experiments.
    pub async fn open(uri: &StoreUri, artifact_root: &str) -> Result<SqlStore> {
        install_default_drivers();
        let (backend, writer, reader, bulk_reader) = match uri {
            StoreUri::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::internal(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let url = uri.sqlx_url();
                let writer = sqlite_pool(&url, 1).await?;
                let reader = sqlite_pool(&url, 4).await?;
                let bulk = query::Reader::Sqlite(native_sqlite_reader(&url).await?);
                (Backend::Sqlite, writer, reader, bulk)
            }
            StoreUri::Postgres(_) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&uri.sqlx_url())
                    .await
                    .map_err(|e| Error::internal(format!("cannot connect to {uri}: {e}")))?;
                (
                    Backend::Postgres,
                    pool.clone(),
                    pool.clone(),
                    query::Reader::Any(pool),
                )
            }
        };
        let store = SqlStore {
            backend,
            writer,
            reader,
            bulk_reader,
            artifact_root: artifact_root.trim_end_matches('/').to_string(),
            events: broadcast::channel(1024).0,
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

/// A read-only native SQLite pool with a deep row buffer, for reads of thousands of rows.
async fn native_sqlite_reader(url: &str) -> Result<sqlx::SqlitePool> {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use std::str::FromStr;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::internal(format!("cannot open SQLite database {url}: {e}")))?
        .busy_timeout(Duration::from_secs(10))
        .pragma("case_sensitive_like", "ON")
        .row_buffer_size(1024);
    SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
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

#[async_trait]
impl RegistryStore for SqlStore {
    async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        actor: &str,
    ) -> Result<RegisteredModel> {
        self.create_registered_model_impl(name, description, tags, actor)
            .await
    }
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.get_registered_model_impl(name).await
    }
    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        actor: &str,
    ) -> Result<RegisteredModel> {
        self.rename_registered_model_impl(name, new_name, actor)
            .await
    }
    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        self.update_registered_model_impl(name, description).await
    }
    async fn delete_registered_model(&self, name: &str, actor: &str) -> Result<()> {
        self.delete_registered_model_impl(name, actor).await
    }
    async fn search_registered_models(
        &self,
        query: &RegistryQuery,
    ) -> Result<Page<RegisteredModel>> {
        self.search_registered_models_impl(query).await
    }
    async fn set_registered_model_tag(&self, name: &str, tag: &Tag) -> Result<()> {
        self.set_registered_model_tag_impl(name, tag).await
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.delete_registered_model_tag_impl(name, key).await
    }
    async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        self.get_latest_versions_impl(name, stages).await
    }
    async fn create_model_version(
        &self,
        new: NewModelVersion,
        actor: &str,
    ) -> Result<ModelVersion> {
        self.create_model_version_impl(new, actor).await
    }
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        self.get_model_version_impl(name, version).await
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        self.update_model_version_impl(name, version, description)
            .await
    }
    async fn delete_model_version(&self, name: &str, version: &str, actor: &str) -> Result<()> {
        self.delete_model_version_impl(name, version, actor).await
    }
    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
        actor: &str,
    ) -> Result<ModelVersion> {
        self.transition_stage_impl(name, version, stage, archive_existing_versions, actor)
            .await
    }
    async fn search_model_versions(&self, query: &RegistryQuery) -> Result<Page<ModelVersion>> {
        self.search_model_versions_impl(query).await
    }
    async fn set_model_version_tag(&self, name: &str, version: &str, tag: &Tag) -> Result<()> {
        self.set_model_version_tag_impl(name, version, tag).await
    }
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        self.delete_model_version_tag_impl(name, version, key).await
    }
    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        self.download_uri_impl(name, version).await
    }
    async fn set_alias(&self, name: &str, alias: &str, version: &str, actor: &str) -> Result<()> {
        self.set_alias_impl(name, alias, version, actor).await
    }
    async fn delete_alias(&self, name: &str, alias: &str, actor: &str) -> Result<()> {
        self.delete_alias_impl(name, alias, actor).await
    }
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.version_by_alias_impl(name, alias).await
    }
    async fn registry_events(&self, after: i64, limit: i64) -> Result<Vec<RegistryEvent>> {
        self.registry_events_impl(after, limit).await
    }
    fn subscribe_registry_events(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }
}

#[async_trait]
impl LineageStore for SqlStore {
    async fn put_node(&self, kind: NodeKind, node: NewNode) -> Result<LineageNode> {
        self.put_node_impl(kind, node).await
    }
    async fn put_event(
        &self,
        artifact: NodeRef,
        execution: NodeRef,
        kind: EventKind,
    ) -> Result<()> {
        self.put_event_impl(artifact, execution, kind).await
    }
    async fn put_membership(&self, context: NodeRef, member: NodeRef) -> Result<()> {
        self.put_membership_impl(context, member).await
    }
    async fn resolve_node(&self, key: &str) -> Result<LineageNode> {
        self.resolve_node_impl(key).await
    }
    async fn lineage_graph(
        &self,
        start: NodeRef,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageGraph> {
        self.lineage_graph_impl(start, direction, depth).await
    }
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        self.create_webhook_impl(new).await
    }
    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.list_webhooks_impl().await
    }
    async fn delete_webhook(&self, id: i64) -> Result<()> {
        self.delete_webhook_impl(id).await
    }
    async fn record_delivery(&self, delivery: &WebhookDelivery) -> Result<()> {
        self.record_delivery_impl(delivery).await
    }
    async fn list_deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<WebhookDelivery>> {
        self.list_deliveries_impl(webhook_id, limit).await
    }
}

#[async_trait]
impl FeatureRegistry for SqlStore {
    async fn feature_objects(&self, project: &str) -> Result<Vec<FeatureObject>> {
        self.feature_objects_impl(project).await
    }
    async fn apply_feature_changes(
        &self,
        project: &str,
        changes: &[FeatureChange],
    ) -> Result<Vec<FeatureObject>> {
        self.apply_feature_changes_impl(project, changes).await
    }
    async fn record_materialization(&self, run: &MaterializationRun) -> Result<()> {
        self.record_materialization_impl(run).await
    }
    async fn materializations(&self, project: &str, view: &str) -> Result<Vec<MaterializationRun>> {
        self.materializations_impl(project, view).await
    }
}

#[async_trait]
impl DeploymentStore for SqlStore {
    async fn put_deployment(&self, record: &DeploymentRecord) -> Result<()> {
        self.put_deployment_impl(record).await
    }
    async fn deployments(&self) -> Result<Vec<DeploymentRecord>> {
        self.deployments_impl().await
    }
    async fn delete_deployment(&self, name: &str) -> Result<bool> {
        self.delete_deployment_impl(name).await
    }
}

#[async_trait]
impl MonitorStore for SqlStore {
    async fn put_monitor(&self, record: &MonitorRecord) -> Result<()> {
        self.put_monitor_impl(record).await
    }
    async fn monitors(&self) -> Result<Vec<MonitorRecord>> {
        self.monitors_impl().await
    }
    async fn delete_monitor(&self, name: &str) -> Result<bool> {
        self.delete_monitor_impl(name).await
    }
    async fn put_points(&self, points: &[MetricPoint]) -> Result<()> {
        self.put_points_impl(points).await
    }
    async fn points(&self, monitor: &str, limit: i64) -> Result<Vec<MetricPoint>> {
        self.points_impl(monitor, limit).await
    }
    async fn put_labels(&self, labels: &[Label]) -> Result<()> {
        self.put_labels_impl(labels).await
    }
    async fn labels(&self, request_ids: &[String]) -> Result<Vec<Label>> {
        self.labels_impl(request_ids).await
    }
    async fn add_monitor_event(&self, monitor: &str, kind: &str, payload: &str) -> Result<i64> {
        self.add_monitor_event_impl(monitor, kind, payload).await
    }
    async fn monitor_events(
        &self,
        monitor: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MonitorEvent>> {
        self.monitor_events_impl(monitor, after, limit).await
    }
}
