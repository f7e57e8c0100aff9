//! The page handlers: each reads what its page shows through the store's traits and renders it
//! with `twinloop-ui`. A search the store refuses (a bad filter, order or page token) renders
//! the page with the store's message and a 400; an unknown id renders the 404 page.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use twinloop_core::run_columns::{KeyKind, KeyQuery, RunSummaries};
use twinloop_core::tracking::{Page, Run, ViewType};
use twinloop_core::{Error, ErrorKind};
use twinloop_meta::{ExperimentQuery, RunQuery};
use twinloop_ui::{ExperimentsQuery, ExperimentsView, RunView, RunsQuery, RunsView, limits};

use super::Timing;
use crate::AppState;

type S = State<Arc<AppState>>;

/// Columns a runs table shows when its URL names none: the keys most runs have.
const DEFAULT_METRIC_COLUMNS: u32 = 6;
const DEFAULT_PARAM_COLUMNS: u32 = 4;
/// Children listed on a run's page.
const CHILDREN_SHOWN: i64 = 100;

fn pairs(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A search's page, or the message of a search the store refused as invalid.
fn searched<T>(found: Result<Page<T>, Error>) -> Result<(Page<T>, Option<String>), Error> {
    match found {
        Ok(page) => Ok((page, None)),
        Err(e) if e.kind == ErrorKind::InvalidArgument => Ok((
            Page {
                items: Vec::new(),
                next_page_token: None,
            },
            Some(e.message),
        )),
        Err(e) => Err(e),
    }
}

fn status_of(error: Option<&String>) -> StatusCode {
    if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// `/` and `/experiments`.
pub(super) async fn experiments(
    State(s): S,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut t = Timing::start();
    let query = ExperimentsQuery::from_pairs(&pairs(raw));
    let found = s
        .store
        .search_experiments(&ExperimentQuery {
            filter: query.filter(),
            order_by: query.order_by(),
            view_type: query.lifecycle.view_type(),
            max_results: limits::EXPERIMENTS_PAGE,
            page_token: query.page_token.clone(),
        })
        .await;
    t.lap("store");
    let (found, error) = match searched(found) {
        Ok(found) => found,
        Err(e) => return t.failed(&e),
    };
    let tracking_uri = crate::welcome::tracking_uri(&headers);
    let page = twinloop_ui::experiments_page(&ExperimentsView {
        query: &query,
        experiments: &found.items,
        next_page_token: found.next_page_token.as_deref(),
        error: error.as_deref(),
        tracking_uri: &tracking_uri,
    });
    t.lap("render");
    t.page(status_of(error.as_ref()), page)
}

/// The keys of one kind most of an experiment's runs have, for default columns.
async fn top_keys(
    s: &AppState,
    experiment_id: &str,
    kind: KeyKind,
    limit: u32,
) -> Result<Vec<String>, Error> {
    let query = KeyQuery {
        kind,
        contains: String::new(),
        limit,
    };
    let list = s.store.experiment_keys(experiment_id, &query).await?;
    Ok(list.keys.into_iter().map(|k| k.key).collect())
}

/// `/experiments/{id}`: the runs table.
pub(super) async fn runs(State(s): S, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let mut t = Timing::start();
    match runs_page(&s, &id, raw, &mut t).await {
        Ok(response) => response,
        Err(e) => t.failed(&e),
    }
}

async fn runs_page(
    s: &AppState,
    id: &str,
    raw: Option<String>,
    t: &mut Timing,
) -> Result<Response, Error> {
    let experiment = s.store.get_experiment(id).await?;
    let query = RunsQuery::from_pairs(&pairs(raw));
    let metric_columns = match &query.metrics {
        Some(keys) => keys.clone(),
        None => top_keys(s, id, KeyKind::Metric, DEFAULT_METRIC_COLUMNS).await?,
    };
    let param_columns = match &query.params {
        Some(keys) => keys.clone(),
        None => top_keys(s, id, KeyKind::Param, DEFAULT_PARAM_COLUMNS).await?,
    };
    let found = s
        .store
        .search_runs(&RunQuery {
            experiment_ids: vec![experiment.experiment_id.clone()],
            filter: query.filter(),
            order_by: query.order_by(),
            view_type: query.lifecycle.view_type(),
            max_results: limits::RUNS_PAGE,
            page_token: query.page_token.clone(),
        })
        .await;
    let (found, error) = searched(found)?;
    let summaries: Vec<RunSummaries> = if found.items.is_empty() || metric_columns.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<String> = found.items.iter().map(|r| r.info.run_id.clone()).collect();
        s.store
            .metric_summaries(&ids, Some(&metric_columns))
            .await?
    };
    t.lap("store");
    let page = twinloop_ui::runs_page(&RunsView {
        experiment: &experiment,
        query: &query,
        runs: &found.items,
        summaries: &summaries,
        metric_columns: &metric_columns,
        param_columns: &param_columns,
        next_page_token: found.next_page_token.as_deref(),
        error: error.as_deref(),
    });
    t.lap("render");
    Ok(t.page(status_of(error.as_ref()), page))
}

/// `/experiments/{id}/runs/{run_id}`: one run.
pub(super) async fn run(State(s): S, Path((id, run_id)): Path<(String, String)>) -> Response {
    let mut t = Timing::start();
    match run_page(&s, &id, &run_id, &mut t).await {
        Ok(response) => response,
        Err(e) => t.failed(&e),
    }
}

async fn run_page(s: &AppState, id: &str, run_id: &str, t: &mut Timing) -> Result<Response, Error> {
    let run = s.store.get_run(run_id).await?;
    if run.info.experiment_id != id {
        return Err(Error::not_found(format!(
            "Run '{run_id}' is not in experiment {id}."
        )));
    }
    let experiment = s.store.get_experiment(id).await?;
    let metrics = s
        .store
        .metric_summaries(std::slice::from_ref(&run.info.run_id), None)
        .await?
        .into_iter()
        .next()
        .map(|r| r.metrics)
        .unwrap_or_default();
    let parent: Option<Run> = match twinloop_ui::parent_run_id(&run) {
        Some(parent_id) => match s.store.get_run(parent_id).await {
            Ok(parent) => Some(parent),
            Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidArgument) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let children = s
        .store
        .search_runs(&RunQuery {
            experiment_ids: vec![experiment.experiment_id.clone()],
            filter: Some(format!(
                "tags.`{}` = '{}'",
                twinloop_ui::PARENT_TAG,
                run.info.run_id.replace('\'', "''")
            )),
            order_by: Vec::new(),
            view_type: ViewType::ActiveOnly,
            max_results: CHILDREN_SHOWN,
            page_token: None,
        })
        .await?
        .items;
    t.lap("store");
    let page = twinloop_ui::run_page(&RunView {
        experiment: &experiment,
        run: &run,
        metrics: &metrics,
        parent: parent.as_ref(),
        children: &children,
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}
