//! The page handlers: each reads what its page shows through the store's traits and renders it
//! with `twinloop-ui`. A search the store refuses (a bad filter, order or page token) renders
//! the page with the store's message and a 400; an unknown id renders the 404 page.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use twinloop_core::auth::ResourceType;
use twinloop_core::run_columns::{KeyKind, KeyQuery, RunSummaries};
use twinloop_core::tracking::{Experiment, Page, Run, ViewType};
use twinloop_core::{Error, ErrorKind};
use twinloop_meta::{ExperimentQuery, RunQuery};
use twinloop_ui::{
    ChartConfig, CompareQuery, CompareView, ExperimentsQuery, ExperimentsView, MetricView, RunView,
    RunsQuery, RunsView, limits,
};

use super::Timing;
use crate::AppState;
use crate::auth::{self, Caller};

type S = State<Arc<AppState>>;

/// Columns a runs table shows when its URL names none: the keys most runs have.
const DEFAULT_METRIC_COLUMNS: u32 = 6;
const DEFAULT_PARAM_COLUMNS: u32 = 4;
/// Children listed on a run's page.
const CHILDREN_SHOWN: i64 = 100;
/// Run ids per search of the compare page's runs: the filter's length limit holds about 230.
const COMPARE_IDS_PER_SEARCH: usize = 200;

pub(super) fn pairs(raw: Option<String>) -> Vec<(String, String)> {
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
    caller: Option<Extension<Caller>>,
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
    let (mut found, error) = match searched(found) {
        Ok(found) => found,
        Err(e) => return t.failed(&e),
    };
    // With --auth the list shows what the caller may read, as the experiments search does.
    if let (Some(checks), Some(Extension(caller))) = (&s.auth, caller) {
        let items = std::mem::take(&mut found.items);
        found.items = match auth::readable(checks, &caller, ResourceType::Experiment, items, |e| {
            e.experiment_id.as_str()
        })
        .await
        {
            Ok(items) => items,
            Err(e) => return t.failed(&e),
        };
    }
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
pub(super) async fn run(
    State(s): S,
    Path((id, run_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    let chart = ChartConfig::from_pairs(&pairs(raw));
    match run_page(&s, &id, &run_id, &chart, &mut t).await {
        Ok(response) => response,
        Err(e) => t.failed(&e),
    }
}

/// A run and its experiment, when the run is in that experiment.
pub(super) async fn run_in(
    s: &AppState,
    id: &str,
    run_id: &str,
) -> Result<(Experiment, Run), Error> {
    let run = s.store.get_run(run_id).await?;
    if run.info.experiment_id != id {
        return Err(Error::not_found(format!(
            "Run '{run_id}' is not in experiment {id}."
        )));
    }
    Ok((s.store.get_experiment(id).await?, run))
}

async fn run_page(
    s: &AppState,
    id: &str,
    run_id: &str,
    chart: &ChartConfig,
    t: &mut Timing,
) -> Result<Response, Error> {
    let (experiment, run) = run_in(s, id, run_id).await?;
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
    // The page stays readable when the artifact store is not: the tree is left out and logged.
    let (artifacts, artifacts_more) =
        match super::artifacts::tree(&s.artifacts, &run.info.artifact_uri).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, run_id, "listing a run's artifacts for its page failed");
                (Vec::new(), false)
            }
        };
    t.lap("store");
    let page = twinloop_ui::run_page(&RunView {
        experiment: &experiment,
        run: &run,
        metrics: &metrics,
        parent: parent.as_ref(),
        children: &children,
        chart,
        artifacts: &artifacts,
        artifacts_more,
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}

/// `/experiments/{e}/runs/{r}/metrics/{key}`: one metric of one run, with zoom.
pub(super) async fn metric(
    State(s): S,
    Path((id, run_id, key)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    let config = ChartConfig::from_pairs(&pairs(raw));
    match metric_page(&s, &id, &run_id, &key, &config, &mut t).await {
        Ok(response) => response,
        Err(e) => t.failed(&e),
    }
}

async fn metric_page(
    s: &AppState,
    id: &str,
    run_id: &str,
    key: &str,
    config: &ChartConfig,
    t: &mut Timing,
) -> Result<Response, Error> {
    let (experiment, run) = run_in(s, id, run_id).await?;
    let summary = s
        .store
        .metric_summaries(
            std::slice::from_ref(&run.info.run_id),
            Some(&[key.to_string()]),
        )
        .await?
        .into_iter()
        .flat_map(|r| r.metrics)
        .find(|m| m.key == key)
        .ok_or_else(|| Error::not_found(format!("Run '{run_id}' has no metric '{key}'.")))?;
    t.lap("store");
    let page = twinloop_ui::metric_page(&MetricView {
        experiment: &experiment,
        run: &run,
        key,
        summary: &summary,
        config,
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}

/// `/experiments/{e}/compare?runs=a,b,c`: runs side by side.
pub(super) async fn compare(
    State(s): S,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    let query = CompareQuery::from_pairs(&pairs(raw));
    match compare_page(&s, &id, &query, &mut t).await {
        Ok(response) => response,
        Err(e) => t.failed(&e),
    }
}

async fn compare_page(
    s: &AppState,
    id: &str,
    query: &CompareQuery,
    t: &mut Timing,
) -> Result<Response, Error> {
    let experiment = s.store.get_experiment(id).await?;
    let mut found: std::collections::HashMap<String, Run> = std::collections::HashMap::new();
    // Up to 1,000 runs: a few searches by id, not one read per run.
    for chunk in query.run_ids.chunks(COMPARE_IDS_PER_SEARCH) {
        let ids: Vec<String> = chunk
            .iter()
            .map(|r| format!("'{}'", r.replace('\'', "''")))
            .collect();
        let page = s
            .store
            .search_runs(&RunQuery {
                experiment_ids: vec![experiment.experiment_id.clone()],
                filter: Some(format!("attributes.run_id IN ({})", ids.join(","))),
                order_by: Vec::new(),
                view_type: ViewType::All,
                max_results: i64::try_from(chunk.len()).unwrap_or(i64::MAX),
                page_token: None,
            })
            .await?;
        found.extend(page.items.into_iter().map(|r| (r.info.run_id.clone(), r)));
    }
    let mut runs = Vec::with_capacity(query.run_ids.len());
    for run_id in &query.run_ids {
        match found.remove(run_id) {
            Some(run) => runs.push(run),
            None => {
                return Err(Error::not_found(format!(
                    "Run '{run_id}' is not in experiment {id}."
                )));
            }
        }
    }
    let summaries = if runs.is_empty() {
        Vec::new()
    } else {
        s.store.metric_summaries(&query.run_ids, None).await?
    };
    t.lap("store");
    let page = twinloop_ui::compare_page(&CompareView {
        experiment: &experiment,
        query,
        runs: &runs,
        summaries: &summaries,
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}
