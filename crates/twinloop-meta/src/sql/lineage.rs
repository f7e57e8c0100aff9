//! The lineage graph on SQL (ML Metadata's model): nodes in three tables, INPUT/OUTPUT events
//! between artifacts and executions, and breadth-first walks that read one level of the graph
//! per query through the event indexes.

use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{Any, Transaction};
use twinloop_core::lineage::*;
use twinloop_core::time::now_ms;
use twinloop_core::{Error, Result};

use super::query::{Arg, RowExt, Sql, backend_of};
use super::{SqlStore, db_err};
use crate::store::LineageStore;

/// Deepest walk a caller may ask for; deeper requests are refused rather than cut short.
pub const MAX_DEPTH: u32 = 100;
/// Most nodes one walk returns; past it the graph comes back marked truncated.
pub const MAX_NODES: usize = 10_000;

fn table(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Artifact => "lineage_artifacts",
        NodeKind::Execution => "lineage_executions",
        NodeKind::Context => "lineage_contexts",
    }
}

const COLUMNS: &str = "id, type, name, uri, external_id, properties, create_time";

fn node_from_row(kind: NodeKind, row: &dyn RowExt) -> Result<LineageNode> {
    Ok(LineageNode {
        node: NodeRef {
            kind,
            id: row.int(0)?,
        },
        node_type: row.text(1)?,
        name: row.text(2)?,
        uri: row.opt_text(3)?,
        external_id: row.opt_text(4)?,
        properties: row.text(5)?,
        create_time: row.int(6)?,
    })
}

/// The execution node standing for a tracking run.
pub(crate) fn run_node(run_id: &str) -> NewNode {
    NewNode {
        node_type: "training_run".into(),
        name: run_id.to_string(),
        uri: None,
        external_id: Some(format!("run:{run_id}")),
        properties: None,
    }
}

/// The artifact node standing for an MLflow 3 logged model.
pub(crate) fn logged_model_node(model_id: &str, uri: Option<&str>) -> NewNode {
    NewNode {
        node_type: "model".into(),
        name: model_id.to_string(),
        uri: uri.map(String::from),
        external_id: Some(format!("logged_model:{model_id}")),
        properties: None,
    }
}

fn validate_node(node: &NewNode) -> Result<()> {
    if node.node_type.trim().is_empty() {
        return Err(Error::invalid("A lineage node needs a non-empty type"));
    }
    if let Some(props) = &node.properties {
        let value: serde_json::Value = serde_json::from_str(props)
            .map_err(|e| Error::invalid("Node properties must be a JSON object").with_source(e))?;
        if !value.is_object() {
            return Err(Error::invalid("Node properties must be a JSON object"));
        }
    }
    if node
        .external_id
        .as_deref()
        .is_some_and(|e| NodeRef::parse(e).is_some())
    {
        return Err(Error::invalid(
            "An external id may not look like a node address (artifact:N, execution:N, context:N)",
        ));
    }
    Ok(())
}

/// Creates a node or finds the one with the same external id; returns its address.
pub(crate) async fn ensure_node(
    tx: &mut Transaction<'_, Any>,
    kind: NodeKind,
    node: &NewNode,
) -> Result<NodeRef> {
    let backend = backend_of(tx);
    let t = table(kind);
    let props = node.properties.clone().unwrap_or_else(|| "{}".into());
    let mut sql = Sql::new(
        backend,
        &format!("INSERT INTO {t} (type, name, uri, external_id, properties, create_time) VALUES "),
    );
    sql.tuple([
        Arg::from(&node.node_type),
        Arg::from(&node.name),
        Arg::from(node.uri.clone()),
        Arg::from(node.external_id.clone()),
        Arg::from(props),
        Arg::from(now_ms()),
    ]);
    match &node.external_id {
        None => {
            sql.push(" RETURNING id");
            let id = sql.fetch_one(&mut **tx).await?.int(0)?;
            Ok(NodeRef { kind, id })
        }
        Some(external) => {
            sql.push(" ON CONFLICT (external_id) DO NOTHING");
            sql.execute(&mut **tx).await?;
            let mut find = Sql::new(backend, &format!("SELECT id FROM {t} WHERE external_id = "));
            find.arg(external);
            let id = find.fetch_one(&mut **tx).await?.int(0)?;
            Ok(NodeRef { kind, id })
        }
    }
}

/// Records that `execution` read (`Input`) or wrote (`Output`) `artifact`; repeating it is a no-op.
pub(crate) async fn link(
    tx: &mut Transaction<'_, Any>,
    artifact: NodeRef,
    execution: NodeRef,
    kind: EventKind,
) -> Result<()> {
    let mut sql = Sql::new(
        backend_of(tx),
        "INSERT INTO lineage_events (artifact_id, execution_id, type, time) VALUES ",
    );
    sql.tuple([
        Arg::from(artifact.id),
        Arg::from(execution.id),
        Arg::from(kind.as_str()),
        Arg::from(now_ms()),
    ])
    .push(" ON CONFLICT DO NOTHING");
    sql.execute(&mut **tx).await?;
    Ok(())
}

