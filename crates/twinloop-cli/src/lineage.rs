//! `twinloop lineage NODE`: what a node came from, or what came of it.

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::client::{Api, ServerConnection, block_on};
use crate::models::print_table;
use crate::output::outln;

#[derive(Args)]
pub struct LineageArgs {
    /// A node: artifact:N, execution:N, or an external id such as run:<run_id> or
    /// model_version:<name>/<version>.
    node: String,
    /// Only what NODE came from.
    #[arg(long, conflicts_with = "downstream")]
    upstream: bool,
    /// Only what came of NODE.
    #[arg(long)]
    downstream: bool,
    /// How many edges to follow.
    #[arg(long, default_value_t = 10)]
    depth: u32,
    /// Print the graph as JSON (nodes and edges) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(conn: &ServerConnection, args: LineageArgs) -> Result<()> {
    let api = Api::new(conn)?;
    block_on(async move {
        let direction = match (args.upstream, args.downstream) {
            (true, _) => "upstream",
            (_, true) => "downstream",
            _ => "both",
        };
        let depth = args.depth.to_string();
        let graph = api
            .get(
                "/api/twinloop/v1/lineage/graph",
                &[
                    ("node", &args.node),
                    ("direction", direction),
                    ("depth", &depth),
                ],
                "reading lineage",
            )
            .await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&graph)?);
            return Ok(());
        }
        let mut rows = vec![["NODE", "TYPE", "NAME", "EXTERNAL ID"].map(String::from)];
        for n in graph["nodes"].as_array().into_iter().flatten() {
            rows.push([
                text(&n["id"]),
                text(&n["type"]),
                text(&n["name"]),
                text(&n["external_id"]),
            ]);
        }
        print_table(&rows);
        outln!();
        for e in graph["edges"].as_array().into_iter().flatten() {
            outln!(
                "{} -[{}]-> {}",
                text(&e["source"]),
                text(&e["type"]),
                text(&e["target"])
            );
        }
        if graph["truncated"].as_bool() == Some(true) {
            outln!("(truncated: the graph has more nodes than one answer returns)");
        }
        Ok(())
    })
}

fn text(v: &Value) -> String {
    v.as_str().map(String::from).unwrap_or_default()
}
