use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_core::lineage::{
    Direction, EventKind, LineageEdge, LineageGraph, LineageNode, NewNode, NodeKind,
};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::wire::required_str;

type S = State<Arc<AppState>>;

const DEFAULT_DEPTH: u32 = 10;

pub fn node_json(n: &LineageNode) -> Value {
    let properties: Value = serde_json::from_str(&n.properties).unwrap_or_else(|_| json!({}));
    json!({
        "id": n.node.to_string(),
        "kind": n.node.kind.as_str(),
        "type": n.node_type,
        "name": n.name,
        "uri": n.uri,
        "external_id": n.external_id,
        "properties": properties,
        "create_time": n.create_time,
    })
}

fn edge_json(e: &LineageEdge) -> Value {
    json!({"source": e.source.to_string(), "target": e.target.to_string(), "type": e.kind.as_str()})
}

pub fn graph_json(g: &LineageGraph) -> Value {
    json!({
        "nodes": g.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "edges": g.edges.iter().map(edge_json).collect::<Vec<_>>(),
        "truncated": g.truncated,
    })
}

#[derive(Deserialize)]
pub struct PutNode {
    #[serde(rename = "type")]
    node_type: Option<String>,
    name: Option<String>,
    uri: Option<String>,
    external_id: Option<String>,
    properties: Option<Value>,
}

async fn put(s: &AppState, kind: NodeKind, req: PutNode) -> ApiResult<Json<Value>> {
    let properties = match req.properties {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(_) => return Err(ApiError::invalid("'properties' must be a JSON object")),
    };
    let node = NewNode {
        node_type: required_str(req.node_type, "type")?,
        name: req.name.unwrap_or_default(),
        uri: req.uri,
        external_id: req.external_id.filter(|e| !e.is_empty()),
        properties,
    };
    let node = s.lineage.put_node(kind, node).await?;
    Ok(Json(json!({"node": node_json(&node)})))
}

pub async fn put_artifact(State(s): S, JsonBody(req): JsonBody<PutNode>) -> ApiResult<Json<Value>> {
    put(&s, NodeKind::Artifact, req).await
}

pub async fn put_execution(
    State(s): S,
    JsonBody(req): JsonBody<PutNode>,
) -> ApiResult<Json<Value>> {
    put(&s, NodeKind::Execution, req).await
}

pub async fn put_context(State(s): S, JsonBody(req): JsonBody<PutNode>) -> ApiResult<Json<Value>> {
    put(&s, NodeKind::Context, req).await
}

#[derive(Deserialize)]
pub struct PutEvent {
    artifact: Option<String>,
    execution: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn put_event(State(s): S, JsonBody(req): JsonBody<PutEvent>) -> ApiResult<Json<Value>> {
    let artifact = s
        .lineage
        .resolve_node(&required_str(req.artifact, "artifact")?)
        .await?;
    let execution = s
        .lineage
        .resolve_node(&required_str(req.execution, "execution")?)
        .await?;
    let kind = EventKind::parse(&required_str(req.kind, "type")?)?;
    s.lineage
        .put_event(artifact.node, execution.node, kind)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct PutMembership {
    context: Option<String>,
    member: Option<String>,
}

pub async fn put_membership(
    State(s): S,
    JsonBody(req): JsonBody<PutMembership>,
) -> ApiResult<Json<Value>> {
    let context = s
        .lineage
        .resolve_node(&required_str(req.context, "context")?)
        .await?;
    let member = s
        .lineage
        .resolve_node(&required_str(req.member, "member")?)
        .await?;
    s.lineage.put_membership(context.node, member.node).await?;
    Ok(Json(json!({})))
}

pub async fn get_node(State(s): S, Path(key): Path<String>) -> ApiResult<Json<Value>> {
    let node = s.lineage.resolve_node(&key).await?;
    Ok(Json(json!({"node": node_json(&node)})))
}

pub async fn graph(State(s): S, q: QueryParams) -> ApiResult<Json<Value>> {
    let start = s.lineage.resolve_node(q.required("node")?).await?;
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
    let graph = s
        .lineage
        .lineage_graph(start.node, direction, depth)
        .await?;
    Ok(Json(graph_json(&graph)))
}