pub(crate) async fn associate(
    tx: &mut Transaction<'_, Any>,
    context: NodeRef,
    member: NodeRef,
) -> Result<()> {
    let (t, column) = match member.kind {
        NodeKind::Artifact => ("lineage_attributions", "artifact_id"),
        NodeKind::Execution => ("lineage_associations", "execution_id"),
        NodeKind::Context => {
            return Err(Error::invalid(
                "A context cannot be a member of another context",
            ));
        }
    };
    let mut sql = Sql::new(
        backend_of(tx),
        &format!("INSERT INTO {t} (context_id, {column}) VALUES "),
    );
    sql.tuple([Arg::from(context.id), Arg::from(member.id)])
        .push(" ON CONFLICT DO NOTHING");
    sql.execute(&mut **tx).await?;
    Ok(())
}

/// The events of one kind whose `column` (artifact_id or execution_id) is one of `ids`: a
/// lookup on the primary key (artifact_id first) or on the index by execution, never a scan.
fn events_touching(backend: super::Backend, column: &str, ids: &[i64], kind: &str) -> Sql {
    let mut sql = Sql::new(
        backend,
        &format!("SELECT artifact_id, execution_id, type FROM lineage_events WHERE {column} IN "),
    );
    sql.arg_list(ids).push(" AND type = ").arg(kind);
    sql
}

/// One step of a walk: the edges that touch `frontier` in `direction`.
async fn expand(
    backend: super::Backend,
    conn: &mut sqlx::AnyConnection,
    frontier: &[NodeRef],
    direction: Direction,
) -> Result<Vec<LineageEdge>> {
    let mut edges = Vec::new();
    let artifacts: Vec<i64> = frontier
        .iter()
        .filter(|n| n.kind == NodeKind::Artifact)
        .map(|n| n.id)
        .collect();
    let executions: Vec<i64> = frontier
        .iter()
        .filter(|n| n.kind == NodeKind::Execution)
        .map(|n| n.id)
        .collect();
    // Upstream of an artifact is the execution that wrote it; downstream, those that read it.
    // Upstream of an execution is what it read; downstream, what it wrote.
    let mut queries: Vec<(&str, &[i64], &str)> = Vec::new();
    if matches!(direction, Direction::Upstream | Direction::Both) {
        queries.push(("artifact_id", &artifacts, "OUTPUT"));
        queries.push(("execution_id", &executions, "INPUT"));
    }
    if matches!(direction, Direction::Downstream | Direction::Both) {
        queries.push(("artifact_id", &artifacts, "INPUT"));
        queries.push(("execution_id", &executions, "OUTPUT"));
    }
    for (column, ids, kind) in queries {
        for chunk in ids.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let sql = events_touching(backend, column, chunk, kind);
            for row in sql.fetch_all(&mut *conn).await? {
                let artifact = NodeRef {
                    kind: NodeKind::Artifact,
                    id: row.int(0)?,
                };
                let execution = NodeRef {
                    kind: NodeKind::Execution,
                    id: row.int(1)?,
                };
                edges.push(match EventKind::parse(&row.text(2)?)? {
                    EventKind::Input => LineageEdge {
                        source: artifact,
                        target: execution,
                        kind: EventKind::Input,
                    },
                    EventKind::Output => LineageEdge {
                        source: execution,
                        target: artifact,
                        kind: EventKind::Output,
                    },
                });
            }
        }
    }
    Ok(edges)
}

/// Whether `to` can be reached from `from` following edges downstream.
async fn reaches(
    backend: super::Backend,
    conn: &mut sqlx::AnyConnection,
    from: NodeRef,
    to: NodeRef,
) -> Result<bool> {
    let mut seen = HashSet::from([from]);
    let mut frontier = vec![from];
    while !frontier.is_empty() {
        if frontier.contains(&to) {
            return Ok(true);
        }
        let edges = expand(backend, conn, &frontier, Direction::Downstream).await?;
        frontier = edges
            .into_iter()
            .map(|e| e.target)
            .filter(|n| seen.insert(*n))
            .collect();
    }
    Ok(false)
}

impl SqlStore {
    async fn require_node(&self, tx: &mut Transaction<'_, Any>, node: NodeRef) -> Result<()> {
        let mut sql = self.sql(&format!("SELECT 1 FROM {} WHERE id = ", table(node.kind)));
        sql.arg(node.id);
        match sql.fetch_optional(&mut **tx).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("Lineage node {node} not found"))),
        }
    }

    async fn node(&self, node: NodeRef) -> Result<LineageNode> {
        let mut sql = self.sql(&format!(
            "SELECT {} FROM {} WHERE id = ",
            COLUMNS,
            table(node.kind)
        ));
        sql.arg(node.id);
        let row = sql
            .fetch_optional(&self.reader)
            .await?
            .ok_or_else(|| Error::not_found(format!("Lineage node {node} not found")))?;
        node_from_row(node.kind, &row)
    }
}

#[async_trait]
impl LineageStore for SqlStore {
    async fn put_node(&self, kind: NodeKind, node: NewNode) -> Result<LineageNode> {
        validate_node(&node)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let node_ref = ensure_node(&mut tx, kind, &node).await?;
        tx.commit().await.map_err(db_err)?;
        self.node(node_ref).await
    }

