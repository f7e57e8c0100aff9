//! `/api/twinloop/v1/lineage/…`: nodes, events and memberships in, graph walks out, encoded as
//! `twinloop_api::lineage`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;
use twinloop_api::Empty;
use twinloop_api::lineage as api;
use twinloop_core::lineage::{
    Direction, EventKind, LineageEdge, LineageGraph, LineageNode, NewNode, NodeKind,
};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::wire::required_str;

type S = State<Arc<AppState>>;

const DEFAULT_DEPTH: u32 = 10;

fn node(n: &LineageNode) -> api::Node {
    // Stored properties are a JSON object written by `put`; anything unreadable shows as `{}`.
    let properties = serde_json::from_str(&n.properties)
        .unwrap_or_else(|_| Value::Object(serde_json::Map::new()));
    api::Node {
        create_time: n.create_time,
        external_id: n.external_id.clone(),
        id: n.node.to_string(),
        kind: n.node.kind.as_str().to_string(),
        name: n.name.clone(),
        properties,
        node_type: n.node_type.clone(),
        uri: n.uri.clone(),
    }
}

fn edge(e: &LineageEdge) -> api::Edge {
    api::Edge {
        source: e.source.to_string(),
        target: e.target.to_string(),
        kind: e.kind.as_str().to_string(),
    }
}

fn graph_reply(g: &LineageGraph) -> api::Graph {
    api::Graph {
        edges: g.edges.iter().map(edge).collect(),
        nodes: g.nodes.iter().map(node).collect(),
        truncated: g.truncated,
    }
}

async fn put(s: &AppState, kind: NodeKind, req: api::NewNode) -> ApiResult<Json<api::NodeReply>> {
    let properties = match req.properties {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(_) => return Err(ApiError::invalid("'properties' must be a JSON object")),
    };
    let new = NewNode {
        node_type: required_str(req.node_type, "type")?,
        name: req.name.unwrap_or_default(),
        uri: req.uri,
        external_id: req.external_id.filter(|e| !e.is_empty()),
        properties,
    };
    let created = s.store.put_node(kind, new).await?;
    Ok(Json(api::NodeReply {
        node: node(&created),
    }))
}

pub async fn put_artifact(
    State(s): S,
    JsonBody(req): JsonBody<api::NewNode>,
) -> ApiResult<Json<api::NodeReply>> {
    put(&s, NodeKind::Artifact, req).await
}

pub async fn put_execution(
    State(s): S,
    JsonBody(req): JsonBody<api::NewNode>,
) -> ApiResult<Json<api::NodeReply>> {
    put(&s, NodeKind::Execution, req).await
}

pub async fn put_context(
    State(s): S,
    JsonBody(req): JsonBody<api::NewNode>,
) -> ApiResult<Json<api::NodeReply>> {
    put(&s, NodeKind::Context, req).await
}

pub async fn put_event(
    State(s): S,
    JsonBody(req): JsonBody<api::NewEvent>,
) -> ApiResult<Json<Empty>> {
    let artifact = s
        .store
        .resolve_node(&required_str(req.artifact, "artifact")?)
        .await?;
    let execution = s
        .store
        .resolve_node(&required_str(req.execution, "execution")?)
        .await?;
    let kind = EventKind::parse(&required_str(req.kind, "type")?)?;
    s.store
        .put_event(artifact.node, execution.node, kind)
        .await?;
    Ok(Json(Empty {}))
}

pub async fn put_membership(
    State(s): S,
    JsonBody(req): JsonBody<api::NewMembership>,
) -> ApiResult<Json<Empty>> {
    let context = s
        .store
        .resolve_node(&required_str(req.context, "context")?)
        .await?;
    let member = s
        .store
        .resolve_node(&required_str(req.member, "member")?)
        .await?;
    s.store.put_membership(context.node, member.node).await?;
    Ok(Json(Empty {}))
}

pub async fn get_node(State(s): S, Path(key): Path<String>) -> ApiResult<Json<api::NodeReply>> {
    let found = s.store.resolve_node(&key).await?;
    Ok(Json(api::NodeReply { node: node(&found) }))
}

pub async fn graph(State(s): S, q: QueryParams) -> ApiResult<Json<api::Graph>> {
    let start = s.store.resolve_node(q.required("node")?).await?;
    let direction = Direction::parse(q.get("direction").unwrap_or("both"))?;
    let depth = match q.opt_i64("depth")? {
        None => DEFAULT_DEPTH,
        Some(d) if d >= 0 => u32::try_from(d).unwrap_or(u32::MAX),
        Some(d) => {
            return Err(ApiError::invalid(format!(
                "Invalid depth {d}: must be 0 or more"
            )));
        }
    };
    let graph = s.store.lineage_graph(start.node, direction, depth).await?;
    Ok(Json(graph_reply(&graph)))
}
