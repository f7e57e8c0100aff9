//! An experiment's runs table (`/experiments/{id}`): the MLflow filter language in a form field,
//! server-side pages, sorting by any column, metric columns with last, min and max from the
//! store's summaries, and nested runs under their parent.

use std::collections::HashMap;

use maud::{Markup, html};
use twinloop_core::run_columns::{MetricSummary, RunSummaries};
use twinloop_core::tracking::{Experiment, Run};

use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::lifecycle::{self, Lifecycle};

/// Runs shown per page.
pub const PAGE_SIZE: i64 = 100;
/// Columns of one kind a URL may ask for; more are dropped.
pub const MAX_COLUMNS: usize = 50;
/// The tag MLflow records a nested run's parent in.
pub const PARENT_TAG: &str = "mlflow.parentRunId";

/// What the table shows, from its URL:
/// `?filter=DSL&order=CLAUSE&view=all&page=TOKEN&metric=loss&metric=acc&param=lr`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunsQuery {
    /// An MLflow filter (`metrics.acc > 0.9 and params.p = 'a'`), passed to the store as typed.
    pub filter: String,
    /// One MLflow order-by clause (``metrics.`loss`.min ASC``); empty is MLflow's default order.
    pub order: String,
    pub lifecycle: Lifecycle,
    pub page_token: Option<String>,
    /// Metric and param columns; `None` when the URL names none, and the server picks.
    pub metrics: Option<Vec<String>>,
    pub params: Option<Vec<String>>,
}

impl RunsQuery {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // `metric=` alone asks for no metric columns at all.
        let columns = |k: &str| {
            let named: Vec<&String> = pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v)
                .collect();
            (!named.is_empty()).then(|| {
                let mut keys: Vec<String> = Vec::new();
                for key in named.into_iter().filter(|v| !v.is_empty()) {
                    if !keys.contains(key) && keys.len() < MAX_COLUMNS {
                        keys.push(key.clone());
                    }
                }
                keys
            })
        };
        RunsQuery {
            filter: get("filter").unwrap_or("").trim().to_string(),
            order: get("order").unwrap_or("").trim().to_string(),
            lifecycle: Lifecycle::parse(get("view").unwrap_or("")),
            page_token: get("page").filter(|t| !t.is_empty()).map(String::from),
            metrics: columns("metric"),
            params: columns("param"),
        }
    }

    pub fn filter(&self) -> Option<String> {
        (!self.filter.is_empty()).then(|| self.filter.clone())
    }

    pub fn order_by(&self) -> Vec<String> {
        if self.order.is_empty() {
            Vec::new()
        } else {
            vec![self.order.clone()]
        }
    }

    /// This view's URL with another order and page; explicit columns are kept.
    fn href(&self, experiment_id: &str, order: &str, page: Option<&str>) -> String {
        let mut h = Href::new(href::experiment(experiment_id))
            .q("filter", &self.filter)
            .q("order", order)
            .q("view", self.lifecycle.param())
            .q("page", page.unwrap_or(""));
        for (name, keys) in [("metric", &self.metrics), ("param", &self.params)] {
            match keys {
                Some(keys) if keys.is_empty() => h = h.q_always(name, ""),
                Some(keys) => {
                    for k in keys {
                        h = h.q(name, k);
                    }
                }
                None => {}
            }
        }
        h.build()
    }
}

/// A key as the filter and order-by language quotes it: back-quoted, a back-quote doubled.
fn quoted(key: &str) -> String {
    format!("`{}`", key.replace('`', "``"))
}

/// Splits an order-by clause into what it sorts by and whether ascending (MLflow's default).
fn split_order(order: &str) -> (&str, bool) {
    let order = order.trim();
    match order.rsplit_once(char::is_whitespace) {
        Some((expr, dir)) if dir.eq_ignore_ascii_case("desc") => (expr.trim_end(), false),
        Some((expr, dir)) if dir.eq_ignore_ascii_case("asc") => (expr.trim_end(), true),
        _ => (order, true),
    }
}

pub struct RunsView<'a> {
    pub experiment: &'a Experiment,
    pub query: &'a RunsQuery,
    /// One page of runs in the order asked.
    pub runs: &'a [Run],
    /// The metric summaries of these runs (any order, any subset).
    pub summaries: &'a [RunSummaries],
    pub metric_columns: &'a [String],
    pub param_columns: &'a [String],
    pub next_page_token: Option<&'a str>,
    /// The server's message for a filter, order or page token it refused.
    pub error: Option<&'a str>,
}

/// The table's rows: nested under their parents in the default order, flat when the user
/// sorted, since a ranking that moved children under parents would no longer be one.
fn rows<'r>(runs: &'r [Run], order: &str) -> Vec<(usize, &'r Run)> {
    if order.is_empty() {
        nest(runs)
    } else {
        runs.iter().map(|r| (0, r)).collect()
    }
}

