//! Comparing runs (`/experiments/{e}/compare?runs=a,b,c`): the params that differ (equal ones
//! can be hidden), each metric's last, min and max side by side, overlaid charts, a scatter of
//! two chosen columns and parallel coordinates over the differing columns. The scatter and the
//! parallel coordinates are SVG drawn here, so they need no script; categorical values get one
//! position each on their axis, labelled in full.

use std::collections::{BTreeMap, BTreeSet};

use maud::{Markup, html};
use twinloop_core::run_columns::{MetricSummary, RunSummaries};
use twinloop_core::tracking::{Experiment, Run};

use crate::charts::{self, ChartConfig, Line};
use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::runs::{run_label, status};

/// Runs one comparison may hold; more are dropped.
pub const MAX_RUNS: usize = 100;
/// Overlaid chart cards shown.
const CHARTS_SHOWN: usize = 30;
/// Axes of the parallel coordinates.
const MAX_AXES: usize = 12;

/// What the compare page shows, from its URL:
/// `?runs=a,b,c&equal=hide&sx=params.lr&sy=metrics.loss` plus the chart settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompareQuery {
    /// `runs=a,b` or repeated `run=a&run=b` (what the runs table's checkboxes submit).
    pub run_ids: Vec<String>,
    pub hide_equal: bool,
    pub scatter_x: Option<String>,
    pub scatter_y: Option<String>,
    pub chart: ChartConfig,
}

impl CompareQuery {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let mut run_ids: Vec<String> = Vec::new();
        for (name, value) in pairs {
            if name == "runs" || name == "run" {
                for id in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                    if !run_ids.iter().any(|r| r == id) && run_ids.len() < MAX_RUNS {
                        run_ids.push(id.to_string());
                    }
                }
            }
        }
        CompareQuery {
            run_ids,
            hide_equal: get("equal") == Some("hide"),
            scatter_x: get("sx").map(String::from),
            scatter_y: get("sy").map(String::from),
            chart: ChartConfig::from_pairs(pairs),
        }
    }

    fn href(&self, experiment_id: &str, hide_equal: bool) -> String {
        let h = Href::new(compare_href(experiment_id))
            .q("runs", &self.run_ids.join(","))
            .q("equal", if hide_equal { "hide" } else { "" })
            .q("sx", self.scatter_x.as_deref().unwrap_or(""))
            .q("sy", self.scatter_y.as_deref().unwrap_or(""));
        self.chart.add_to(h).build()
    }
}

pub(crate) fn compare_href(experiment_id: &str) -> String {
    format!("{}/compare", href::experiment(experiment_id))
}

pub struct CompareView<'a> {
    pub experiment: &'a Experiment,
    pub query: &'a CompareQuery,
    /// The runs, in the order the URL names them.
    pub runs: &'a [Run],
    pub summaries: &'a [RunSummaries],
}

/// A cell of a column: a number, or text (a param that is not one), or nothing.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Num(f64),
    Text(String),
}

/// `params.KEY` or `metrics.KEY` (the metric's last value).
fn column_value(run: &Run, summaries: Option<&RunSummaries>, column: &str) -> Option<Value> {
    if let Some(key) = column.strip_prefix("params.") {
        let v = &run.data.params.iter().find(|p| p.key == key)?.value;
        Some(match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Num(n),
            _ => Value::Text(v.clone()),
        })
    } else if let Some(key) = column.strip_prefix("metrics.") {
        let m = summaries?.metrics.iter().find(|m| m.key == key)?;
        m.last.is_finite().then_some(Value::Num(m.last))
    } else {
        None
    }
}

/// Maps a column's values onto 0..=1: linearly when all are numbers, else one evenly spaced
/// position per distinct value (sorted), so values sharing a long prefix stay apart.
struct Axis {
    numeric: Option<(f64, f64)>,
    categories: Vec<String>,
}

