use std::sync::Arc;

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::auth::{
    ApiToken, AppliedGrant, Grant, Permission, ResourceType, Role, RoleAssignment, RolePermission,
    TokenScope, User, UserCredentials,
};
use twinloop_core::deployments::DeploymentRecord;
use twinloop_core::features::{FeatureChange, FeatureObject, MaterializationRun};
use twinloop_core::lineage::{
    Direction, EventKind, LineageGraph, LineageNode, NewNode, NodeKind, NodeRef,
};
use twinloop_core::monitoring::{Label, MetricPoint, MonitorEvent, MonitorRecord};
use twinloop_core::registry::{
    MlflowWebhook, MlflowWebhookUpdate, ModelVersion, NewMlflowWebhook, NewModelVersion,
    NewWebhook, RegisteredModel, RegistryEvent, Webhook, WebhookDelivery,
};
use twinloop_core::run_columns::{GroupQuery, KeyList, KeyQuery, RunGroup, RunSummaries};
use twinloop_core::tracking::{
    DatasetInput, Experiment, LoggedModel, LoggedModelStatus, Metric, ModelInput, ModelOutput,
    NewLoggedModel, NewRun, Page, Param, Run, RunInfo, RunUpdate, Tag, ViewType,
};

use crate::history::MetricHistory;
use crate::series::{Series, SeriesQuery};

