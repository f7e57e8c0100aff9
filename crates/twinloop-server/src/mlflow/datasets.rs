//! `experiments/search-datasets`: the datasets logged to an experiment's runs, one summary per
//! (experiment, name, digest, context), as MLflow's UI lists them beside the runs table.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use twinloop_core::tracking::ViewType;
use twinloop_meta::RunQuery;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::wire::de_ids;

/// MLflow's limits (`search_datasets_impl`, `SqlAlchemyStore._search_datasets`).
const MAX_EXPERIMENT_IDS: usize = 20;
const MAX_SUMMARIES: usize = 1000;
const CONTEXT_TAG: &str = "mlflow.data.context";

#[derive(Deserialize)]
pub struct SearchDatasets {
    #[serde(default, deserialize_with = "de_ids")]
    experiment_ids: Vec<String>,
}

pub async fn search(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<SearchDatasets>,
) -> ApiResult<Json<Value>> {
    let ids = req.experiment_ids;
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        ));
    }
    if ids.len() > MAX_EXPERIMENT_IDS {
        return Err(ApiError::invalid(format!(
            "SearchDatasets request cannot specify more than {MAX_EXPERIMENT_IDS} experiment_ids. \
             Received {} experiment_ids.",
            ids.len()
        )));
    }
    // Runs carry their inputs, so the runs of every lifecycle stage are read page by page
    // (MLflow's query does not filter on the run's stage either).
    let mut seen = HashSet::new();
    let mut summaries = Vec::new();
    let mut page_token = None;
    'pages: loop {
        let page = s
            .store
            .search_runs(&RunQuery {
                experiment_ids: ids.clone(),
                filter: None,
                order_by: Vec::new(),
                view_type: ViewType::All,
                max_results: MAX_SUMMARIES as i64,
                page_token,
            })
            .await?;
        for run in page.items {
            for input in run.inputs {
                let context = input
                    .tags
                    .iter()
                    .find(|t| t.key == CONTEXT_TAG)
                    .map(|t| t.value.clone());
                let key = (
                    run.info.experiment_id.clone(),
                    input.dataset.name,
                    input.dataset.digest,
                    context,
                );
                if !seen.insert(key.clone()) {
                    continue;
                }
                let (experiment_id, name, digest, context) = key;
                let mut summary = Map::new();
                summary.insert("experiment_id".into(), experiment_id.into());
                summary.insert("name".into(), name.into());
                summary.insert("digest".into(), digest.into());
                // Absent rather than empty without a context tag, as MLflow's reply has it.
                if let Some(context) = context {
                    summary.insert("context".into(), context.into());
                }
                summaries.push(Value::Object(summary));
                if summaries.len() == MAX_SUMMARIES {
                    break 'pages;
                }
            }
        }
        page_token = page.next_page_token;
        if page_token.is_none() {
            break;
        }
    }
    Ok(Json(json!({ "dataset_summaries": summaries })))
}
