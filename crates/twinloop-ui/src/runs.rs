//! An experiment's runs table (`/experiments/{id}`): the MLflow filter language in a form field,
//! sorting by any column, param, tag and metric columns (last, min, max and count from the
//! store's summaries), nested runs under their parent, and grouping by a param.
//!
//! The table is virtual: the page carries the first rows and the total, and `vtable.js` keeps
//! only the rows in view (plus an overscan) in the DOM, fetching windows of [`PAGE_SIZE`] rows by
//! position from `/experiments/{id}/rows` ([`runs_rows`]). Without JavaScript the same page is
//! paged by `offset=` links.

use std::collections::HashMap;

use maud::{Markup, html};
use twinloop_core::run_columns::{MetricSummary, RunGroup, RunSummaries};
use twinloop_core::tracking::{Experiment, Run};

use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::lifecycle::{self, Lifecycle};

/// Runs per page without JavaScript, and per window fetched by position with it.
pub const PAGE_SIZE: i64 = 100;
/// The largest window `/experiments/{id}/rows` answers.
pub const MAX_WINDOW: i64 = 200;
/// Columns of one kind a URL may ask for; more are dropped.
pub const MAX_COLUMNS: usize = 50;
/// Groups shown when grouping by a param.
pub const MAX_GROUPS: u32 = 500;
/// The id of the search form, which the column picker's fields belong to.
const SEARCH_FORM: &str = "runs-search";
/// The tag MLflow records a nested run's parent in.
pub const PARENT_TAG: &str = "mlflow.parentRunId";
/// Parents a URL may show expanded at once; more are dropped.
pub const MAX_EXPANDED: usize = 100;

/// Which summaries of a metric column show, each its own sortable sub-column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Last,
    Min,
    Max,
    Count,
}

impl Stat {
    const ALL: [Stat; 4] = [Stat::Last, Stat::Min, Stat::Max, Stat::Count];
    const DEFAULT: [Stat; 3] = [Stat::Last, Stat::Min, Stat::Max];

