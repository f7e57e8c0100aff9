//! The page handlers: each reads what its page shows through the store's traits and renders it
//! with `twinloop-ui`. A search the store refuses (a bad filter, order or page token) renders
//! the page with the store's message and a 400; an unknown id renders the 404 page.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use twinloop_core::auth::ResourceType;
use twinloop_core::run_columns::{GroupQuery, KeyKind, KeyQuery, RunSummaries};
use twinloop_core::tracking::{Experiment, Page, Run, ViewType};
use twinloop_core::{Error, ErrorKind};
use twinloop_meta::search::encode_page_token;
use twinloop_meta::{ExperimentQuery, RunQuery};
use twinloop_ui::{
    ChartConfig, Columns, CompareQuery, CompareView, ExperimentsQuery, ExperimentsView, MetricView,
    RowsView, RunView, RunsQuery, RunsView, limits,
};

use super::{Timing, row_orders};
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

/// The search behind a runs table: its filter, order and lifecycle, `limit` runs from `offset`.
fn runs_search(experiment_id: &str, query: &RunsQuery, offset: i64, limit: i64) -> RunQuery {
    RunQuery {
        experiment_ids: vec![experiment_id.to_string()],
        filter: query.filter(),
        order_by: query.order_by(),
        view_type: query.lifecycle.view_type(),
        max_results: limit,
        // Page tokens are positions, so a window anywhere in the order is one read.
        page_token: (offset > 0).then(|| encode_page_token(offset.unsigned_abs())),
    }
}

/// The URL's columns, or for a kind it names none of, the keys most runs have (no tags): every
/// link the page renders then names its columns, so the windows the script fetches match them.
async fn resolve_columns(s: &AppState, id: &str, query: &mut RunsQuery) -> Result<(), Error> {
    if query.metrics.is_none() {
        query.metrics = Some(top_keys(s, id, KeyKind::Metric, DEFAULT_METRIC_COLUMNS).await?);
    }
    if query.params.is_none() {
        query.params = Some(top_keys(s, id, KeyKind::Param, DEFAULT_PARAM_COLUMNS).await?);
    }
    query.tags.get_or_insert_with(Vec::new);
    Ok(())
}

/// The summaries of `columns` for `runs`.
async fn summaries_of(
    s: &AppState,
    runs: &[Run],
    columns: &[String],
) -> Result<Vec<RunSummaries>, Error> {
    if runs.is_empty() || columns.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = runs.iter().map(|r| r.info.run_id.clone()).collect();
    s.store.metric_summaries(&ids, Some(columns)).await
}

fn columns_of(query: &RunsQuery) -> (&[String], &[String], &[String]) {
    (
        query.metrics.as_deref().unwrap_or_default(),
        query.params.as_deref().unwrap_or_default(),
        query.tags.as_deref().unwrap_or_default(),
    )
}

async fn runs_page(
    s: &AppState,
    id: &str,
    raw: Option<String>,
    t: &mut Timing,
) -> Result<Response, Error> {
    let experiment = s.store.get_experiment(id).await?;
    let mut query = RunsQuery::from_pairs(&pairs(raw));
    resolve_columns(s, id, &mut query).await?;
    let (metrics, params, tags) = columns_of(&query);
    let search = runs_search(
        &experiment.experiment_id,
        &query,
        query.offset,
        limits::RUNS_PAGE,
    );
    let mut error = None;
    let total = match s.store.count_runs(&search).await {
        Ok(total) => total,
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            error = Some(e.message);
            0
        }
        Err(e) => return Err(e),
    };
    let group_metric = match (query.group_metric.as_str(), metrics.first()) {
        ("", first) => first.cloned(),
        (named, _) => Some(named.to_string()),
    };
    let mut groups = None;
    let mut runs = Vec::new();
    let (mut tree, mut rows_total, mut snapshot) = (None, total, None);
    if error.is_none() && !query.group.is_empty() {
        let group = GroupQuery {
            param: query.group.clone(),
            metric: group_metric.clone(),
            limit: limits::MAX_GROUPS,
        };
        groups = Some(s.store.group_runs(&search, &group).await?);
    } else if error.is_none() {
        // A view with nested runs is laid out as a tree from a snapshot, which the page hands
        // to its script so that the windows it fetches are the same tree's.
        match row_orders::order(&s.store, &search, None, false).await? {
            Some((id, order)) => {
                let window = order.window(
                    &query.expanded,
                    usize::try_from(query.offset).unwrap_or(0),
                    usize::try_from(limits::RUNS_PAGE).unwrap_or(0),
                );
                rows_total = i64::try_from(window.total).unwrap_or(i64::MAX);
                (runs, tree) = row_orders::window_runs(&s.store, &search, &window).await?;
                snapshot = Some(id);
            }
            None => {
                let (found, refused) = searched(s.store.search_runs(&search).await)?;
                runs = found.items;
                error = refused;
            }
        }
    }
    let summaries = summaries_of(s, &runs, metrics).await?;
    t.lap("store");
    let page = twinloop_ui::runs_page(&RunsView {
        experiment: &experiment,
        query: &query,
        rows: RowsView {
            experiment_id: &experiment.experiment_id,
            query: &query,
            runs: &runs,
            summaries: &summaries,
            columns: Columns {
                metrics,
                params,
                tags,
                stats: query.stats(),
            },
            sorted: !query.order.is_empty(),
            tree: tree.as_deref(),
        },
        total,
        rows_total,
        snapshot,
        groups: groups.as_deref(),
        group_metric: group_metric.as_deref(),
        error: error.as_deref(),
    });
    t.lap("render");
    Ok(t.page(status_of(error.as_ref()), page))
}