impl Axis {
    fn of<'v>(values: impl Iterator<Item = &'v Value> + Clone) -> Self {
        let all_numeric = values.clone().all(|v| matches!(v, Value::Num(_)));
        if all_numeric {
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                let Value::Num(n) = v else { return (lo, hi) };
                (lo.min(*n), hi.max(*n))
            });
            Axis {
                numeric: Some((lo, hi)),
                categories: Vec::new(),
            }
        } else {
            let set: BTreeSet<String> = values.map(label).collect();
            Axis {
                numeric: None,
                categories: set.into_iter().collect(),
            }
        }
    }

    fn pos(&self, v: &Value) -> f64 {
        match (self.numeric, v) {
            (Some((lo, hi)), Value::Num(n)) if hi > lo => (n - lo) / (hi - lo),
            (Some(_), _) => 0.5,
            (None, v) => {
                let l = label(v);
                let i = self.categories.iter().position(|c| *c == l).unwrap_or(0);
                if self.categories.len() < 2 {
                    0.5
                } else {
                    i as f64 / (self.categories.len() - 1) as f64
                }
            }
        }
    }

    /// Tick labels with their positions.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self.numeric {
            Some((lo, hi)) if hi > lo => (0..=4)
                .map(|i| {
                    let f = f64::from(i) / 4.0;
                    (f, format::value(lo + f * (hi - lo)))
                })
                .collect(),
            Some((lo, _)) if lo.is_finite() => vec![(0.5, format::value(lo))],
            Some(_) => Vec::new(),
            None => self
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let f = if self.categories.len() < 2 {
                        0.5
                    } else {
                        i as f64 / (self.categories.len() - 1) as f64
                    };
                    (f, c.clone())
                })
                .collect(),
        }
    }
}

fn label(v: &Value) -> String {
    match v {
        Value::Num(n) => format::value(*n),
        Value::Text(t) => t.clone(),
    }
}

/// SVG numbers with two decimals: enough for a pixel, short in the page.
fn px(v: f64) -> String {
    format!("{v:.2}")
}

const SCATTER_W: f64 = 560.0;
const SCATTER_H: f64 = 380.0;
const MARGIN: f64 = 56.0;

/// Summaries by run id.
type ByRun<'a> = BTreeMap<&'a str, &'a RunSummaries>;

fn summary_of<'a>(by_run: &ByRun<'a>, run: &Run) -> Option<&'a RunSummaries> {
    by_run.get(run.info.run_id.as_str()).copied()
}

fn scatter(runs: &[Run], by_run: &ByRun, x: &str, y: &str) -> Markup {
    let points: Vec<(usize, &Run, Value, Value)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Some((
                i,
                r,
                column_value(r, summary_of(by_run, r), x)?,
                column_value(r, summary_of(by_run, r), y)?,
            ))
        })
        .collect();
    if points.is_empty() {
        return html! { p.muted #scatter { "No run has both " span.mono { (x) } " and " span.mono { (y) } "." } };
    }
    let ax = Axis::of(points.iter().map(|p| &p.2));
    let ay = Axis::of(points.iter().map(|p| &p.3));
    let (w, h) = (SCATTER_W - 2.0 * MARGIN, SCATTER_H - 2.0 * MARGIN);
    let sx = |f: f64| MARGIN + f * w;
    let sy = |f: f64| SCATTER_H - MARGIN - f * h;
    html! {
        svg #scatter.plot-svg role="img" aria-label={ (y) " against " (x) }
            viewBox={ "0 0 " (SCATTER_W) " " (SCATTER_H) } width=(SCATTER_W) height=(SCATTER_H) {
            rect.frame x=(MARGIN) y=(MARGIN) width=(w) height=(h) {}
            @for (f, t) in ax.ticks() {
                text.tick x=(px(sx(f))) y=(px(SCATTER_H - MARGIN + 16.0)) text-anchor="middle" { (t) }
            }
            @for (f, t) in ay.ticks() {
                text.tick x=(px(MARGIN - 6.0)) y=(px(sy(f) + 4.0)) text-anchor="end" { (t) }
            }
            text.axis-label x=(px(MARGIN + w / 2.0)) y=(px(SCATTER_H - 12.0)) text-anchor="middle" { (x) }
            text.axis-label x="12" y=(px(MARGIN - 14.0)) { (y) }
            @for (i, run, vx, vy) in &points {
                circle class={ "dot c" (i % 10) } cx=(px(sx(ax.pos(vx)))) cy=(px(sy(ay.pos(vy)))) r="5" {
                    title { (run_label(run)) ": " (label(vx)) ", " (label(vy)) }
                }
            }
        }
    }
}

