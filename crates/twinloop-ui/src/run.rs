//! A run's page (`/experiments/{e}/runs/{r}`): overview, params, metrics with last, min, max and
//! count, tags, dataset inputs, logged models, and its parent and children.

use maud::{Markup, html};
use twinloop_core::run_columns::MetricSummary;
use twinloop_core::tracking::{Experiment, Run, Tag};

use crate::artifacts::{self, ArtifactNode};
use crate::charts::{self, ChartConfig, Line};
use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::runs::{parent_id, run_label, status};

pub struct RunView<'a> {
    pub experiment: &'a Experiment,
    pub run: &'a Run,
    /// The run's metric summaries, by key.
    pub metrics: &'a [MetricSummary],
    /// The run its parent tag names, when that run exists.
    pub parent: Option<&'a Run>,
    /// Runs whose parent tag names this one (the first page of them).
    pub children: &'a [Run],
    pub chart: &'a ChartConfig,
    /// The run's artifact tree, and whether the listing stopped at its cap.
    pub artifacts: &'a [ArtifactNode],
    pub artifacts_more: bool,
}

/// Chart cards on a run's page; the metrics table links every key to its own page.
const CHARTS_SHOWN: usize = 60;

fn tag<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

fn kv_table(id: &str, rows: &[&Tag]) -> Markup {
    html! {
        table.kv id=(id) {
            tbody {
                @for t in rows {
                    tr { td.mono { (t.key) } td { (t.value) } }
                }
            }
        }
    }
}