/// `/experiments/{id}/rows?…&offset=N&limit=M`: the `<tr>`s of one window of a runs table, for
/// its script: the same query as the page's, `limit` (at most 200) runs from position `offset`.
pub(super) async fn rows(State(s): S, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let mut t = Timing::start();
    match rows_window(&s, &id, raw, &mut t).await {
        Ok(response) => response,
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            t.text(StatusCode::BAD_REQUEST, &e.message)
        }
        Err(e) => t.failed(&e),
    }
}

async fn rows_window(
    s: &AppState,
    id: &str,
    raw: Option<String>,
    t: &mut Timing,
) -> Result<Response, Error> {
    let pairs = pairs(raw);
    let mut query = RunsQuery::from_pairs(&pairs);
    let limit = match pairs.iter().find(|(k, _)| k == "limit") {
        None => limits::RUNS_PAGE,
        Some((_, v)) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=limits::RUNS_WINDOW).contains(n))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid limit {v:?}: expected 1 to {}",
                    limits::RUNS_WINDOW
                ))
            })?,
    };
    let experiment = s.store.get_experiment(id).await?;
    resolve_columns(s, id, &mut query).await?;
    let (metrics, params, tags) = columns_of(&query);
    let search = runs_search(&experiment.experiment_id, &query, query.offset, limit);
    // `snap=new` asks for a snapshot of the order, `snap=N` reads snapshot N (or a new one);
    // without either a window is read by offset, as a script that knows no snapshots asks.
    let snap = pairs
        .iter()
        .find(|(k, _)| k == "snap")
        .map(|(_, v)| v.as_str());
    // A view with nested runs is read from a snapshot whether or not one was asked for, as
    // its positions are the tree's.
    let wanted = row_orders::worth_it(&search) && snap.is_some();
    let mut taken = None;
    let (runs, tree) =
        match row_orders::order(&s.store, &search, snap.and_then(|v| v.parse().ok()), wanted)
            .await?
        {
            Some((id, order)) => {
                let window = order.window(
                    &query.expanded,
                    usize::try_from(query.offset).unwrap_or(0),
                    usize::try_from(limit).unwrap_or(0),
                );
                taken = Some((id, window.total));
                row_orders::window_runs(&s.store, &search, &window).await?
            }
            None => (s.store.search_runs(&search).await?.items, None),
        };
    let summaries = summaries_of(s, &runs, metrics).await?;
    t.lap("store");
    let rows = twinloop_ui::runs_rows(&RowsView {
        experiment_id: &experiment.experiment_id,
        query: &query,
        runs: &runs,
        summaries: &summaries,
        columns: Columns {
            metrics,
            params,
            tags,
            stats: query.stats(),
        },
        sorted: !query.order.is_empty(),
        tree: tree.as_deref(),
    });
    t.lap("render");
    let mut response = t.page(StatusCode::OK, rows);
    if let Some((id, total)) = taken {
        let h = response.headers_mut();
        h.insert(row_orders::HEADER, HeaderValue::from(id));
        // Expanding a parent changes how many rows the view has; the script resizes by this.
        h.insert(row_orders::TOTAL_HEADER, HeaderValue::from(total));
    }
    Ok(response)
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
    let run = |id: &str| runs.iter().find(|r| r.info.run_id == id);
    let diff = match (query.diff_path.as_deref(), query.diff_runs()) {
        (Some(path), Some((a, b))) => match (run(a), run(b)) {
            (Some(a), Some(b)) => Some(super::artifacts::diff(&s.artifacts, a, b, path).await?),
            _ => None,
        },
        _ => None,
    };
    t.lap("store");
    let page = twinloop_ui::compare_page(&CompareView {
        experiment: &experiment,
        query,
        runs: &runs,
        summaries: &summaries,
        diff: diff.as_ref(),
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}