/// Runs in page order, each child moved under its parent when the parent is on the page, with
/// its depth. A parent tag naming a run elsewhere (or forming a loop) leaves the run at the top.
pub(crate) fn nest(runs: &[Run]) -> Vec<(usize, &Run)> {
    let index: HashMap<&str, usize> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.info.run_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); runs.len()];
    let mut roots = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        match parent_id(run).and_then(|p| index.get(p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let mut out = Vec::with_capacity(runs.len());
    let mut seen = vec![false; runs.len()];
    // Runs in a parent loop are reachable from no root: they start trees of their own, in order.
    for start in roots.into_iter().chain(0..runs.len()) {
        let mut stack = vec![(start, 0)];
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            out.push((depth, &runs[i]));
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    out
}

/// The id a nested run's parent tag names, if any.
pub fn parent_id(run: &Run) -> Option<&str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == PARENT_TAG)
        .map(|t| t.value.as_str())
        .filter(|v| !v.is_empty())
}

/// A run's name, or its id where it has none.
pub(crate) fn run_label(run: &Run) -> &str {
    if run.info.run_name.is_empty() {
        &run.info.run_id
    } else {
        &run.info.run_name
    }
}

pub(crate) fn status(run: &Run) -> Markup {
    let s = run.info.status.as_str();
    html! { span class={ "status " (s) } { (s) } }
}

/// The deepest nesting the table indents (CSS classes `depth-1` to `depth-6`).
const MAX_INDENT: usize = 6;