#[derive(Debug, Clone)]
pub struct ExperimentQuery {
    pub filter: Option<String>,
    pub order_by: Vec<String>,
    pub view_type: ViewType,
    pub max_results: i64,
    pub page_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunQuery {
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    pub order_by: Vec<String>,
    pub view_type: ViewType,
    pub max_results: i64,
    pub page_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoggedModelOrder {
    pub field_name: String,
    pub ascending: bool,
    pub dataset_name: Option<String>,
}

/// A dataset a logged-model search is restricted to: models with a metric logged on it. Without
/// a digest, any digest of the name matches.
#[derive(Debug, Clone)]
pub struct DatasetFilter {
    pub dataset_name: String,
    pub dataset_digest: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoggedModelQuery {
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    /// Models with a metric on any of these datasets; the filter's metric comparisons then
    /// consider only metrics on them. Empty: no restriction.
    pub datasets: Vec<DatasetFilter>,
    pub order_by: Vec<LoggedModelOrder>,
    pub max_results: i64,
    pub page_token: Option<String>,
}

/// Everything tracking needs from storage: experiments, runs, logged models and the runs
/// table's columns. Every method validates its input and either applies all of a write or none
/// of it; an `Ok` means the write is durable. Implemented for anything that implements its parts.
pub trait TrackingStore: ExperimentStore + RunStore + LoggedModelStore + RunColumnStore {}

impl<T: ExperimentStore + RunStore + LoggedModelStore + RunColumnStore + ?Sized> TrackingStore
    for T
{
}

/// What a runs table reads beside MLflow's runs, kept up to date by the run writes themselves.
#[async_trait]
pub trait RunColumnStore: Send + Sync {
    /// Per run (in the order asked, each once), the summaries of `keys` (all its metrics when
    /// `None`), by key. At most 1,000 runs and 1,000 keys; an unknown run has none.
    async fn metric_summaries(
        &self,
        run_ids: &[String],
        keys: Option<&[String]>,
    ) -> Result<Vec<RunSummaries>>;
    /// An experiment's distinct keys of one kind with how many runs have each, most used first,
    /// then by key.
    async fn experiment_keys(&self, experiment_id: &str, query: &KeyQuery) -> Result<KeyList>;
    /// How many runs a search matches; its order and page are ignored. A runs table of 100,000
    /// runs needs the total to size its scrollbar.
    async fn count_runs(&self, query: &RunQuery) -> Result<i64>;
    /// The ids of every run a search matches, in its order (its page ignored), or `None` when
    /// there are more than `at_most`: a table reads a deep window of a sorted or filtered view
    /// from this list instead of sorting every run again to skip to it.
    async fn run_order(&self, query: &RunQuery, at_most: usize) -> Result<Option<Vec<String>>>;
    /// The runs a search matches (its order and page ignored) that name a parent in MLflow's
    /// `mlflow.parentRunId` tag, each as (run id, parent id), or `None` when there are more than
    /// `at_most`: a runs table shows the view's nested runs as a tree from these.
    async fn run_parents(
        &self,
        query: &RunQuery,
        at_most: usize,
    ) -> Result<Option<Vec<(String, String)>>>;
    /// The runs a search matches, grouped by a param's value; its order and page are ignored.
    async fn group_runs(&self, query: &RunQuery, group: &GroupQuery) -> Result<Vec<RunGroup>>;
}

#[async_trait]
pub trait ExperimentStore: Send + Sync {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String>;
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;
    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment>;
    async fn search_experiments(&self, query: &ExperimentQuery) -> Result<Page<Experiment>>;
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()>;
    /// Soft delete: the experiment and its active runs move to the `deleted` stage.
    async fn delete_experiment(&self, experiment_id: &str) -> Result<()>;
    async fn restore_experiment(&self, experiment_id: &str) -> Result<()>;
    async fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()>;
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()>;
}

#[async_trait]
pub trait RunStore: Send + Sync {
    async fn create_run(&self, run: NewRun) -> Result<Run>;
    async fn get_run(&self, run_id: &str) -> Result<Run>;
    async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo>;
    async fn delete_run(&self, run_id: &str) -> Result<()>;
    async fn restore_run(&self, run_id: &str) -> Result<()>;
    /// Params, metrics and tags in one transaction; `log_metric`, `log_param` and `set_tag`
    /// are batches of one.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()>;
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()>;
    /// Dataset inputs and the logged models the run read, in one transaction. An input logged
    /// before keeps its place in the run's order.
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[ModelInput],
    ) -> Result<()>;
    async fn log_outputs(&self, run_id: &str, outputs: &[ModelOutput]) -> Result<()>;
    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>>;
    /// The same page of a metric's history, handed over in chunks as it is read, so that a
    /// million points are never held at once.
    async fn stream_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<MetricHistory>;
    /// One metric of up to 1,000 runs over an x range, downsampled into at most
    /// `query.buckets` buckets per run, or every point when there are no more than that.
    async fn metric_series(&self, query: &SeriesQuery) -> Result<Series>;
    async fn search_runs(&self, query: &RunQuery) -> Result<Page<Run>>;
}

#[async_trait]
pub trait LoggedModelStore: Send + Sync {
    async fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel>;
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel>;
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel>;
    async fn delete_logged_model(&self, model_id: &str) -> Result<()>;
    async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()>;
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    async fn log_logged_model_params(&self, model_id: &str, params: &[Param]) -> Result<()>;
    async fn search_logged_models(&self, query: &LoggedModelQuery) -> Result<Page<LoggedModel>>;
}

/// A search over registered models or model versions: MLflow's filter, order-by and paging.
#[derive(Debug, Clone)]
pub struct RegistryQuery {
    pub filter: Option<String>,
    pub order_by: Vec<String>,
    pub max_results: i64,
    pub page_token: Option<String>,
}

/// The model registry. Mutations record a [`RegistryEvent`] in the same transaction and publish
/// it to subscribers once committed; `actor` says who made the change. Implemented for anything
/// that implements its four parts.
pub trait RegistryStore:
    RegisteredModelStore + ModelVersionStore + ModelAliasStore + RegistryEventLog
{
}

impl<T> RegistryStore for T where
    T: RegisteredModelStore + ModelVersionStore + ModelAliasStore + RegistryEventLog + ?Sized
{
}

#[async_trait]
pub trait RegisteredModelStore: Send + Sync {
    async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        actor: &str,
    ) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        actor: &str,
    ) -> Result<RegisteredModel>;
    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel>;
    /// Deletes the model with all its versions, tags and aliases.
    async fn delete_registered_model(&self, name: &str, actor: &str) -> Result<()>;
    async fn search_registered_models(
        &self,
        query: &RegistryQuery,
    ) -> Result<Page<RegisteredModel>>;
    async fn set_registered_model_tag(&self, name: &str, tag: &Tag) -> Result<()>;
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;
    async fn get_latest_versions(&self, name: &str, stages: &[String])
    -> Result<Vec<ModelVersion>>;
}

#[async_trait]
pub trait ModelVersionStore: Send + Sync {
    /// Numbers are assigned atomically: concurrent creations never share one.
    async fn create_model_version(&self, new: NewModelVersion, actor: &str)
    -> Result<ModelVersion>;
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion>;
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion>;
    async fn delete_model_version(&self, name: &str, version: &str, actor: &str) -> Result<()>;
    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
        actor: &str,
    ) -> Result<ModelVersion>;
    async fn search_model_versions(&self, query: &RegistryQuery) -> Result<Page<ModelVersion>>;
    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: &Tag,
        actor: &str,
    ) -> Result<()>;
    async fn delete_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        actor: &str,
    ) -> Result<()>;
    /// Where the version's files are: the logged model's or run's artifact location.
    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String>;
}

