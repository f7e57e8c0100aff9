//! The quickstart's progress (one spinner per stage, a line when it ends) and its closing
//! summary: the stage table, the lineage chain from the serving version back to the source
//! files, the counts and what to try next.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use twinloop_api::lineage::Graph;
use twinloop_api::pipelines::PipelineRun;

use crate::client::Api;
use crate::output::outln;

/// A stage under way: its name, start and spinner.
pub struct Stage {
    name: &'static str,
    started: Instant,
    spinner: Option<ProgressBar>,
}

impl Stage {
    pub fn begin(name: &'static str) -> Stage {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                bar.set_style(style);
            }
            bar.set_message(name);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Stage {
            name,
            started: Instant::now(),
            spinner,
        }
    }
}

#[derive(Default)]
pub struct Summary {
    stages: Vec<(&'static str, Duration, String)>,
    pub runs: Vec<String>,
    pub retrain: Option<PipelineRun>,
    pub champion: Option<String>,
    pub requests: u64,
    pub sample: Option<String>,
}

impl Summary {
    pub fn done(&mut self, stage: Stage, detail: String) {
        let took = stage.started.elapsed();
        if let Some(spinner) = stage.spinner {
            spinner.finish_and_clear();
        }
        outln!(
            "✓ {} ({:.1}s)\n    {detail}",
            stage.name,
            took.as_secs_f64()
        );
        self.stages.push((stage.name, took, detail));
    }

    pub async fn print(
        &self,
        dir: &Path,
        url: &str,
        api: &Api,
        bad_model: bool,
        total: Duration,
    ) -> Result<()> {
        outln!(
            "\n{}",
            if bad_model {
                "The loop ran and the gate rejected the broken retrain, as intended."
            } else {
                "The loop closed: drift → alert → retrain → gate → canary → promoted → alert resolved."
            }
        );
        outln!("\n  {:<72} {:>7}", "stage", "seconds");
        for (name, took, _) in &self.stages {
            outln!("  {name:<72} {:>7.1}", took.as_secs_f64());
        }
        outln!("  {:<72} {:>7.1}", "total", total.as_secs_f64());
        outln!(
            "\n  pipeline runs: {}; requests sent: {}",
            self.runs.len(),
            self.requests
        );
        if let Some(run) = &self.retrain {
            outln!("  the retrain's cause: {}", run.cause);
        }
        if let Some(version) = &self.champion {
            self.lineage(api, version).await?;
        }
        outln!("\nNext:");
        outln!("  cd {}", dir.display());
        outln!(
            "  twinloop server --backend-store-uri sqlite:///twinloop-data/twinloop.db --artifacts-destination twinloop-data/artifacts"
        );
        outln!("  twinloop pipeline runs fraud-train            # against that server");
        outln!(
            "  twinloop lineage model_version:fraud/{} --direction upstream",
            self.champion.as_deref().unwrap_or("1")
        );
        outln!(
            "  edit pipelines/fraud-train.yaml, then: twinloop pipeline plan pipelines/fraud-train.yaml"
        );
        outln!("  (this run's server was at {url}; rerun with --keep to explore it live)");
        Ok(())
    }

    /// The serving version's upstream lineage, nearest first: registration, training run,
    /// training set, feature view, source files.
    async fn lineage(&self, api: &Api, version: &str) -> Result<()> {
        let start = format!("model_version:fraud/{version}");
        let graph: Graph = api
            .get_as(
                "/api/twinloop/v1/lineage/graph",
                &[
                    ("node", start.as_str()),
                    ("direction", "upstream"),
                    ("depth", "12"),
                ],
                "reading lineage",
            )
            .await?;
        outln!("\n  lineage of fraud v{version}, the serving champion (upstream, nearest first):");
        if let Some(id) = &self.sample {
            outln!("    prediction {id} → deployment fraud → model version fraud/{version}");
        }
        for (depth, line) in nearest_first(&graph, &start) {
            outln!("    {}{line}", "  ".repeat(depth.min(8)));
        }
        Ok(())
    }
}

/// Every node of the graph as `type name (uri)`, by its distance from `start`.
fn nearest_first(graph: &Graph, start: &str) -> Vec<(usize, String)> {
    let mut neighbours: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in &graph.edges {
        neighbours
            .entry(&edge.source)
            .or_default()
            .push(&edge.target);
        neighbours
            .entry(&edge.target)
            .or_default()
            .push(&edge.source);
    }
    let origin = graph
        .nodes
        .iter()
        .find(|n| n.external_id.as_deref() == Some(start))
        .map(|n| n.id.as_str());
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut queue: VecDeque<&str> = origin.into_iter().collect();
    if let Some(o) = origin {
        depth.insert(o, 0);
    }
    while let Some(id) = queue.pop_front() {
        let d = depth[id];
        for next in neighbours.get(id).into_iter().flatten() {
            if !depth.contains_key(next) {
                depth.insert(next, d + 1);
                queue.push_back(next);
            }
        }
    }
    let mut lines: Vec<(usize, String)> = graph
        .nodes
        .iter()
        .filter_map(|n| {
            let d = *depth.get(n.id.as_str())?;
            let uri = n
                .uri
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default();
            Some((d, format!("{} {}{uri}", n.node_type, n.name)))
        })
        .collect();
    lines.sort();
    lines
}