    fn name(self) -> &'static str {
        match self {
            Stat::Last => "last",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Count => "count",
        }
    }

    fn parse(s: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The order-by expression of this summary of `key` (last is MLflow's plain metric).
    fn order_expr(self, key: &str) -> String {
        let base = format!("metrics.{}", quoted(key));
        match self {
            Stat::Last => base,
            other => format!("{base}.{}", other.name()),
        }
    }

    /// Whether a header's first click sorts ascending: smallest minimum first, largest rest.
    fn first_ascending(self) -> bool {
        self == Stat::Min
    }

    fn cell(self, s: &MetricSummary) -> Markup {
        let shown = |v: Option<f64>| {
            html! { @if let Some(v) = v { span title=(v) { (format::value(v)) } } }
        };
        match self {
            Stat::Last => shown(Some(s.last)),
            Stat::Min => shown(s.min),
            Stat::Max => shown(s.max),
            Stat::Count => html! { (s.count) },
        }
    }
}

/// What the table shows, from its URL: `?filter=DSL&order=CLAUSE&view=all&offset=N&metric=loss&
/// param=lr&tag=team&stat=last&stat=min&group=optimizer&gmetric=loss`, with `#row=N` (the first
/// row in view) kept by the script.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunsQuery {
    /// An MLflow filter (`metrics.acc > 0.9 and params.p = 'a'`), passed to the store as typed.
    pub filter: String,
    /// One MLflow order-by clause (``metrics.`loss`.min ASC``); empty is MLflow's default order.
    pub order: String,
    pub lifecycle: Lifecycle,
    /// The position of the first row of this page, rounded down to a whole page.
    pub offset: i64,
    /// Metric, param and tag columns; `None` when the URL names none, and the server picks.
    pub metrics: Option<Vec<String>>,
    pub params: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// The summaries each metric column shows; empty is last, min and max.
    pub stats: Vec<Stat>,
    /// A param whose values group the runs; empty for the flat table.
    pub group: String,
    /// The metric aggregated per group; empty is the first metric column.
    pub group_metric: String,
    /// Runs whose children show under them (`expand=ID`, repeated); the rest show collapsed.
    pub expanded: Vec<String>,
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
                for key in named
                    .into_iter()
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                {
                    if !keys.iter().any(|k| k == key) && keys.len() < MAX_COLUMNS {
                        keys.push(key.to_string());
                    }
                }
                keys
            })
        };
        let mut stats: Vec<Stat> = Vec::new();
        for stat in pairs
            .iter()
            .filter(|(n, _)| n == "stat")
            .filter_map(|(_, v)| Stat::parse(v))
        {
            if !stats.contains(&stat) {
                stats.push(stat);
            }
        }
        let mut expanded: Vec<String> = Vec::new();
        for id in pairs
            .iter()
            .filter(|(n, _)| n == "expand")
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
        {
            if !expanded.iter().any(|e| e == id) && expanded.len() < MAX_EXPANDED {
                expanded.push(id.to_string());
            }
        }
        let offset = get("offset")
            .and_then(|o| o.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0);
        RunsQuery {
            filter: get("filter").unwrap_or("").trim().to_string(),
            order: get("order").unwrap_or("").trim().to_string(),
            lifecycle: Lifecycle::parse(get("view").unwrap_or("")),
            offset: offset - offset % PAGE_SIZE,
            metrics: columns("metric"),
            params: columns("param"),
            tags: columns("tag"),
            stats,
            group: get("group").unwrap_or("").trim().to_string(),
            group_metric: get("gmetric").unwrap_or("").trim().to_string(),
            expanded,
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

    /// The summaries each metric column shows.
    pub fn stats(&self) -> &[Stat] {
        if self.stats.is_empty() {
            &Stat::DEFAULT
        } else {
            &self.stats
        }
    }

    /// The filter that picks one group's runs out of this view's: the view's filter and the
    /// grouped param's value (MLflow's language has `and` but no parentheses, so they chain).
    pub fn group_filter(&self, value: &str) -> String {
        let clause = format!(
            "params.{} = '{}'",
            quoted(&self.group),
            value.replace('\'', "''")
        );
        if self.filter.is_empty() {
            clause
        } else {
            format!("{} and {clause}", self.filter)
        }
    }

    /// `path` with this view's state; `order`, `offset`, `filter` and `group` as given.
    fn link(&self, path: String, filter: &str, order: &str, offset: i64, group: &str) -> Href {
        let mut h = Href::new(path)
            .q("filter", filter)
            .q("order", order)
            .q("view", self.lifecycle.param());
        if offset > 0 {
            h = h.q("offset", &offset.to_string());
        }
        for (name, keys) in [
            ("metric", &self.metrics),
            ("param", &self.params),
            ("tag", &self.tags),
        ] {
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
        for stat in &self.stats {
            h = h.q("stat", stat.name());
        }
        for id in &self.expanded {
            h = h.q("expand", id);
        }
        h.q("group", group).q("gmetric", &self.group_metric)
    }

    /// This page with `run_id`'s children shown, or hidden when they are.
    fn toggled(&self, experiment_id: &str, run_id: &str) -> String {
        let mut q = self.clone();
        match q.expanded.iter().position(|e| e == run_id) {
            Some(i) => {
                q.expanded.remove(i);
            }
            None => q.expanded.push(run_id.to_string()),
        }
        q.href(experiment_id, &self.order, self.offset)
    }

    /// This view's URL with another order and first row; columns and grouping are kept.
    fn href(&self, experiment_id: &str, order: &str, offset: i64) -> String {
        self.link(
            href::experiment(experiment_id),
            &self.filter,
            order,
            offset,
            &self.group,
        )
        .build()
    }

    /// Where the script fetches windows of rows (it adds `offset` and `limit`).
    fn rows_href(&self, experiment_id: &str, filter: &str) -> String {
        self.link(
            format!("{}/rows", href::experiment(experiment_id)),
            filter,
            &self.order,
            0,
            "",
        )
        .build()
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

/// The columns a table shows beside each run's own attributes.
#[derive(Clone, Copy)]
pub struct Columns<'a> {
    pub metrics: &'a [String],
    pub params: &'a [String],
    pub tags: &'a [String],
    pub stats: &'a [Stat],
}

/// A run's place in the view's tree of nested runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeNode {
    /// 0 for a run shown at the top: no parent, or one the view does not hold.
    pub depth: usize,
    /// Its children in the view.
    pub children: usize,
    /// Whether they show under it.
    pub expanded: bool,
}

/// One window of rows: the runs at some position of a search, in its order.
pub struct RowsView<'a> {
    pub experiment_id: &'a str,
    /// The view, for the links that expand a parent.
    pub query: &'a RunsQuery,
    pub runs: &'a [Run],
    /// The metric summaries of these runs (any order, any subset).
    pub summaries: &'a [RunSummaries],
    pub columns: Columns<'a>,
    /// Whether the user sorted; without a tree, unsorted windows nest children under a parent
    /// in the same window.
    pub sorted: bool,
    /// One per run: its place in the view's tree, which the server laid the runs out by. `None`
    /// when the view holds no nested runs or too many runs for a tree.
    pub tree: Option<&'a [TreeNode]>,
}