#[async_trait]
pub trait ModelAliasStore: Send + Sync {
    /// Points `alias` at `version`, moving it if it exists.
    async fn set_alias(&self, name: &str, alias: &str, version: &str, actor: &str) -> Result<()>;
    async fn delete_alias(&self, name: &str, alias: &str, actor: &str) -> Result<()>;
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;
}

#[async_trait]
pub trait RegistryEventLog: Send + Sync {
    /// Recorded events with an id greater than `after`, oldest first.
    async fn registry_events(&self, after: i64, limit: i64) -> Result<Vec<RegistryEvent>>;
    /// The greatest id recorded so far (0 for none): where a reader that wants only what comes
    /// next starts.
    async fn latest_registry_event_id(&self) -> Result<i64>;
    /// One model's events, newest first, with an id below `before` when given: those recorded
    /// under its name, and under the names it had before a rename, up to that rename.
    async fn model_registry_events(
        &self,
        name: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RegistryEvent>>;
    /// Events committed from now on, by this process or another on the same database (each
    /// replica tails the event table), each once.
    fn subscribe_registry_events(&self) -> tokio::sync::broadcast::Receiver<RegistryEvent>;
}

/// Leases: which of the replicas sharing a database runs a background loop. Expiry is judged by
/// the database's clock, so replicas' clocks are never compared. Each new holder gets a greater
/// token; a holder checks its token when it acts ([`LeaseStore::advance_lease`]), so a holder
/// that was paused past its expiry and replaced cannot act again.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes `name` for `holder` for `ttl_ms` when it is free, expired or already `holder`'s (then
    /// it is a renewal and the token stays). Answers the token, or `None` while another holds it.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<i64>>;
    /// Gives `name` up if `holder` holds it, so that another takes it over at once.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// The cursor the holders of `name` hand on to each other (`None` before the first).
    async fn lease_cursor(&self, name: &str) -> Result<Option<i64>>;
    /// Sets the cursor only while `token` is the current, unexpired holding; answers whether it
    /// was: the fencing check a holder makes just before it acts.
    async fn advance_lease(&self, name: &str, token: i64, cursor: i64) -> Result<bool>;
}

/// The lineage graph. Tracking and the registry fill it as they write; callers may also record
/// nodes and edges by hand. Edges that would close a cycle are refused.
#[async_trait]
pub trait LineageStore: Send + Sync {
    /// Creates the node, or returns the existing one with the same external id.
    async fn put_node(&self, kind: NodeKind, node: NewNode) -> Result<LineageNode>;
    async fn put_event(&self, artifact: NodeRef, execution: NodeRef, kind: EventKind)
    -> Result<()>;
    /// Whether `node` is `of` or reachable from it along the edges' direction (what an edge
    /// from `node` to `of` would make a cycle of).
    async fn is_downstream(&self, of: NodeRef, node: NodeRef) -> Result<bool>;
    /// Adds an artifact or execution to a context.
    async fn put_membership(&self, context: NodeRef, member: NodeRef) -> Result<()>;
    /// Finds a node by address (`artifact:12`) or external id (`run:<id>`).
    async fn resolve_node(&self, key: &str) -> Result<LineageNode>;
    /// The graph reachable from `start` within `depth` edges in `direction`.
    async fn lineage_graph(
        &self,
        start: NodeRef,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageGraph>;
}

/// Webhook subscriptions to registry events and the log of their deliveries. Delivery itself
/// (HTTP, signing, retries) belongs to the server.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook>;
    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;
    /// Removes the webhook and its delivery log; its id is never given to another.
    async fn delete_webhook(&self, id: i64) -> Result<()>;
    /// Appends one attempt to the delivery log (the id given is ignored).
    async fn record_delivery(&self, delivery: &WebhookDelivery) -> Result<()>;
    /// The newest attempts for a webhook, newest first.
    async fn list_deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<WebhookDelivery>>;

    /// Webhooks made through MLflow's API: named by a UUID, kept apart from the ones above
    /// (neither list shows the other's), sharing their ids and delivery log. The URL is checked
    /// for form here; whether its host may be reached is the caller's policy.
    async fn create_mlflow_webhook(&self, new: NewMlflowWebhook) -> Result<MlflowWebhook>;
    async fn get_mlflow_webhook(&self, webhook_id: &str) -> Result<MlflowWebhook>;
    /// Newest first, as MLflow lists them; `max_results` 1 to 1000.
    async fn list_mlflow_webhooks(
        &self,
        max_results: i64,
        page_token: Option<&str>,
    ) -> Result<Page<MlflowWebhook>>;
    async fn update_mlflow_webhook(
        &self,
        webhook_id: &str,
        update: MlflowWebhookUpdate,
    ) -> Result<MlflowWebhook>;
    /// Removes the webhook and its delivery log.
    async fn delete_mlflow_webhook(&self, webhook_id: &str) -> Result<()>;
}