const PAR_W: f64 = 1000.0;
const PAR_H: f64 = 340.0;

fn parallel(runs: &[Run], by_run: &ByRun, columns: &[String]) -> Markup {
    let values: Vec<Vec<Option<Value>>> = runs
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| column_value(r, summary_of(by_run, r), c))
                .collect()
        })
        .collect();
    let axes: Vec<Axis> = (0..columns.len())
        .map(|j| Axis::of(values.iter().filter_map(|row| row[j].as_ref())))
        .collect();
    let (top, bottom) = (40.0, PAR_H - 30.0);
    let step = if columns.len() > 1 {
        (PAR_W - 2.0 * 90.0) / (columns.len() - 1) as f64
    } else {
        0.0
    };
    let ax_x = |j: usize| 90.0 + step * j as f64;
    let y = |f: f64| bottom - f * (bottom - top);
    html! {
        svg #parallel.plot-svg role="img" aria-label="Parallel coordinates"
            viewBox={ "0 0 " (PAR_W) " " (PAR_H) } width=(PAR_W) height=(PAR_H) {
            @for (i, row) in values.iter().enumerate() {
                @let pts: Vec<String> = row.iter().enumerate()
                    .filter_map(|(j, v)| v.as_ref().map(|v| format!("{},{}", px(ax_x(j)), px(y(axes[j].pos(v))))))
                    .collect();
                polyline class={ "line c" (i % 10) } points=(pts.join(" ")) {
                    title { (run_label(&runs[i])) }
                }
            }
            @for (j, (column, axis)) in columns.iter().zip(&axes).enumerate() {
                line.axis x1=(px(ax_x(j))) x2=(px(ax_x(j))) y1=(px(top)) y2=(px(bottom)) {}
                text.axis-label x=(px(ax_x(j))) y="20" text-anchor="middle" { (column) }
                @for (f, t) in axis.ticks() {
                    text.tick x=(px(ax_x(j) + 5.0)) y=(px(y(f) + 4.0)) { (t) }
                }
            }
        }
    }
}