pub fn run_page(v: &RunView) -> Markup {
    let e = v.experiment;
    let run = v.run;
    let info = &run.info;
    let mut params: Vec<&Tag> = run.data.params.iter().collect();
    params.sort_by(|a, b| a.key.cmp(&b.key));
    let (system, user): (Vec<&Tag>, Vec<&Tag>) = run
        .data
        .tags
        .iter()
        .partition(|t| t.key.starts_with("mlflow."));
    let run_href = href::run(&e.experiment_id, &info.run_id);
    let keys: Vec<&str> = v
        .metrics
        .iter()
        .take(CHARTS_SHOWN)
        .map(|m| m.key.as_str())
        .collect();
    let lines = [Line {
        run_id: &info.run_id,
        label: run_label(run),
    }];
    let metric_href = |key: &str| {
        Some(
            v.chart
                .add_to(Href::new(charts::metric_href(
                    &e.experiment_id,
                    &info.run_id,
                    key,
                )))
                .build(),
        )
    };
    page(
        run_label(run),
        &[
            Crumb::link("Experiments", "/experiments".into()),
            Crumb::link(e.name.clone(), href::experiment(&e.experiment_id)),
            Crumb::here(run_label(run)),
        ],
        html! {
            h1 { (run_label(run)) " " (status(run)) }
            table.kv #overview {
                tbody {
                    tr { td { "Run ID" } td.mono { (info.run_id) } }
                    tr { td { "Experiment" } td { a href=(href::experiment(&e.experiment_id)) { (e.name) } } }
                    @if let Some(parent) = parent_id(run) {
                        tr {
                            td { "Parent run" }
                            td {
                                @if let Some(p) = v.parent {
                                    a href=(href::run(&p.info.experiment_id, &p.info.run_id)) { (run_label(p)) }
                                } @else {
                                    span.mono { (parent) } " " span.muted { "(not found)" }
                                }
                            }
                        }
                    }
                    tr { td { "Started" } td { (format::opt_time(info.start_time)) } }
                    tr { td { "Ended" } td { (format::opt_time(info.end_time)) } }
                    tr { td { "Duration" } td { (format::duration(info.start_time, info.end_time)) } }
                    tr { td { "User" } td { (info.user_id) } }
                    @if let Some(source) = tag(run, "mlflow.source.name") {
                        tr { td { "Source" } td.mono { (source) } }
                    }
                    @if let Some(repo) = tag(run, "mlflow.source.git.repoURL") {
                        tr { td { "Repository" } td { (href::external(repo)) } }
                    }
                    @if let Some(commit) = tag(run, "mlflow.source.git.commit") {
                        tr { td { "Commit" } td.mono { (commit) } }
                    }
                    tr { td { "Artifacts" } td.mono { (info.artifact_uri) } }
                    tr { td { "Lifecycle" } td { (info.lifecycle_stage.as_str()) } }
                }
            }

            h2 { "Metrics" }
            @if v.metrics.is_empty() {
                p.muted { "No metrics logged." }
            } @else {
                div.scroll {
                    table #metrics {
                        thead { tr { th { "Key" } th { "Last" } th { "Min" } th { "Max" } th { "Count" } th { "Last step" } } }
                        tbody {
                            @for m in v.metrics {
                                tr {
                                    td.mono { a href=(metric_href(&m.key).unwrap_or_default()) { (m.key) } }
                                    td.num title=(m.last) { (format::value(m.last)) }
                                    td.num { @if let Some(x) = m.min { (format::value(x)) } }
                                    td.num { @if let Some(x) = m.max { (format::value(x)) } }
                                    td.num { (m.count) }
                                    td.num { (m.last_step) }
                                }
                            }
                        }
                    }
                }
            }

            @if !keys.is_empty() {
                h2 #charts-title { "Charts" }
                (v.chart.controls(&run_href, &[]))
                @if v.metrics.len() > keys.len() {
                    p.muted { "The first " (keys.len()) " of " (v.metrics.len()) " metrics; the table above links every one to its chart." }
                }
                (charts::grid(&keys, &lines, v.chart, &metric_href))
            }

            h2 { "Artifacts" }
            (artifacts::tree(&e.experiment_id, &info.run_id, v.artifacts, None, v.artifacts_more))

            h2 { "Parameters" }
            @if params.is_empty() { p.muted { "No parameters logged." } } @else { (kv_table("params", &params)) }

            h2 { "Tags" }
            @if user.is_empty() { p.muted { "No tags." } } @else { (kv_table("tags", &user)) }
            @if !system.is_empty() {
                details {
                    summary { "MLflow system tags (" (system.len()) ")" }
                    (kv_table("system-tags", &system))
                }
            }

            @if !run.inputs.is_empty() {
                h2 { "Datasets" }
                table #datasets {
                    thead { tr { th { "Name" } th { "Digest" } th { "Source" } th { "Context" } } }
                    tbody {
                        @for d in &run.inputs {
                            tr {
                                td { (d.dataset.name) }
                                td.mono { (d.dataset.digest) }
                                td.v { span.muted { (d.dataset.source_type) } " " (href::external(&d.dataset.source)) }
                                td { @for t in &d.tags { span.chip { (t.key) "=" (t.value) } } }
                            }
                        }
                    }
                }
            }

            @if !run.outputs.is_empty() {
                h2 { "Logged models" }
                ul #models {
                    @for m in &run.outputs {
                        li { span.mono { (m.model_id) } " " span.muted { "step " (m.step) } }
                    }
                }
            }

            @if !v.children.is_empty() {
                h2 { "Child runs" }
                table #children {
                    thead { tr { th { "Run" } th { "Status" } th { "Started" } } }
                    tbody {
                        @for c in v.children {
                            tr {
                                td { a href=(href::run(&c.info.experiment_id, &c.info.run_id)) { (run_label(c)) } }
                                td { (status(c)) }
                                td { (format::opt_time(c.info.start_time)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use twinloop_core::tracking::{Dataset, DatasetInput, ModelOutput};

    use super::*;
    use crate::runs::tests::{experiment, loss, run};

    #[test]
    fn shows_overview_metrics_params_tags_and_family() {
        let parent = run("p1", "sweep", None);
        let mut child = run("c1", "trial-1", Some("p1"));
        child.data.tags.push(Tag::new("team", "ml"));
        child.outputs.push(ModelOutput {
            model_id: "m-1".into(),
            step: 3,
        });
        let kids = [run("g1", "inner", Some("c1"))];
        let metrics = [loss(0.25, 0.125, 2.5)];
        let html = run_page(&RunView {
            experiment: &experiment(),
            run: &child,
            metrics: &metrics,
            parent: Some(&parent),
            children: &kids,
            chart: &ChartConfig::default(),
            artifacts: &[],
            artifacts_more: false,
        })
        .into_string();
        assert!(
            html.contains(r#"<a href="/experiments/3/runs/p1">sweep</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<a href="/experiments/3/runs/g1">inner</a>"#));
        assert!(html.contains(r#"<a href="/experiments/3">churn</a>"#));
        for cell in ["0.25", "0.125", "2.5", ">10<", ">9<", "0.01", "team", "m-1"] {
            assert!(html.contains(cell), "{cell} missing: {html}");
        }
        assert!(html.contains("MLflow system tags (2)"));
        assert!(
            html.contains(
                r#"<div class="charts" data-runs="c1"><figure class="chart" data-key="loss""#
            ),
            "{html}"
        );
        assert!(html.contains(r#"<a href="/experiments/3/runs/c1/metrics/loss">loss</a>"#));
        assert!(html.contains("chart.") && html.contains("uPlot.iife.min."));
    }

    #[test]
    fn hostile_values_render_inert() {
        let mut r = run(
            "a1",
            "<script>alert(1)</script>",
            Some("<script>p</script>"),
        );
        r.data
            .tags
            .push(Tag::new("mlflow.source.git.repoURL", "javascript:alert(1)"));
        r.data
            .tags
            .push(Tag::new("<script>t</script>", "<script>v</script>"));
        r.inputs.push(DatasetInput {
            tags: vec![Tag::new("mlflow.data.context", "<script>c</script>")],
            dataset: Dataset {
                name: "<script>d</script>".into(),
                digest: "1".into(),
                source_type: "http".into(),
                source: "javascript:alert(2)".into(),
                schema: None,
                profile: None,
            },
        });
        let html = run_page(&RunView {
            experiment: &experiment(),
            run: &r,
            metrics: &[],
            parent: None,
            children: &[],
            chart: &ChartConfig::default(),
            artifacts: &[],
            artifacts_more: false,
        })
        .into_string();
        assert!(
            !html.contains("<script>alert") && !html.contains("<script>p"),
            "{html}"
        );
        for inner in ["t", "v", "c", "d"] {
            assert!(!html.contains(&format!("<script>{inner}")), "{html}");
        }
        assert!(!html.contains("href=\"javascript:"), "{html}");
        assert!(html.contains("javascript:alert(1)"), "shown as text");
        assert!(html.contains("(not found)"));
    }
}
