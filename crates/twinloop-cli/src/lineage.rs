//! `twinloop lineage NODE`: what a node came from, or what came of it.

use anyhow::Result;
use clap::Args;
use twinloop_api::lineage::Graph;

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
        let graph: Graph = api
            .get_as(
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
        for n in &graph.nodes {
            rows.push([
                n.id.clone(),
                n.node_type.clone(),
                n.name.clone(),
                n.external_id.clone().unwrap_or_default(),
            ]);
        }
        print_table(&rows);
        outln!();
        for e in &graph.edges {
            outln!("{} -[{}]-> {}", e.source, e.kind, e.target);
        }
        if graph.truncated {
            outln!("(truncated: the graph has more nodes than one answer returns)");
        }
        Ok(())
    })
}