pub fn runs_page(v: &RunsView) -> Markup {
    let e = v.experiment;
    let q = v.query;
    let (sorted_by, ascending) = split_order(&q.order);
    // A header's sort link: the current column flips direction, another starts at `first_asc`.
    let sort = |label: &str, expr: &str, first_asc: bool| {
        let on = !q.order.is_empty() && sorted_by == expr;
        let asc = if on { !ascending } else { first_asc };
        let order = format!("{expr} {}", if asc { "ASC" } else { "DESC" });
        let arrow = match (on, ascending) {
            (false, _) => "",
            (true, true) => " ▲",
            (true, false) => " ▼",
        };
        html! { a.on[on] href=(q.href(&e.experiment_id, &order, None)) { (label) (arrow) } }
    };
    let by_run: HashMap<&str, &RunSummaries> =
        v.summaries.iter().map(|s| (s.run_id.as_str(), s)).collect();
    let summary = |run: &Run, key: &str| -> Option<&MetricSummary> {
        by_run
            .get(run.info.run_id.as_str())
            .and_then(|s| s.metrics.iter().find(|m| m.key == key))
    };
    page(
        &e.name,
        &[
            Crumb::link("Experiments", "/experiments".into()),
            Crumb::here(e.name.clone()),
        ],
        html! {
            h1 { (e.name) " " span.muted.mono { "#" (e.experiment_id) } }
            form.bar method="get" action=(href::experiment(&e.experiment_id)) {
                label {
                    "Filter (MLflow search syntax)"
                    input.wide type="text" name="filter" value=(q.filter)
                        placeholder="metrics.acc > 0.9 and params.optimizer = 'adam'";
                }
                label {
                    "Order by"
                    input type="text" name="order" value=(q.order) placeholder="metrics.`loss`.min ASC";
                }
                (lifecycle::select(q.lifecycle))
                @for (name, keys) in [("metric", &q.metrics), ("param", &q.params)] {
                    @if let Some(keys) = keys {
                        @if keys.is_empty() { input type="hidden" name=(name) value=""; }
                        @for k in keys { input type="hidden" name=(name) value=(k); }
                    }
                }
                button type="submit" { "Search" }
            }
            @if let Some(message) = v.error {
                div.error role="alert" #search-error { (message) }
            }
            @if !q.order.is_empty() && v.runs.iter().any(|r| parent_id(r).is_some()) {
                p.muted { "Sorted: nested runs are listed flat, in sort order." }
            }
            @if v.runs.is_empty() {
                p.muted { "No runs match." }
            } @else {
                // The checkboxes submit `run=ID` for each ticked run to the compare page.
                form #compare-form method="get" action=(crate::compare::compare_href(&e.experiment_id)) {
                div.bar { button type="submit" #compare-button { "Compare selected runs" } }
                div.scroll {
                    table #runs {
                        thead {
                            tr {
                                th { span.visually-hidden { "Select" } }
                                th { (sort("Run", "attributes.run_name", true)) }
                                th { "Status" }
                                th { (sort("Started", "attributes.start_time", false)) }
                                th { "Duration" }
                                th { "User" }
                                @for p in v.param_columns {
                                    th.param { (sort(p, &format!("params.{}", quoted(p)), true)) }
                                }
                                @for m in v.metric_columns {
                                    @let key = format!("metrics.{}", quoted(m));
                                    th.metric {
                                        (m)
                                        div.sorts {
                                            (sort("last", &key, false))
                                            (sort("min", &format!("{key}.min"), true))
                                            (sort("max", &format!("{key}.max"), false))
                                        }
                                    }
                                }
                            }
                        }
                        tbody {
                            @for (depth, run) in rows(v.runs, &q.order) {
                                tr data-run-id=(run.info.run_id) {
                                    td { input type="checkbox" name="run" value=(run.info.run_id) aria-label={ "Select " (run_label(run)) }; }
                                    td class={ "name depth-" (depth.min(MAX_INDENT)) } {
                                        @if depth > 0 { span.nest aria-hidden="true" { "↳" } }
                                        a href=(href::run(&e.experiment_id, &run.info.run_id)) { (run_label(run)) }
                                    }
                                    td { (status(run)) }
                                    td { (format::opt_time(run.info.start_time)) }
                                    td.num { (format::duration(run.info.start_time, run.info.end_time)) }
                                    td { (run.info.user_id) }
                                    @for p in v.param_columns {
                                        td.v {
                                            @if let Some(param) = run.data.params.iter().find(|x| &x.key == p) {
                                                (param.value)
                                            }
                                        }
                                    }
                                    @for m in v.metric_columns {
                                        td.num {
                                            @if let Some(s) = summary(run, m) {
                                                span title=(s.last) { (format::value(s.last)) }
                                                @if let (Some(min), Some(max)) = (s.min, s.max) {
                                                    span.range title={ "min " (min) ", max " (max) ", " (s.count) " points" } {
                                                        (format::value(min)) " … " (format::value(max))
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                }
            }
            div.pager {
                @if q.page_token.is_some() {
                    a href=(q.href(&e.experiment_id, &q.order, None)) { "First page" }
                }
                @if let Some(token) = v.next_page_token {
                    a rel="next" href=(q.href(&e.experiment_id, &q.order, Some(token))) { "Next page" }
                }
            }
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use twinloop_core::tracking::{LifecycleStage, Param, RunData, RunInfo, RunStatus, Tag};

    use super::*;

    pub(crate) fn experiment() -> Experiment {
        Experiment {
            experiment_id: "3".into(),
            name: "churn".into(),
            artifact_location: "mlflow-artifacts:/3".into(),
            lifecycle_stage: LifecycleStage::Active,
            creation_time: 0,
            last_update_time: 0,
            tags: vec![],
        }
    }

    pub(crate) fn run(id: &str, name: &str, parent: Option<&str>) -> Run {
        let mut tags = vec![Tag::new("mlflow.runName", name)];
        if let Some(p) = parent {
            tags.push(Tag::new(PARENT_TAG, p));
        }
        Run {
            info: RunInfo {
                run_id: id.into(),
                experiment_id: "3".into(),
                run_name: name.into(),
                user_id: "ana".into(),
                status: RunStatus::Finished,
                start_time: Some(1_767_225_600_000),
                end_time: Some(1_767_225_604_200),
                artifact_uri: format!("mlflow-artifacts:/3/{id}/artifacts"),
                lifecycle_stage: LifecycleStage::Active,
            },
            data: RunData {
                metrics: vec![],
                params: vec![Param::new("lr", "0.01"), Param::new("opt", "<b>adam</b>")],
                tags,
            },
            inputs: vec![],
            model_inputs: vec![],
            outputs: vec![],
        }
    }

    pub(crate) fn loss(last: f64, min: f64, max: f64) -> MetricSummary {
        MetricSummary {
            key: "loss".into(),
            min: Some(min),
            max: Some(max),
            count: 10,
            last,
            last_step: 9,
            last_timestamp: 0,
        }
    }

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn render(runs: &[Run], query: &RunsQuery, error: Option<&str>) -> String {
        let summaries = [RunSummaries {
            run_id: "a1".into(),
            metrics: vec![loss(0.25, 0.125, 2.5)],
        }];
        runs_page(&RunsView {
            experiment: &experiment(),
            query,
            runs,
            summaries: &summaries,
            metric_columns: &["loss".to_string()],
            param_columns: &["opt".to_string()],
            next_page_token: Some("abc="),
            error,
        })
        .into_string()
    }

    #[test]
    fn rows_link_to_runs_with_metric_summaries_and_params() {
        let html = render(&[run("a1", "first", None)], &RunsQuery::default(), None);
        assert!(
            html.contains(r#"<a href="/experiments/3/runs/a1">first</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<span title="0.25">0.25</span>"#), "{html}");
        assert!(html.contains("0.125 … 2.5"), "{html}");
        assert!(html.contains("&lt;b&gt;adam&lt;/b&gt;"));
        assert!(html.contains("4.2s"));
        assert!(html.contains(r#"class="status FINISHED""#));
        assert!(
            html.contains(
                r#"<form id="compare-form" method="get" action="/experiments/3/compare">"#
            )
        );
        assert!(
            html.contains(
                r#"<input type="checkbox" name="run" value="a1" aria-label="Select first">"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/experiments/3?page=abc%3D""#),
            "{html}"
        );
        // Sorting by the min of loss: the summary clause of the order-by language.
        assert!(
            html.contains(r#"href="/experiments/3?order=metrics.%60loss%60.min%20ASC">min</a>"#),
            "{html}"
        );
    }

    #[test]
    fn hostile_names_tags_and_params_render_inert() {
        let mut hostile = run("a1", "<script>alert(1)</script>", None);
        hostile
            .data
            .params
            .push(Param::new("<script>k</script>", "javascript:alert(1)"));
        let query = RunsQuery::from_pairs(&pairs(&[
            ("filter", "params.x = '\"><script>alert(1)</script>'"),
            ("param", "<script>k</script>"),
        ]));
        let html = render(&[hostile], &query, Some("<script>alert(2)</script>"));
        assert!(
            !html.contains("<script>alert") && !html.contains("<script>k"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
        assert!(!html.contains("href=\"javascript:"), "{html}");
    }

    #[test]
    fn an_error_keeps_the_form_and_what_was_typed() {
        let query = RunsQuery::from_pairs(&pairs(&[("filter", "metrics.acc >> 1")]));
        let html = render(&[], &query, Some("Error on parsing filter at 13"));
        assert!(html.contains(r#"id="search-error""#));
        assert!(html.contains("Error on parsing filter at 13"));
        assert!(
            html.contains(r#"name="filter" value="metrics.acc &gt;&gt; 1""#),
            "{html}"
        );
        assert!(html.contains("No runs match."));
    }

    #[test]
    fn children_follow_their_parent_indented() {
        let runs = [
            run("c1", "child", Some("p1")),
            run("x", "other", Some("elsewhere")),
            run("p1", "parent", None),
            run("g1", "grandchild", Some("c1")),
            run("l1", "loop-a", Some("l2")),
            run("l2", "loop-b", Some("l1")),
            run("s", "self", Some("s")),
        ];
        let order: Vec<(usize, &str)> = nest(&runs)
            .into_iter()
            .map(|(d, r)| (d, r.info.run_id.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (0, "x"),
                (0, "p1"),
                (1, "c1"),
                (2, "g1"),
                (0, "s"),
                (0, "l1"),
                (1, "l2")
            ]
        );
        let html = render(&runs, &RunsQuery::default(), None);
        assert!(html.contains(r#"<td class="name depth-2">"#), "{html}");
        let sorted = RunsQuery {
            order: "metrics.`loss`.min ASC".into(),
            ..RunsQuery::default()
        };
        let html = render(&runs, &sorted, None);
        assert!(
            !html.contains("depth-1") && html.contains("listed flat"),
            "{html}"
        );
        let first = html.find("data-run-id=\"c1\"").unwrap();
        assert!(
            first < html.find("data-run-id=\"p1\"").unwrap(),
            "page order kept"
        );
    }

    #[test]
    fn the_url_keeps_columns_filter_and_order() {
        let query = RunsQuery::from_pairs(&pairs(&[
            ("filter", " metrics.acc > 0.9 "),
            ("order", "metrics.`loss`.min asc"),
            ("metric", "loss"),
            ("metric", "loss"),
            ("metric", "acc"),
            ("param", ""),
            ("view", "all"),
            ("page", "t"),
        ]));
        assert_eq!(query.filter().unwrap(), "metrics.acc > 0.9");
        assert_eq!(query.order_by(), ["metrics.`loss`.min asc"]);
        assert_eq!(query.metrics.as_deref().unwrap(), ["loss", "acc"]);
        assert_eq!(query.params.as_deref().unwrap(), [] as [String; 0]);
        assert_eq!(split_order(&query.order), ("metrics.`loss`.min", true));
        assert_eq!(
            query.href("3", &query.order, None),
            "/experiments/3?filter=metrics.acc%20%3E%200.9&order=metrics.%60loss%60.min%20asc&view=all&metric=loss&metric=acc&param="
        );
        assert_eq!(quoted("a`b"), "`a``b`");
        let none = RunsQuery::from_pairs(&[]);
        assert_eq!(
            (none.filter(), none.order_by().len(), none.metrics),
            (None, 0, None)
        );
    }
}