    async fn put_event(
        &self,
        artifact: NodeRef,
        execution: NodeRef,
        kind: EventKind,
    ) -> Result<()> {
        if artifact.kind != NodeKind::Artifact || execution.kind != NodeKind::Execution {
            return Err(Error::invalid(
                "An event joins an artifact and an execution",
            ));
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        for n in [artifact, execution] {
            self.require_node(&mut tx, n).await?;
        }
        let (from, to) = match kind {
            EventKind::Input => (artifact, execution),
            EventKind::Output => (execution, artifact),
        };
        if reaches(self.backend, &mut tx, to, from).await? {
            return Err(Error::invalid(format!(
                "The edge {from} -> {to} would close a cycle: {from} is already downstream of {to}"
            )));
        }
        link(&mut tx, artifact, execution, kind).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn put_membership(&self, context: NodeRef, member: NodeRef) -> Result<()> {
        if context.kind != NodeKind::Context {
            return Err(Error::invalid(format!("{context} is not a context")));
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        for n in [context, member] {
            self.require_node(&mut tx, n).await?;
        }
        associate(&mut tx, context, member).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn is_downstream(&self, of: NodeRef, node: NodeRef) -> Result<bool> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        reaches(self.backend, &mut conn, of, node).await
    }

    async fn resolve_node(&self, key: &str) -> Result<LineageNode> {
        if let Some(node) = NodeRef::parse(key) {
            return self.node(node).await;
        }
        for kind in [NodeKind::Artifact, NodeKind::Execution, NodeKind::Context] {
            let mut sql = self.sql(&format!(
                "SELECT {} FROM {} WHERE external_id = ",
                COLUMNS,
                table(kind)
            ));
            sql.arg(key);
            if let Some(row) = sql.fetch_optional(&self.reader).await? {
                return node_from_row(kind, &row);
            }
        }
        Err(Error::not_found(format!(
            "No lineage node {key:?}: use artifact:N, execution:N, context:N or an external id such as run:<run_id> or model_version:<name>/<version>"
        )))
    }

    async fn lineage_graph(
        &self,
        start: NodeRef,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageGraph> {
        if depth > MAX_DEPTH {
            return Err(Error::invalid(format!(
                "Invalid depth {depth}: at most {MAX_DEPTH}"
            )));
        }
        if start.kind == NodeKind::Context {
            return Err(Error::invalid(
                "Lineage walks start at an artifact or an execution, not a context",
            ));
        }
        let mut visited: BTreeSet<NodeRef> = BTreeSet::from([self.node(start).await?.node]);
        let mut edges: BTreeSet<LineageEdge> = BTreeSet::new();
        let mut frontier = vec![start];
        let mut truncated = false;
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        for _ in 0..depth {
            if frontier.is_empty() {
                break;
            }
            let step = expand(self.backend, &mut conn, &frontier, direction).await?;
            let mut next = Vec::new();
            for edge in step {
                for n in [edge.source, edge.target] {
                    if !visited.contains(&n) {
                        if visited.len() >= MAX_NODES {
                            truncated = true;
                            continue;
                        }
                        visited.insert(n);
                        next.push(n);
                    }
                }
                if visited.contains(&edge.source) && visited.contains(&edge.target) {
                    edges.insert(edge);
                }
            }
            frontier = next;
        }
        drop(conn);
        let mut nodes = Vec::with_capacity(visited.len());
        let mut by_kind: HashMap<NodeKind, Vec<i64>> = HashMap::new();
        for n in &visited {
            by_kind.entry(n.kind).or_default().push(n.id);
        }
        for (kind, ids) in by_kind {
            for chunk in ids.chunks(500) {
                let mut sql = self.sql(&format!(
                    "SELECT {} FROM {} WHERE id IN ",
                    COLUMNS,
                    table(kind)
                ));
                sql.arg_list(chunk);
                for row in sql.fetch_all(&self.reader).await? {
                    nodes.push(node_from_row(kind, &row)?);
                }
            }
        }
        nodes.sort_by_key(|n| n.node);
        Ok(LineageGraph {
            nodes,
            edges: edges.into_iter().collect(),
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{SqlStore, StoreUri};

    /// A walk stays fast on a large graph only if each level is an index lookup; SQLite's query
    /// plan says whether it is.
    #[tokio::test]
    async fn walk_steps_use_indexes_not_scans() {
        let dir = tempfile::tempdir().unwrap();
        let uri = StoreUri::Sqlite(dir.path().join("plan.db"));
        let store = SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap();
        for column in ["artifact_id", "execution_id"] {
            let query = events_touching(super::super::Backend::Sqlite, column, &[1, 2, 3], "INPUT");
            let plan = query.explained();
            let details: Vec<String> = plan
                .fetch_all(&store.reader)
                .await
                .unwrap()
                .iter()
                .map(|r| r.text(3).unwrap())
                .collect();
            assert!(
                details.iter().any(|d| d.contains("USING"))
                    && !details.iter().any(|d| d.starts_with("SCAN")),
                "{column}: {details:?}"
            );
        }
    }
}
