use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::tracking::{
    DatasetInput, Experiment, LoggedModel, LoggedModelStatus, Metric, ModelOutput, NewLoggedModel,
    NewRun, Page, Param, Run, RunInfo, RunUpdate, Tag, ViewType,
};

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

#[derive(Debug, Clone)]
pub struct LoggedModelQuery {
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    pub order_by: Vec<LoggedModelOrder>,
    pub max_results: i64,
    pub page_token: Option<String>,
}

/// Everything tracking needs from storage. Every method validates its input and either applies
/// all of a write or none of it; an `Ok` means the write is durable.
#[async_trait]
pub trait TrackingStore: Send + Sync {
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
    async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()>;
    async fn log_outputs(&self, run_id: &str, outputs: &[ModelOutput]) -> Result<()>;
    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>>;
    async fn search_runs(&self, query: &RunQuery) -> Result<Page<Run>>;

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
