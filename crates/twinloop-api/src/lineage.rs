//! Wire types of the native API: the lineage graph (`/lineage/…`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A node of the graph. Fields in alphabetical order of their wire names, as the bytes were
/// when the server built them as a sorted `serde_json::Value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub create_time: i64,
    /// What the node stands for outside lineage: `run:<id>`, `model_version:<name>/<version>`, …
    pub external_id: Option<String>,
    /// `artifact:N`, `execution:N` or `context:N`.
    pub id: String,
    /// `artifact`, `execution` or `context`.
    pub kind: String,
    pub name: String,
    /// Free-form properties: a JSON object.
    pub properties: Value,
    /// The MLMD type: `dataset`, `model`, `model_version`, `training_run`, …
    #[serde(rename = "type")]
    pub node_type: String,
    pub uri: Option<String>,
}

/// An edge: `source` was the INPUT of or is the OUTPUT of `target`, or a membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub source: String,
    pub target: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The answer of `GET /lineage/graph`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub edges: Vec<Edge>,
    pub nodes: Vec<Node>,
    /// Set when the walk stopped at the node limit before reaching the requested depth.
    pub truncated: bool,
}

/// The answer of `GET /lineage/nodes/{key}` and of the `POST`s that create a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReply {
    pub node: Node,
}

/// The body of `POST /lineage/{artifacts,executions,contexts}`. `type` is required; it is
/// optional here so that the server, not the decoder, names it when missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Must be a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The body of `POST /lineage/events`: `artifact` was the INPUT or OUTPUT (`type`) of
/// `execution`. Each is required, and named by the server when missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The body of `POST /lineage/memberships`: `member` belongs to `context`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMembership {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn a_graph_round_trips() {
        round_trips::<Graph>(
            r#"{"edges":[{"source":"artifact:1","target":"execution:2","type":"INPUT"}],"nodes":[{"create_time":1764300000000,"external_id":"run:abc","id":"execution:2","kind":"execution","name":"train","properties":{"a":1,"b":{"c":[true,null]}},"type":"training_run","uri":null},{"create_time":1764300000001,"external_id":null,"id":"artifact:1","kind":"artifact","name":"","properties":{},"type":"dataset","uri":"s3://b/d.parquet"}],"truncated":false}"#,
        );
        round_trips::<NodeReply>(
            r#"{"node":{"create_time":1,"external_id":null,"id":"context:3","kind":"context","name":"exp","properties":{},"type":"experiment","uri":null}}"#,
        );
    }

    #[test]
    fn requests_round_trip() {
        round_trips::<NewNode>(
            r#"{"external_id":"dataset:x","name":"d","properties":{"rows":3},"type":"dataset","uri":"file:///d"}"#,
        );
        round_trips::<NewEvent>(
            r#"{"artifact":"artifact:1","execution":"run:abc","type":"INPUT"}"#,
        );
        round_trips::<NewMembership>(r#"{"context":"context:3","member":"execution:2"}"#);
    }
}