pub struct RunsView<'a> {
    pub experiment: &'a Experiment,
    pub query: &'a RunsQuery,
    /// The runs from `query.offset` on, in the order asked.
    pub rows: RowsView<'a>,
    /// How many runs the search matches.
    pub total: i64,
    /// How many rows the table has: `total`, less the children of collapsed parents.
    pub rows_total: i64,
    /// The snapshot of the view's order the rows were read from, for the script's windows.
    pub snapshot: Option<u64>,
    /// With `query.group`: the groups, most runs first.
    pub groups: Option<&'a [RunGroup]>,
    /// The metric the groups aggregate, if any.
    pub group_metric: Option<&'a str>,
    /// The server's message for a filter or order it refused.
    pub error: Option<&'a str>,
}

/// The table's rows with their places in the tree: as the server laid them out when it did;
/// else nested under a parent in the same window in the default order, flat when the user
/// sorted, since a ranking that moved children under parents would no longer be one.
fn rows<'r>(runs: &'r [Run], sorted: bool, tree: Option<&[TreeNode]>) -> Vec<(TreeNode, &'r Run)> {
    let flat = |depth| TreeNode {
        depth,
        children: 0,
        expanded: false,
    };
    match tree {
        Some(tree) => tree.iter().copied().zip(runs).collect(),
        None if sorted => runs.iter().map(|r| (flat(0), r)).collect(),
        None => nest(runs).into_iter().map(|(d, r)| (flat(d), r)).collect(),
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

/// The `<tr>`s of one window, also what `/experiments/{id}/rows` answers.
pub fn runs_rows(v: &RowsView) -> Markup {
    let by_run: HashMap<&str, &RunSummaries> =
        v.summaries.iter().map(|s| (s.run_id.as_str(), s)).collect();
    let summary = |run: &Run, key: &str| -> Option<&MetricSummary> {
        by_run
            .get(run.info.run_id.as_str())
            .and_then(|s| s.metrics.iter().find(|m| m.key == key))
    };
    let c = v.columns;
    html! {
        @for (node, run) in rows(v.runs, v.sorted, v.tree) {
            @let depth = node.depth;
            tr data-run-id=(run.info.run_id) data-depth=(depth) {
                td { input type="checkbox" name="run" value=(run.info.run_id) aria-label={ "Select " (run_label(run)) }; }
                td class={ "name depth-" (depth.min(MAX_INDENT)) } {
                    @if depth > 0 { span.nest aria-hidden="true" { "↳" } }
                    @if node.children > 0 {
                        a.expander href=(v.query.toggled(v.experiment_id, &run.info.run_id))
                            data-expand=(run.info.run_id) aria-expanded=(node.expanded) hx-boost="false"
                            title={ @if node.expanded { "Hide" } @else { "Show" } " " (node.children) " child runs" } {
                            span.caret aria-hidden="true" { @if node.expanded { "▾" } @else { "▸" } }
                            span.children { (node.children) }
                        }
                    }
                    a href=(href::run(v.experiment_id, &run.info.run_id)) title=(run_label(run)) { (run_label(run)) }
                }
                td { (status(run)) }
                td { (format::opt_time(run.info.start_time)) }
                td.num { (format::duration(run.info.start_time, run.info.end_time)) }
                td { (run.info.user_id) }
                @for p in c.params {
                    @let value = run.data.params.iter().find(|x| &x.key == p).map(|x| x.value.as_str());
                    td.v title=[value] { @if let Some(value) = value { (value) } }
                }
                @for t in c.tags {
                    @let value = run.data.tags.iter().find(|x| &x.key == t).map(|x| x.value.as_str());
                    td.v title=[value] { @if let Some(value) = value { (value) } }
                }
                @for m in c.metrics {
                    @let s = summary(run, m);
                    @for stat in c.stats {
                        td.num { @if let Some(s) = s { (stat.cell(s)) } }
                    }
                }
            }
        }
    }
}

/// The column picker: the columns shown as ticked boxes, the experiment's keys loaded by the
/// script when the picker opens (searchable), and plain fields to add a key without it.
fn picker(e: &Experiment, c: &Columns) -> Markup {
    let keys_url = format!(
        "/api/twinloop/v1/experiments/{}/keys",
        href::encode(&e.experiment_id)
    );
    // Its fields belong to the search form (`form=`), so one submission carries the filter,
    // order and columns together, and no field is repeated.
    html! {
        details #column-picker .picker data-keys-url=(keys_url) {
            summary { "Columns" }
            div.picker-body {
                fieldset {
                    legend { "Metric values" }
                    @for stat in Stat::ALL {
                        label.check { input form=(SEARCH_FORM) type="checkbox" name="stat" value=(stat.name()) checked[c.stats.contains(&stat)]; (stat.name()) }
                    }
                }
                fieldset #picker-chosen {
                    legend { "Shown" }
                    // An empty value keeps "no columns of this kind" when every box is cleared.
                    @for (kind, keys) in [("metric", c.metrics), ("param", c.params), ("tag", c.tags)] {
                        input form=(SEARCH_FORM) type="hidden" name=(kind) value="";
                        @for k in keys {
                            label.check { input form=(SEARCH_FORM) type="checkbox" name=(kind) value=(k) checked; (kind) " " span.mono { (k) } }
                        }
                    }
                }
                fieldset.picker-search {
                    legend { "Add" }
                    label { "Kind" select.picker-kind {
                        option value="metric" { "metric" } option value="param" { "param" } option value="tag" { "tag" }
                    } }
                    label { "Search keys" input.picker-q type="search" placeholder="loss" autocomplete="off"; }
                    p.picker-status.muted aria-live="polite" {}
                    ul.picker-keys data-form=(SEARCH_FORM) {}
                    p.picker-plain {
                        label { "metric " input form=(SEARCH_FORM) type="text" name="metric" placeholder="key"; }
                        label { "param " input form=(SEARCH_FORM) type="text" name="param" placeholder="key"; }
                        label { "tag " input form=(SEARCH_FORM) type="text" name="tag" placeholder="key"; }
                    }
                }
                button type="submit" form=(SEARCH_FORM) { "Apply" }
            }
        }
    }
}