/// The feature store's definitions and materialization runs.
#[async_trait]
pub trait FeatureRegistry: Send + Sync {
    /// The current version of every definition of `project` that is not removed.
    async fn feature_objects(&self, project: &str) -> Result<Vec<FeatureObject>>;
    /// Applies the changes in one transaction; a `Put` equal to the current version is a
    /// no-op. Returns the versions written.
    async fn apply_feature_changes(
        &self,
        project: &str,
        changes: &[FeatureChange],
    ) -> Result<Vec<FeatureObject>>;
    async fn record_materialization(&self, run: &MaterializationRun) -> Result<()>;
    /// A view's materialization runs, oldest first.
    async fn materializations(&self, project: &str, view: &str) -> Result<Vec<MaterializationRun>>;
}

/// Serving deployments (their spec and state), one row each.
#[async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Creates or replaces `record` (by name), stamping its update time.
    async fn put_deployment(&self, record: &DeploymentRecord) -> Result<()>;
    /// Stores `record` and points `alias` of `model` at `version` (recording the registry
    /// event as `actor`) in one transaction, the event announced after it commits: a canary's
    /// promotion onto an alias and the rollback of one, which no crash leaves half done (the
    /// alias moved, the deployment still mid-canary or still promoted). Nothing is written if
    /// the alias cannot be set.
    async fn put_deployment_moving_alias(
        &self,
        record: &DeploymentRecord,
        model: &str,
        alias: &str,
        version: &str,
        actor: &str,
    ) -> Result<()>;
    async fn deployments(&self) -> Result<Vec<DeploymentRecord>>;
    /// Whether there was one to delete.
    async fn delete_deployment(&self, name: &str) -> Result<bool>;
    /// Adds `counts` (bucket, count) to what the canary candidate `version` of `model` has
    /// answered in `deployment`, summed over every replica that serves it.
    async fn add_canary_traffic(
        &self,
        deployment: &str,
        model: &str,
        version: &str,
        counts: &[(i64, i64)],
    ) -> Result<()>;
    /// Every bucket's sum of that candidate's traffic, by bucket.
    async fn canary_traffic(
        &self,
        deployment: &str,
        model: &str,
        version: &str,
    ) -> Result<Vec<(i64, i64)>>;
    /// Forgets the canary traffic of `deployment`: a new canary starts, or it is deleted.
    async fn clear_canary_traffic(&self, deployment: &str) -> Result<()>;
}

/// Production monitors: their documents, metric series, the labels they join, their events.
#[async_trait]
pub trait MonitorStore: Send + Sync {
    async fn put_monitor(&self, record: &MonitorRecord) -> Result<()>;
    async fn monitors(&self) -> Result<Vec<MonitorRecord>>;
    /// Deletes the monitor with its metric points and events (whether there was one); event
    /// ids are never given out again.
    async fn delete_monitor(&self, name: &str) -> Result<bool>;
    /// A window's points, all or none; the same (monitor, window start, metric) is replaced.
    async fn put_points(&self, points: &[MetricPoint]) -> Result<()>;
    /// The latest `limit` points of `monitor`, oldest first.
    async fn points(&self, monitor: &str, limit: i64) -> Result<Vec<MetricPoint>>;
    /// Idempotent: a request id posted again replaces its label.
    async fn put_labels(&self, labels: &[Label]) -> Result<()>;
    async fn labels(&self, request_ids: &[String]) -> Result<Vec<Label>>;
    async fn add_monitor_event(&self, monitor: &str, kind: &str, payload: &str) -> Result<i64>;
    /// Events with an id above `after`, oldest first, of one monitor or all.
    async fn monitor_events(
        &self,
        monitor: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MonitorEvent>>;
}

/// Users, their grants on experiments and registered models, and API tokens (`--auth`).
/// Passwords arrive hashed and tokens as digests (`twinloop_core::auth`): the store never sees
/// a secret.
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// A taken username is `AlreadyExists`, with MLflow's message.
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User>;
    /// An unknown username is `NotFound`.
    async fn user(&self, username: &str) -> Result<User>;
    /// The user and their password hash, for a login; `None` when there is no such user.
    async fn user_credentials(&self, username: &str) -> Result<Option<UserCredentials>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Whether any user is an admin (the first start with `--auth` makes one).
    async fn has_admin(&self) -> Result<bool>;
    async fn update_password(&self, username: &str, password_hash: &str) -> Result<()>;
    async fn update_admin(&self, username: &str, is_admin: bool) -> Result<()>;
    /// The user goes with their grants and tokens, in one transaction.
    async fn delete_user(&self, username: &str) -> Result<()>;