pub fn compare_page(v: &CompareView) -> Markup {
    let e = v.experiment;
    let q = v.query;
    let by_run: ByRun = v.summaries.iter().map(|s| (s.run_id.as_str(), s)).collect();
    let metric = |r: &Run, key: &str| -> Option<&MetricSummary> {
        summary_of(&by_run, r).and_then(|s| s.metrics.iter().find(|m| m.key == key))
    };
    let param_keys: BTreeSet<&str> = v
        .runs
        .iter()
        .flat_map(|r| r.data.params.iter().map(|p| p.key.as_str()))
        .collect();
    let param = |r: &Run, key: &str| -> Option<String> {
        r.data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
    };
    let differs = |key: &str| {
        let first = v.runs.first().map(|r| param(r, key));
        v.runs.iter().any(|r| Some(param(r, key)) != first)
    };
    let metric_keys: BTreeSet<&str> = v
        .summaries
        .iter()
        .flat_map(|s| s.metrics.iter().map(|m| m.key.as_str()))
        .collect();
    let differing_params: Vec<&str> = param_keys.iter().copied().filter(|k| differs(k)).collect();
    let shown_params: Vec<&str> = if q.hide_equal {
        differing_params.clone()
    } else {
        param_keys.iter().copied().collect()
    };
    let mut columns: Vec<String> = differing_params
        .iter()
        .map(|k| format!("params.{k}"))
        .chain(metric_keys.iter().map(|k| format!("metrics.{k}")))
        .collect();
    columns.truncate(MAX_AXES);
    let default_x = columns.first().cloned().unwrap_or_default();
    let default_y = columns
        .iter()
        .find(|c| c.starts_with("metrics."))
        .or(columns.get(1))
        .cloned()
        .unwrap_or_default();
    let sx = q.scatter_x.clone().unwrap_or(default_x);
    let sy = q.scatter_y.clone().unwrap_or(default_y);
    let all_columns: Vec<String> = param_keys
        .iter()
        .map(|k| format!("params.{k}"))
        .chain(metric_keys.iter().map(|k| format!("metrics.{k}")))
        .collect();
    let lines: Vec<Line> = v
        .runs
        .iter()
        .map(|r| Line {
            run_id: &r.info.run_id,
            label: run_label(r),
        })
        .collect();
    let chart_keys: Vec<&str> = metric_keys.iter().copied().take(CHARTS_SHOWN).collect();
    let here = compare_href(&e.experiment_id);
    let runs_csv = q.run_ids.join(",");
    page(
        &format!("Compare {} runs", v.runs.len()),
        &[
            Crumb::link("Experiments", "/experiments".into()),
            Crumb::link(e.name.clone(), href::experiment(&e.experiment_id)),
            Crumb::here("Compare"),
        ],
        html! {
            h1 { "Compare " (v.runs.len()) " runs" }
            @if v.runs.is_empty() {
                p.muted { "No runs selected: tick runs in " a href=(href::experiment(&e.experiment_id)) { "the runs table" } " and press Compare." }
            }
            @if !v.runs.is_empty() {
                table #compare-runs {
                    thead { tr { th { "Run" } th { "Status" } th { "Started" } th { "Duration" } } }
                    tbody {
                        @for (i, r) in v.runs.iter().enumerate() {
                            tr {
                                td.name { span class={ "swatch c" (i % 10) } {} a href=(href::run(&e.experiment_id, &r.info.run_id)) { (run_label(r)) } }
                                td { (status(r)) }
                                td { (format::opt_time(r.info.start_time)) }
                                td.num { (format::duration(r.info.start_time, r.info.end_time)) }
                            }
                        }
                    }
                }

                h2 { "Parameters" }
                p {
                    (differing_params.len()) " of " (param_keys.len()) " differ. "
                    @if q.hide_equal {
                        a #show-equal href=(q.href(&e.experiment_id, false)) { "Show equal parameters" }
                    } @else {
                        a #hide-equal href=(q.href(&e.experiment_id, true)) { "Hide equal parameters" }
                    }
                }
                @if !shown_params.is_empty() {
                    div.scroll {
                        table #params-diff {
                            thead { tr { th { "Param" } @for r in v.runs { th { (run_label(r)) } } } }
                            tbody {
                                @for key in &shown_params {
                                    tr.differs[differs(key)] {
                                        td.mono { (key) }
                                        @for r in v.runs { td.v { @if let Some(p) = param(r, key) { (p) } } }
                                    }
                                }
                            }
                        }
                    }
                }

                h2 { "Metrics" }
                @if metric_keys.is_empty() {
                    p.muted { "No metrics logged." }
                } @else {
                    div.scroll {
                        table #metrics-compare {
                            thead { tr { th { "Metric" } @for r in v.runs { th { (run_label(r)) } } } }
                            tbody {
                                @for key in &metric_keys {
                                    tr {
                                        td.mono { (key) }
                                        @for r in v.runs {
                                            td.num {
                                                @if let Some(s) = metric(r, key) {
                                                    span title=(s.last) { (format::value(s.last)) }
                                                    @if let (Some(min), Some(max)) = (s.min, s.max) {
                                                        span.range { (format::value(min)) " … " (format::value(max)) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }

                    h2 { "Charts" }
                    (q.chart.controls(&here, &[("runs", &runs_csv)]))
                    (charts::grid(&chart_keys, &lines, &q.chart, &|_| None))
                }

                @if !all_columns.is_empty() {
                    h2 { "Scatter" }
                    form.bar method="get" action=(here) {
                        input type="hidden" name="runs" value=(runs_csv);
                        @if q.hide_equal { input type="hidden" name="equal" value="hide"; }
                        @for (name, label, chosen) in [("sx", "X", &sx), ("sy", "Y", &sy)] {
                            label {
                                (label)
                                select name=(name) {
                                    @for c in &all_columns { option value=(c) selected[c == chosen] { (c) } }
                                }
                            }
                        }
                        button type="submit" { "Plot" }
                    }
                    (scatter(v.runs, &by_run, &sx, &sy))
                }

                @if columns.len() > 1 {
                    h2 { "Parallel coordinates" }
                    p.muted { "Differing parameters and metrics (last value); text values get one place each on their axis." }
                    div.scroll { (parallel(v.runs, &by_run, &columns)) }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use twinloop_core::tracking::Param;

    use super::*;
    use crate::runs::tests::{experiment, loss, run};

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn with_params(id: &str, name: &str, params: &[(&str, &str)]) -> Run {
        let mut r = run(id, name, None);
        r.data.params = params
            .iter()
            .map(|(k, v)| Param {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect();
        r
    }

    fn summaries(id: &str, last: f64) -> RunSummaries {
        RunSummaries {
            run_id: id.into(),
            metrics: vec![loss(last, last / 2.0, last * 2.0)],
        }
    }

    #[test]
    fn the_url_takes_a_list_or_checkboxes() {
        let q = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a, b,,a"),
            ("run", "c"),
            ("equal", "hide"),
            ("sx", "params.lr"),
        ]));
        assert_eq!(q.run_ids, ["a", "b", "c"]);
        assert!(q.hide_equal);
        assert_eq!(q.scatter_x.as_deref(), Some("params.lr"));
        assert_eq!(
            q.href("1", false),
            "/experiments/1/compare?runs=a%2Cb%2Cc&sx=params.lr"
        );
    }

    fn render(q: &CompareQuery, runs: &[Run]) -> String {
        let s = [
            summaries("a", 0.5),
            summaries("b", 0.25),
            summaries("c", 1.0),
        ];
        compare_page(&CompareView {
            experiment: &experiment(),
            query: q,
            runs,
            summaries: &s,
        })
        .into_string()
    }

    #[test]
    fn the_diff_marks_and_can_hide_equal_params() {
        let runs = [
            with_params("a", "ra", &[("lr", "0.1"), ("opt", "adam"), ("seed", "1")]),
            with_params("b", "rb", &[("lr", "0.2"), ("opt", "adam"), ("seed", "1")]),
            with_params("c", "rc", &[("lr", "0.3"), ("opt", "sgd")]),
        ];
        let all = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b,c")])),
            &runs,
        );
        assert!(all.contains("3 of 3 differ"), "{all}");
        assert!(
            all.contains(r#"<tr class="differs"><td class="mono">lr</td>"#),
            "{all}"
        );
        // seed is missing in one run: that differs too; nothing is equal in all three.
        assert!(!all.contains("<tr><td class=\"mono\">seed"), "{all}");
        let hidden = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b"), ("equal", "hide")])),
            &runs[..2],
        );
        assert!(
            hidden.contains(">lr</td>") && !hidden.contains(">opt</td>"),
            "{hidden}"
        );
        assert!(hidden.contains(r#"data-runs="a,b""#), "{hidden}");
        assert!(hidden.contains(r#"id="scatter""#) && hidden.contains("<circle"));
    }

    #[test]
    fn categorical_axes_keep_values_sharing_a_prefix_apart() {
        let runs = [
            with_params("a", "ra", &[("model", "resnet-50-variant-a"), ("lr", "1")]),
            with_params("b", "rb", &[("model", "resnet-50-variant-b"), ("lr", "2")]),
        ];
        let html = render(&CompareQuery::from_pairs(&pairs(&[("runs", "a,b")])), &runs);
        assert!(html.contains("resnet-50-variant-a</text>"), "{html}");
        assert!(html.contains("resnet-50-variant-b</text>"), "{html}");
        assert!(html.contains(r#"id="parallel""#));
        assert_eq!(html.matches("<polyline").count(), 2);
    }

    #[test]
    fn hostile_values_render_inert() {
        let runs = [
            with_params(
                "a",
                "<script>a</script>",
                &[("<script>k</script>", "<script>v</script>")],
            ),
            with_params("b", "b", &[("<script>k</script>", "x")]),
        ];
        let q =
            CompareQuery::from_pairs(&pairs(&[("runs", "a,b"), ("sx", "\"><script>x</script>")]));
        let html = render(&q, &runs);
        assert!(
            !html.contains("<script>a") && !html.contains("<script>k"),
            "{html}"
        );
        assert!(
            !html.contains("<script>v") && !html.contains("<script>x"),
            "{html}"
        );
        assert!(!html.contains("style="));
    }
}