/// The groups of a grouped view: each with its run count and the metric's mean, min and max,
/// and the group's runs fetched on expanding it (a link to them without JavaScript).
fn groups_table(
    e: &Experiment,
    q: &RunsQuery,
    groups: &[RunGroup],
    metric: Option<&str>,
) -> Markup {
    html! {
        table #groups {
            thead {
                tr {
                    th { "params." (q.group) }
                    th { "Runs" }
                    @if let Some(m) = metric {
                        th { (m) " mean" } th { (m) " min" } th { (m) " max" }
                    }
                }
            }
            @for g in groups {
                tbody.group.collapsed data-value=[g.value.as_deref()] {
                    tr.group-head {
                        td {
                            @match &g.value {
                                Some(value) => {
                                    a.expand href=(q.link(href::experiment(&e.experiment_id), &q.group_filter(value), &q.order, 0, "").build())
                                        data-rows-url=(q.rows_href(&e.experiment_id, &q.group_filter(value)))
                                        hx-boost="false" aria-expanded="false" {
                                        span.caret aria-hidden="true" {} span.value { (value) }
                                    }
                                }
                                None => { span.muted { "(not set)" } }
                            }
                        }
                        td.num.count { (g.runs) }
                        @if metric.is_some() {
                            @for v in [g.mean, g.min, g.max] {
                                td.num { @if let Some(v) = v { span title=(v) { (format::value(v)) } } }
                            }
                        }
                    }
                    tr.members { td colspan=(if metric.is_some() { 5 } else { 2 }) {
                        div.scroll { table.members-table { tbody {} } }
                    } }
                }
            }
        }
    }
}