    /// Sets the user's level on the resource, replacing any level it had.
    async fn put_grant(&self, grant: &Grant) -> Result<()>;
    async fn grant(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Option<Permission>>;
    /// Whether there was one to delete.
    async fn delete_grant(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<bool>;
    /// Every grant of one user.
    async fn user_grants(&self, username: &str) -> Result<Vec<Grant>>;
    /// Removes every grant on a resource (it was deleted, so a new one of the same name
    /// starts with none).
    async fn delete_resource_grants(
        &self,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<()>;
    /// Moves every grant from one resource id to another (a registered model was renamed).
    async fn rename_resource_grants(
        &self,
        resource_type: ResourceType,
        from: &str,
        to: &str,
    ) -> Result<()>;

    async fn create_token(
        &self,
        username: &str,
        digest: &str,
        scope: TokenScope,
        description: &str,
    ) -> Result<ApiToken>;
    /// The token with this digest and its user, or `None`.
    async fn token_by_digest(&self, digest: &str) -> Result<Option<(ApiToken, User)>>;
    /// One user's tokens, or everyone's, oldest first.
    async fn list_tokens(&self, username: Option<&str>) -> Result<Vec<ApiToken>>;
    /// An unknown id is `NotFound`.
    async fn revoke_token(&self, id: i64) -> Result<()>;

    /// A new role (MLflow 3.17's RBAC). A name taken in its workspace is `AlreadyExists`, a
    /// name with the reserved `__user_` prefix `InvalidArgument`.
    async fn create_role(
        &self,
        name: &str,
        workspace: &str,
        description: Option<&str>,
    ) -> Result<Role>;
    /// A role with its permissions; an unknown id is `NotFound`.
    async fn role(&self, id: i64) -> Result<Role>;
    /// Every role, or only those of the workspaces named, oldest first.
    async fn list_roles(&self, workspaces: Option<&[String]>) -> Result<Vec<Role>>;
    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role>;
    /// The role goes with its permissions and assignments.
    async fn delete_role(&self, id: i64) -> Result<()>;
    /// The same (type, pattern) twice on one role is `AlreadyExists`.
    async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        resource_pattern: &str,
        permission: Permission,
    ) -> Result<RolePermission>;
    async fn role_permission(&self, id: i64) -> Result<RolePermission>;
    async fn update_role_permission(
        &self,
        id: i64,
        permission: Permission,
    ) -> Result<RolePermission>;
    async fn remove_role_permission(&self, id: i64) -> Result<()>;
    /// Assigning a role twice is `AlreadyExists`.
    async fn assign_role(&self, username: &str, role_id: i64) -> Result<RoleAssignment>;
    async fn unassign_role(&self, username: &str, role_id: i64) -> Result<()>;
    async fn user_roles(&self, username: &str) -> Result<Vec<Role>>;
    async fn role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>>;
    /// Every grant that applies to the user on one resource: their own, and their roles' in the
    /// default workspace on it, on `*` of its type, or MANAGE on the workspace. One query: it
    /// is asked on every request.
    async fn applied_grants(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Vec<AppliedGrant>>;
}

/// Whether the database answers at all, asked on a connection of its own: a pool whose
/// connections are all busy is not an outage. The server's circuit breaker probes with it.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// `Unavailable` when the database cannot be reached or refuses connections.
    async fn probe(&self) -> Result<()>;
}

/// Every area at once: what a server that keeps all its metadata in one database holds, so that
/// it hands each component the same handle instead of one trait object per area. Stores are
/// written against the per-area traits above; anything that implements all of them is a
/// `MetaStore`. A holder passes the handle on as a narrower trait object by upcasting
/// (`Arc<dyn MetaStore>` coerces to `Arc<dyn MonitorStore>`).
pub trait MetaStore:
    TrackingStore
    + RegistryStore
    + LineageStore
    + WebhookStore
    + FeatureRegistry
    + DeploymentStore
    + MonitorStore
    + crate::pipelines::PipelineStore
    + AuthStore
    + LeaseStore
    + HealthStore
{
}

impl<T> MetaStore for T where
    T: TrackingStore
        + RegistryStore
        + LineageStore
        + WebhookStore
        + FeatureRegistry
        + DeploymentStore
        + MonitorStore
        + crate::pipelines::PipelineStore
        + AuthStore
        + LeaseStore
        + HealthStore
        + ?Sized
{
}

/// The shared handle to a server's metadata store (a `SqlStore` in the binary).
pub type StoreHandle = Arc<dyn MetaStore>;
