//! Lineage in the ML Metadata (MLMD) model: typed artifacts (datasets, models, model versions…)
//! and executions (training runs, registrations…) joined by INPUT/OUTPUT events, grouped by
//! contexts (experiments, pipeline runs). Edges always join an artifact and an execution.

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    Artifact,
    Execution,
    Context,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Artifact => "artifact",
            NodeKind::Execution => "execution",
            NodeKind::Context => "context",
        }
    }
}

/// A node's address: its kind and numeric id, written `artifact:12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeRef {
    pub kind: NodeKind,
    pub id: i64,
}

impl NodeRef {
    /// Parses `artifact:12`, `execution:3` or `context:7`; `None` for anything else (which
    /// callers then try as an external id such as `run:<run_id>`).
    pub fn parse(s: &str) -> Option<NodeRef> {
        let (kind, id) = s.split_once(':')?;
        let kind = match kind {
            "artifact" => NodeKind::Artifact,
            "execution" => NodeKind::Execution,
            "context" => NodeKind::Context,
            _ => return None,
        };
        Some(NodeRef {
            kind,
            id: id.parse().ok()?,
        })
    }
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineageNode {
    pub node: NodeRef,
    /// The MLMD type: `dataset`, `model`, `model_version`, `training_run`, `experiment`, …
    pub node_type: String,
    pub name: String,
    pub uri: Option<String>,
    /// What the node stands for outside lineage: `run:<id>`, `logged_model:<id>`,
    /// `model_version:<name>/<version>`, `dataset:<experiment>/<name>@<digest>`, …
    pub external_id: Option<String>,
    /// A JSON object of free-form properties.
    pub properties: String,
    pub create_time: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewNode {
    pub node_type: String,
    pub name: String,
    pub uri: Option<String>,
    pub external_id: Option<String>,
    pub properties: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// The artifact was read by the execution.
    Input,
    /// The artifact was produced by the execution.
    Output,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Input => "INPUT",
            EventKind::Output => "OUTPUT",
        }
    }

    pub fn parse(s: &str) -> Result<EventKind> {
        match s {
            "INPUT" | "input" => Ok(EventKind::Input),
            "OUTPUT" | "output" => Ok(EventKind::Output),
            other => Err(Error::invalid(format!(
                "Invalid event type {other:?}: expected INPUT or OUTPUT"
            ))),
        }
    }
}

/// A directed edge in the direction data flows: dataset → run (INPUT), run → model (OUTPUT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineageEdge {
    pub source: NodeRef,
    pub target: NodeRef,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
    Both,
}

impl Direction {
    pub fn parse(s: &str) -> Result<Direction> {
        match s {
            "upstream" | "up" => Ok(Direction::Upstream),
            "downstream" | "down" => Ok(Direction::Downstream),
            "both" => Ok(Direction::Both),
            other => Err(Error::invalid(format!(
                "Invalid direction {other:?}: expected upstream, downstream or both"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineageGraph {
    pub nodes: Vec<LineageNode>,
    pub edges: Vec<LineageEdge>,
    /// Set when the walk stopped at the node limit before reaching the requested depth.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_refs_round_trip() {
        let n = NodeRef::parse("artifact:12").unwrap();
        assert_eq!(
            n,
            NodeRef {
                kind: NodeKind::Artifact,
                id: 12
            }
        );
        assert_eq!(n.to_string(), "artifact:12");
        assert!(NodeRef::parse("run:abc").is_none());
        assert!(NodeRef::parse("execution:x").is_none());
    }
}