pub fn runs_page(v: &RunsView) -> Markup {
    let e = v.experiment;
    let q = v.query;
    let c = v.rows.columns;
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
        html! { a.on[on] href=(q.href(&e.experiment_id, &order, 0)) { (label) (arrow) } }
    };
    let shown = v.rows.runs.len() as i64;
    let two_rows = !c.metrics.is_empty();
    let span = if two_rows { 2 } else { 1 };
    page(
        &e.name,
        &[
            Crumb::link("Experiments", "/experiments".into()),
            Crumb::here(e.name.clone()),
        ],
        html! {
            h1 { (e.name) " " span.muted.mono { "#" (e.experiment_id) } }
            form.bar #runs-search method="get" action=(href::experiment(&e.experiment_id)) {
                label {
                    "Filter (MLflow search syntax)"
                    input.wide type="text" name="filter" value=(q.filter)
                        placeholder="metrics.acc > 0.9 and params.optimizer = 'adam'";
                }
                label {
                    "Order by"
                    input type="text" name="order" value=(q.order) placeholder="metrics.`loss`.min ASC";
                }
                label {
                    "Group by param"
                    input type="text" name="group" value=(q.group) placeholder="optimizer";
                }
                (lifecycle::select(q.lifecycle))
                @if !q.group_metric.is_empty() { input type="hidden" name="gmetric" value=(q.group_metric); }
                // A new filter or order keeps the parents that were open.
                @for id in &q.expanded { input type="hidden" name="expand" value=(id); }
                button type="submit" { "Search" }
            }
            (picker(e, &c))
            @if let Some(message) = v.error {
                div.error role="alert" #search-error { (message) }
            }
            p.muted #run-count {
                @if v.total == 1 { "1 run" } @else { (v.total) " runs" }
                @if let Some(groups) = v.groups { " in " (groups.len()) " groups" }
                @if v.rows.tree.is_some() && v.groups.is_none() {
                    "; " span #row-total { (v.rows_total) } " rows, child runs under their parent"
                } @else if q.order.is_empty() && v.groups.is_none() { "; nested runs follow their parent" }
            }
            @if let Some(groups) = v.groups {
                (groups_table(e, q, groups, v.group_metric))
            } @else if v.rows.runs.is_empty() {
                p.muted { "No runs match." }
            } @else {
                // The checkboxes submit `run=ID` for each ticked run to the compare page.
                form #compare-form method="get" action=(crate::compare::compare_href(&e.experiment_id)) {
                div.bar { button type="submit" #compare-button { "Compare selected runs" } }
                div.scroll.vtable #runs-box data-total=(v.rows_total) data-offset=(q.offset)
                    data-page=(PAGE_SIZE) data-rows-url=(q.rows_href(&e.experiment_id, &q.filter))
                    data-snapshot=[v.snapshot] {
                    table #runs {
                        thead {
                            tr {
                                th rowspan=(span) { span.visually-hidden { "Select" } }
                                th rowspan=(span) { (sort("Run", "attributes.run_name", true)) }
                                th rowspan=(span) { "Status" }
                                th rowspan=(span) { (sort("Started", "attributes.start_time", false)) }
                                th rowspan=(span) { "Duration" }
                                th rowspan=(span) { "User" }
                                @for p in c.params {
                                    th.param rowspan=(span) { (sort(p, &format!("params.{}", quoted(p)), true)) }
                                }
                                @for t in c.tags {
                                    th.tag rowspan=(span) { (sort(t, &format!("tags.{}", quoted(t)), true)) }
                                }
                                @for m in c.metrics {
                                    th.metric colspan=(c.stats.len()) title=(m) { (m) }
                                }
                            }
                            @if two_rows {
                                tr.stats {
                                    @for m in c.metrics {
                                        @for stat in c.stats {
                                            th.stat { (sort(stat.name(), &stat.order_expr(m), stat.first_ascending())) }
                                        }
                                    }
                                }
                            }
                        }
                        tbody { (runs_rows(&v.rows)) }
                    }
                }
                }
                div.pager {
                    @if q.offset > 0 {
                        a href=(q.href(&e.experiment_id, &q.order, 0)) { "First page" }
                        a rel="prev" href=(q.href(&e.experiment_id, &q.order, (q.offset - PAGE_SIZE).max(0))) { "Previous page" }
                    }
                    span.muted { "Rows " (q.offset + 1) "–" (q.offset + shown) " of " (v.rows_total) }
                    @if q.offset + shown < v.rows_total {
                        a rel="next" href=(q.href(&e.experiment_id, &q.order, q.offset + PAGE_SIZE)) { "Next page" }
                    }
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
        render_with(runs, query, error, None)
    }

    fn render_with(
        runs: &[Run],
        query: &RunsQuery,
        error: Option<&str>,
        groups: Option<&[RunGroup]>,
    ) -> String {
        let summaries = [RunSummaries {
            run_id: "a1".into(),
            metrics: vec![loss(0.25, 0.125, 2.5)],
        }];
        let metrics = ["loss".to_string()];
        let params = ["opt".to_string()];
        let tags = ["team".to_string()];
        runs_page(&RunsView {
            experiment: &experiment(),
            query,
            rows: RowsView {
                experiment_id: "3",
                query,
                runs,
                summaries: &summaries,
                columns: Columns {
                    metrics: &metrics,
                    params: &params,
                    tags: &tags,
                    stats: query.stats(),
                },
                sorted: !query.order.is_empty(),
                tree: None,
            },
            total: 250,
            rows_total: 250,
            snapshot: None,
            groups,
            group_metric: Some("loss"),
            error,
        })
        .into_string()
    }

    #[test]
    fn rows_link_to_runs_with_metric_summaries_params_and_tags() {
        let mut first = run("a1", "first", None);
        first.data.tags.push(Tag::new("team", "vision"));
        let html = render(&[first], &RunsQuery::default(), None);
        assert!(
            html.contains(r#"<a href="/experiments/3/runs/a1" title="first">first</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<span title="0.25">0.25</span>"#), "{html}");
        assert!(
            html.contains(r#"<span title="0.125">0.125</span>"#),
            "{html}"
        );
        assert!(html.contains(r#"<span title="2.5">2.5</span>"#), "{html}");
        assert!(html.contains("&lt;b&gt;adam&lt;/b&gt;"));
        assert!(
            html.contains(r#"<td class="v" title="vision">vision</td>"#),
            "{html}"
        );
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
        // The total and the window source for the script; paging links without it.
        assert!(html.contains(r#"data-total="250""#), "{html}");
        assert!(
            html.contains(r#"data-rows-url="/experiments/3/rows""#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/experiments/3?offset=100""#),
            "{html}"
        );
        assert!(html.contains("Rows 1–1 of 250"), "{html}");
        // Sorting by the min of loss: the summary clause of the order-by language.
        assert!(
            html.contains(r#"href="/experiments/3?order=metrics.%60loss%60.min%20ASC">min</a>"#),
            "{html}"
        );
        // The picker: lazy keys, the shown columns ticked, count available but not shown.
        assert!(
            html.contains(r#"data-keys-url="/api/twinloop/v1/experiments/3/keys""#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<input form="runs-search" type="checkbox" name="tag" value="team" checked>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<input form="runs-search" type="checkbox" name="stat" value="count">"#
            ),
            "{html}"
        );
    }

    #[test]
    fn count_is_a_column_when_asked() {
        let query = RunsQuery::from_pairs(&pairs(&[("stat", "count"), ("stat", "last")]));
        assert_eq!(query.stats(), [Stat::Count, Stat::Last]);
        let html = render(&[run("a1", "first", None)], &query, None);
        assert!(
            html.contains(r#"<td class="num">10</td><td class="num"><span title="0.25">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/experiments/3?order=metrics.%60loss%60.count%20DESC&amp;stat=count&amp;stat=last">count</a>"#),
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
            ("group", "<script>g</script>"),
        ]));
        let html = render(&[hostile], &query, Some("<script>alert(2)</script>"));
        assert!(
            !html.contains("<script>alert") && !html.contains("<script>k"),
            "{html}"
        );
        assert!(!html.contains("<script>g"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
        assert!(!html.contains("href=\"javascript:"), "{html}");
        let groups = [RunGroup {
            value: Some("<script>v</script>'".into()),
            runs: 2,
            with_metric: 0,
            mean: None,
            min: None,
            max: None,
        }];
        let html = render_with(&[], &query, None, Some(&groups));
        assert!(!html.contains("<script>v"), "{html}");
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
    fn groups_show_counts_aggregates_and_a_link_to_their_runs() {
        let query =
            RunsQuery::from_pairs(&pairs(&[("group", "opt"), ("filter", "metrics.acc > 0.5")]));
        assert_eq!(
            query.group_filter("it's"),
            "metrics.acc > 0.5 and params.`opt` = 'it''s'"
        );
        let groups = [
            RunGroup {
                value: Some("adam".into()),
                runs: 7,
                with_metric: 7,
                mean: Some(0.5),
                min: Some(0.25),
                max: Some(0.75),
            },
            RunGroup {
                value: None,
                runs: 2,
                with_metric: 0,
                mean: None,
                min: None,
                max: None,
            },
        ];
        let html = render_with(&[], &query, None, Some(&groups));
        assert!(html.contains(r#"id="groups""#), "{html}");
        assert!(html.contains("250 runs in 2 groups"), "{html}");
        assert!(html.contains(r#"<td class="num count">7</td>"#), "{html}");
        assert!(html.contains(r#"<span title="0.5">0.5</span>"#), "{html}");
        assert!(html.contains("(not set)"), "{html}");
        // Each group links to the runs table filtered to it, and names its rows' source.
        assert!(
            html.contains(r#"href="/experiments/3?filter=metrics.acc%20%3E%200.5%20and%20params.%60opt%60%20%3D%20%27adam%27""#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-rows-url="/experiments/3/rows?filter=metrics.acc%20%3E%200.5%20and%20params.%60opt%60%20%3D%20%27adam%27""#),
            "{html}"
        );
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
        assert!(!html.contains("depth-1"), "{html}");
        let first = html.find("data-run-id=\"c1\"").unwrap();
        assert!(
            first < html.find("data-run-id=\"p1\"").unwrap(),
            "page order kept"
        );
    }

    #[test]
    fn a_tree_shows_expanders_with_child_counts_and_keeps_the_servers_layout() {
        let query = RunsQuery::from_pairs(&pairs(&[
            ("order", "metrics.`loss`.min ASC"),
            ("expand", "p1"),
            ("expand", "p1"),
            ("expand", " "),
            ("offset", "100"),
        ]));
        assert_eq!(query.expanded, ["p1"]);
        let runs = [
            run("p1", "parent", None),
            run("c1", "child", Some("p1")),
            run("c2", "child-2", Some("p1")),
            run("q1", "other-parent", None),
            run("lone", "<b>lone</b>", None),
        ];
        let node = |depth, children, expanded| TreeNode {
            depth,
            children,
            expanded,
        };
        let tree = [
            node(0, 2, true),
            node(1, 0, false),
            node(1, 0, false),
            node(0, 3, false),
            node(0, 0, false),
        ];
        let metrics: [String; 0] = [];
        let html = runs_rows(&RowsView {
            experiment_id: "3",
            query: &query,
            runs: &runs,
            summaries: &[],
            columns: Columns {
                metrics: &metrics,
                params: &metrics,
                tags: &metrics,
                stats: query.stats(),
            },
            sorted: true,
            tree: Some(&tree),
        })
        .into_string();
        // The server's layout is kept: children under the parent though the view is sorted.
        let at = |id: &str| html.find(&format!("data-run-id=\"{id}\"")).unwrap();
        assert!(at("p1") < at("c1") && at("c1") < at("c2") && at("c2") < at("q1"));
        assert!(
            html.contains(r#"<tr data-run-id="c1" data-depth="1"><td><input"#),
            "{html}"
        );
        assert!(html.contains(r#"<td class="name depth-1">"#), "{html}");
        // An expanded parent's link hides its children; a collapsed one's adds it to the view,
        // keeping the order, the page and the other expanded parents.
        assert!(
            html.contains(r#"<a class="expander" href="/experiments/3?order=metrics.%60loss%60.min%20ASC&amp;offset=100" data-expand="p1" aria-expanded="true" hx-boost="false" title="Hide 2 child runs"><span class="caret" aria-hidden="true">▾</span><span class="children">2</span></a>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/experiments/3?order=metrics.%60loss%60.min%20ASC&amp;offset=100&amp;expand=p1&amp;expand=q1" data-expand="q1" aria-expanded="false""#),
            "{html}"
        );
        assert!(html.contains(r#"title="Show 3 child runs""#), "{html}");
        // A run without children in the view has no expander; hostile names stay text.
        assert_eq!(html.matches("class=\"expander\"").count(), 2, "{html}");
        assert!(html.contains("&lt;b&gt;lone&lt;/b&gt;"), "{html}");
        // The page: rows (not runs) size the table, and the snapshot is handed to the script.
        let summaries = [];
        let page = runs_page(&RunsView {
            experiment: &experiment(),
            query: &query,
            rows: RowsView {
                experiment_id: "3",
                query: &query,
                runs: &runs,
                summaries: &summaries,
                columns: Columns {
                    metrics: &metrics,
                    params: &metrics,
                    tags: &metrics,
                    stats: query.stats(),
                },
                sorted: true,
                tree: Some(&tree),
            },
            total: 900,
            rows_total: 420,
            snapshot: Some(7),
            groups: None,
            group_metric: None,
            error: None,
        })
        .into_string();
        assert!(page.contains(r#"data-total="420""#), "{page}");
        assert!(page.contains(r#"data-snapshot="7""#), "{page}");
        assert!(
            page.contains(r#"<input type="hidden" name="expand" value="p1">"#),
            "{page}"
        );
        assert!(
            page.contains(r#"900 runs; <span id="row-total">420</span> rows"#),
            "{page}"
        );
        assert!(page.contains("Rows 101–105 of 420"), "{page}");
        assert!(
            page.contains(r#"data-rows-url="/experiments/3/rows?order=metrics.%60loss%60.min%20ASC&amp;expand=p1""#),
            "{page}"
        );
    }

    #[test]
    fn the_url_keeps_columns_filter_order_and_position() {
        let query = RunsQuery::from_pairs(&pairs(&[
            ("filter", " metrics.acc > 0.9 "),
            ("order", "metrics.`loss`.min asc"),
            ("metric", "loss"),
            ("metric", "loss"),
            ("metric", "acc"),
            ("param", ""),
            ("tag", "team"),
            ("view", "all"),
            ("offset", "250"),
            ("stat", "max"),
            ("stat", "nonsense"),
            ("group", "opt"),
        ]));
        assert_eq!(query.filter().unwrap(), "metrics.acc > 0.9");
        assert_eq!(query.order_by(), ["metrics.`loss`.min asc"]);
        assert_eq!(query.metrics.as_deref().unwrap(), ["loss", "acc"]);
        assert_eq!(query.params.as_deref().unwrap(), [] as [String; 0]);
        assert_eq!(query.offset, 200, "rounded down to a page");
        assert_eq!(query.stats(), [Stat::Max]);
        assert_eq!(split_order(&query.order), ("metrics.`loss`.min", true));
        assert_eq!(
            query.href("3", &query.order, query.offset),
            "/experiments/3?filter=metrics.acc%20%3E%200.9&order=metrics.%60loss%60.min%20asc&view=all&offset=200&metric=loss&metric=acc&param=&tag=team&stat=max&group=opt"
        );
        assert_eq!(quoted("a`b"), "`a``b`");
        let none = RunsQuery::from_pairs(&[("offset".into(), "-5".into())]);
        assert_eq!(none.stats(), Stat::DEFAULT);
        assert_eq!(
            (
                none.filter(),
                none.order_by().len(),
                none.metrics,
                none.offset
            ),
            (None, 0, None, 0)
        );
    }
}
