//! [`FeatureStore`]: a loaded repository joined to its metadata store and online store. Every
//! CLI command and the feature server go through it; it records what the feature store does
//! (applied definitions, materializations, training sets) in the registry and lineage graph.

use std::path::Path;
use std::sync::Arc;

use twinloop_core::features::{FeatureChange, FeatureObject, MaterializationRun};
use twinloop_core::lineage::{EventKind, NewNode, NodeKind, NodeRef};
use twinloop_core::time::now_ms;
use twinloop_core::tracking::{Dataset, DatasetInput, Tag};
use twinloop_core::{Error, Result};
use twinloop_meta::{SqlStore, StoreHandle, StoreUri};

use crate::materialize::{Materialized, materialize_view};
use crate::offline::{HistoricalRequest, HistoricalSummary, get_historical};
use crate::online::{self, OnlineStore};
use crate::progress::Progress;
use crate::repo::{FeatureRepo, FeatureView, format_ttl};

/// What `plan` found: definitions to add, change or remove.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub added: Vec<(String, String)>,
    /// (kind, name, current version)
    pub changed: Vec<(String, String, i64)>,
    pub removed: Vec<(String, String)>,
    pub unchanged: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (kind, name) in &self.added {
            writeln!(f, "+ {kind} {name}")?;
        }
        for (kind, name, version) in &self.changed {
            writeln!(f, "~ {kind} {name} (v{version} → v{})", version + 1)?;
        }
        for (kind, name) in &self.removed {
            writeln!(f, "- {kind} {name}")?;
        }
        write!(
            f,
            "{} to add, {} to change, {} to remove, {} unchanged",
            self.added.len(),
            self.changed.len(),
            self.removed.len(),
            self.unchanged
        )
    }
}

pub struct FeatureStore {
    pub repo: FeatureRepo,
    meta: StoreHandle,
}

impl FeatureStore {
    /// Loads the repository at `dir` and opens its registry (creating it when it is the
    /// default SQLite file).
    pub async fn open(dir: &Path) -> Result<FeatureStore> {
        let dir = std::path::absolute(dir)
            .map_err(|e| Error::invalid(format!("{}", dir.display())).with_source(e))?;
        let repo = FeatureRepo::load(&dir)?;
        let uri: StoreUri = repo.config.registry.parse().map_err(|e: Error| {
            Error::invalid(format!("twinloop.yaml: registry: {}", e.message))
        })?;
        if repo.config.registry.starts_with("sqlite:") {
            std::fs::create_dir_all(repo.state_dir()).map_err(|e| {
                Error::invalid(format!("cannot create {}", repo.state_dir().display()))
                    .with_source(e)
            })?;
        }
        let meta = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await?);
        Ok(FeatureStore { repo, meta })
    }

    /// Loads the repository at `dir` over a metadata store that is already open (a server's,
    /// whose pipelines build training sets): one store, one lineage graph, and no second
    /// connection pool writing the same SQLite file.
    pub fn with_store(dir: &Path, meta: StoreHandle) -> Result<FeatureStore> {
        let dir = std::path::absolute(dir)
            .map_err(|e| Error::invalid(format!("{}", dir.display())).with_source(e))?;
        Ok(FeatureStore {
            repo: FeatureRepo::load(&dir)?,
            meta,
        })
    }

    pub async fn online_store(&self) -> Result<Arc<dyn OnlineStore>> {
        online::open(&self.repo).await
    }

    fn specs(&self) -> Result<Vec<(String, String, String)>> {
        let json = |v: serde_json::Result<String>| v.map_err(|e| Error::internal(e.to_string()));
        let mut specs = Vec::new();
        for e in &self.repo.entities {
            specs.push((
                "entity".into(),
                e.name.clone(),
                json(serde_json::to_string(e))?,
            ));
        }
        for s in &self.repo.sources {
            specs.push((
                "source".into(),
                s.name.clone(),
                json(serde_json::to_string(s))?,
            ));
        }
        for v in &self.repo.views {
            specs.push((
                "feature_view".into(),
                v.name.clone(),
                json(serde_json::to_string(v))?,
            ));
        }
        for s in &self.repo.services {
            specs.push((
                "feature_service".into(),
                s.name.clone(),
                json(serde_json::to_string(s))?,
            ));
        }
        Ok(specs)
    }

    /// Checks every view against its source's columns and compares the repository with what
    /// the registry holds.
    pub async fn plan(&self) -> Result<Plan> {
        for view in &self.repo.views {
            crate::source::layout(&self.repo, view).await?;
        }
        let current = self.meta.feature_objects(&self.repo.config.project).await?;
        let mut plan = Plan::default();
        let specs = self.specs()?;
        for (kind, name, spec) in &specs {
            match current.iter().find(|o| &o.kind == kind && &o.name == name) {
                None => plan.added.push((kind.clone(), name.clone())),
                Some(o) if &o.spec != spec => {
                    plan.changed.push((kind.clone(), name.clone(), o.version))
                }
                Some(_) => plan.unchanged += 1,
            }
        }
        for o in &current {
            if !specs.iter().any(|(k, n, _)| k == &o.kind && n == &o.name) {
                plan.removed.push((o.kind.clone(), o.name.clone()));
            }
        }
        Ok(plan)
    }

    /// Applies the plan: records new versions in the registry and feature-view nodes in the
    /// lineage graph.
    pub async fn apply(&self) -> Result<Plan> {
        let plan = self.plan().await?;
        let mut changes: Vec<FeatureChange> = self
            .specs()?
            .into_iter()
            .map(|(kind, name, spec)| FeatureChange::Put { kind, name, spec })
            .collect();
        changes.extend(
            plan.removed
                .iter()
                .map(|(kind, name)| FeatureChange::Remove {
                    kind: kind.clone(),
                    name: name.clone(),
                }),
        );
        let written = self
            .meta
            .apply_feature_changes(&self.repo.config.project, &changes)
            .await?;
        for object in written.iter().filter(|o| o.kind == "feature_view") {
            if let Some(view) = self.repo.view(&object.name) {
                self.view_node(view, object).await?;
            }
        }
        Ok(plan)
    }

    /// The registry's current record of a view; errors when the repository's definition has
    /// not been applied, so lineage always names a recorded version.
    pub async fn applied_view(&self, view: &FeatureView) -> Result<FeatureObject> {
        let spec = serde_json::to_string(view).map_err(|e| Error::internal(e.to_string()))?;
        let current = self.meta.feature_objects(&self.repo.config.project).await?;
        match current
            .into_iter()
            .find(|o| o.kind == "feature_view" && o.name == view.name)
        {
            Some(o) if o.spec == spec => Ok(o),
            Some(_) => Err(Error::invalid(format!(
                "feature view {:?} has changes that are not applied: run `twinloop features apply`",
                view.name
            ))),
            None => Err(Error::invalid(format!(
                "feature view {:?} is not applied yet: run `twinloop features apply`",
                view.name
            ))),
        }
    }

    async fn view_node(&self, view: &FeatureView, object: &FeatureObject) -> Result<NodeRef> {
        let source = self.repo.source(&view.source).map(|s| s.path.clone());
        let properties = serde_json::json!({
            "project": self.repo.config.project,
            "version": object.version,
            "ttl": format_ttl(view.ttl_micros),
            "entities": view.entities,
            "features": view.features.iter().map(|f| format!("{}:{}", f.name, f.dtype)).collect::<Vec<_>>(),
        });
        let node = self
            .meta
            .put_node(
                NodeKind::Artifact,
                NewNode {
                    node_type: "feature_view".into(),
                    name: view.name.clone(),
                    uri: source,
                    external_id: Some(format!(
                        "feature_view:{}/{}@v{}",
                        self.repo.config.project, view.name, object.version
                    )),
                    properties: Some(properties.to_string()),
                },
            )
            .await?;
        Ok(node.node)
    }

    /// Materializes `views` (all online views when empty) over [start, end] (µs, inclusive),
    /// recording each run and its lineage.
    pub async fn materialize(
        &self,
        store: &dyn OnlineStore,
        start: i64,
        end: i64,
        views: &[String],
        progress: &Progress,
    ) -> Result<Vec<Materialized>> {
        if start > end {
            return Err(Error::invalid("the start of the window is after its end"));
        }
        let mut done = Vec::new();
        for view in self.selected_views(views)? {
            let applied = self.applied_view(view).await?;
            let result = materialize_view(&self.repo, store, view, start, end, progress).await?;
            self.record_materialization(view, &applied, &result).await?;
            done.push(result);
        }
        Ok(done)
    }

    /// Materializes from each view's last materialized end (or, never materialized, from
    /// `end` − TTL, or the epoch without a TTL) up to `end`.
    pub async fn materialize_incremental(
        &self,
        store: &dyn OnlineStore,
        end: i64,
        views: &[String],
        progress: &Progress,
    ) -> Result<Vec<Materialized>> {
        let mut done = Vec::new();
        for view in self.selected_views(views)? {
            let applied = self.applied_view(view).await?;
            let start = match self.last_materialized_end(&view.name).await? {
                Some(last) => last,
                None => view.ttl_micros.map_or(0, |ttl| end.saturating_sub(ttl)),
            };
            if start > end {
                continue;
            }
            let result = materialize_view(&self.repo, store, view, start, end, progress).await?;
            self.record_materialization(view, &applied, &result).await?;
            done.push(result);
        }
        Ok(done)
    }

    pub async fn last_materialized_end(&self, view: &str) -> Result<Option<i64>> {
        let runs = self
            .meta
            .materializations(&self.repo.config.project, view)
            .await?;
        Ok(runs.iter().map(|r| r.end_time).max())
    }

    pub async fn materializations(&self, view: &str) -> Result<Vec<MaterializationRun>> {
        self.meta
            .materializations(&self.repo.config.project, view)
            .await
    }

    fn selected_views(&self, names: &[String]) -> Result<Vec<&FeatureView>> {
        if names.is_empty() {
            return Ok(self.repo.views.iter().filter(|v| v.online).collect());
        }
        names
            .iter()
            .map(|n| {
                self.repo
                    .view(n)
                    .ok_or_else(|| Error::invalid(format!("unknown feature view {n:?}")))
            })
            .collect()
    }

    async fn record_materialization(
        &self,
        view: &FeatureView,
        applied: &FeatureObject,
        result: &Materialized,
    ) -> Result<()> {
        let project = &self.repo.config.project;
        self.meta
            .record_materialization(&MaterializationRun {
                project: project.clone(),
                view: view.name.clone(),
                start_time: result.start,
                end_time: result.end,
                source_rows: result.source_rows as i64,
                entities: result.entities as i64,
                written: result.written as i64,
                finish_time: now_ms(),
            })
            .await?;
        let view_node = self.view_node(view, applied).await?;
        let execution = self
            .meta
            .put_node(
                NodeKind::Execution,
                NewNode {
                    node_type: "materialization".into(),
                    name: format!(
                        "{} [{} .. {}]",
                        view.name,
                        crate::time::format_micros(result.start),
                        crate::time::format_micros(result.end)
                    ),
                    uri: None,
                    external_id: None,
                    properties: Some(
                        serde_json::json!({
                            "source_rows": result.source_rows,
                            "entities": result.entities,
                            "written": result.written,
                        })
                        .to_string(),
                    ),
                },
            )
            .await?;
        let online = self
            .meta
            .put_node(
                NodeKind::Artifact,
                NewNode {
                    node_type: "online_table".into(),
                    name: online::table_name(project, view),
                    uri: None,
                    external_id: Some(format!(
                        "online_table:{}",
                        online::table_name(project, view)
                    )),
                    properties: None,
                },
            )
            .await?;
        // The source as read for this window: its files can change, so the node is per window.
        let source = self.repo.source(&view.source).expect("checked when loaded");
        let snapshot = self
            .meta
            .put_node(
                NodeKind::Artifact,
                NewNode {
                    node_type: "dataset".into(),
                    name: source.name.clone(),
                    uri: Some(source.path.clone()),
                    external_id: Some(format!(
                        "feature_source:{project}/{}@{}..{}#{}",
                        source.name, result.start, result.end, result.source_rows
                    )),
                    properties: Some(
                        serde_json::json!({"rows": result.source_rows, "window_rows": result.window_rows})
                            .to_string(),
                    ),
                },
            )
            .await?;
        for (artifact, kind) in [
            (snapshot.node, EventKind::Input),
            (view_node, EventKind::Input),
            (online.node, EventKind::Output),
        ] {
            self.meta.put_event(artifact, execution.node, kind).await?;
        }
        Ok(())
    }

    /// Builds a training set; with `run_id`, logs it as a dataset input of that MLflow run.
    /// Lineage: the feature views (their applied versions) and the entity file → a retrieval
    /// execution → the training set.
    pub async fn get_historical(
        &self,
        request: &HistoricalRequest,
        run_id: Option<&str>,
    ) -> Result<HistoricalSummary> {
        let mut applied = Vec::new();
        for r in &request.features {
            let view = self
                .repo
                .view(&r.view)
                .ok_or_else(|| Error::invalid(format!("unknown feature view {:?}", r.view)))?;
            if !applied
                .iter()
                .any(|(v, _): &(&FeatureView, FeatureObject)| v.name == view.name)
            {
                applied.push((view, self.applied_view(view).await?));
            }
        }
        let experiment = match run_id {
            Some(id) => Some(self.meta.get_run(id).await?.info.experiment_id),
            None => None,
        };
        let summary = get_historical(&self.repo, request).await?;
        let output =
            std::path::absolute(&request.output).unwrap_or_else(|_| request.output.clone());
        let digest = file_digest(&output)?;
        let name = output.file_stem().map_or_else(
            || "training_set".into(),
            |s| s.to_string_lossy().into_owned(),
        );
        let training_set_id = match (run_id, &experiment) {
            (Some(run_id), Some(experiment)) => {
                self.log_training_set(run_id, &output, &name, &digest, &summary)
                    .await?;
                format!("dataset:{experiment}/{name}@{digest}")
            }
            _ => format!("training_set:{}@{digest}", output.display()),
        };
        self.record_retrieval(request, &summary, &applied, &output, &name, training_set_id)
            .await?;
        Ok(summary)
    }

    /// Logs a training set as a dataset input of an MLflow run, with its schema and row count.
    async fn log_training_set(
        &self,
        run_id: &str,
        output: &Path,
        name: &str,
        digest: &str,
        summary: &HistoricalSummary,
    ) -> Result<()> {
        let schema = serde_json::json!({
            "mlflow_colspec": summary.schema.fields().iter().map(|f| serde_json::json!({
                "name": f.name(), "type": f.data_type().to_string(), "required": !f.is_nullable(),
            })).collect::<Vec<_>>()
        });
        self.meta
            .log_inputs(
                run_id,
                &[DatasetInput {
                    tags: vec![Tag {
                        key: "mlflow.data.context".into(),
                        value: "training".into(),
                    }],
                    dataset: Dataset {
                        name: name.to_string(),
                        digest: digest.to_string(),
                        source_type: "local".into(),
                        source: serde_json::json!({"uri": output.display().to_string()})
                            .to_string(),
                        schema: Some(schema.to_string()),
                        profile: Some(serde_json::json!({"num_rows": summary.rows}).to_string()),
                    },
                }],
                &[],
            )
            .await
    }

    /// The retrieval's lineage: the applied views and the entity file are inputs of a
    /// `feature_retrieval` execution whose output is the training set.
    async fn record_retrieval(
        &self,
        request: &HistoricalRequest,
        summary: &HistoricalSummary,
        applied: &[(&FeatureView, FeatureObject)],
        output: &Path,
        name: &str,
        training_set_id: String,
    ) -> Result<()> {
        let training_set = self
            .meta
            .put_node(
                NodeKind::Artifact,
                NewNode {
                    node_type: "dataset".into(),
                    name: name.to_string(),
                    uri: Some(output.display().to_string()),
                    external_id: Some(training_set_id),
                    properties: Some(serde_json::json!({"rows": summary.rows, "columns": summary.feature_columns}).to_string()),
                },
            )
            .await?;
        let entities =
            std::path::absolute(&request.entities).unwrap_or_else(|_| request.entities.clone());
        let entity_node = self
            .meta
            .put_node(
                NodeKind::Artifact,
                NewNode {
                    node_type: "dataset".into(),
                    name: entities
                        .file_name()
                        .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
                    uri: Some(entities.display().to_string()),
                    external_id: Some(format!(
                        "entity_file:{}@{}",
                        entities.display(),
                        file_digest(&entities)?
                    )),
                    properties: None,
                },
            )
            .await?;
        let execution = self
            .meta
            .put_node(
                NodeKind::Execution,
                NewNode {
                    node_type: "feature_retrieval".into(),
                    name: format!("get-historical → {name}"),
                    uri: None,
                    external_id: None,
                    properties: Some(serde_json::json!({
                        "features": request.features.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                        "rows": summary.rows,
                    }).to_string()),
                },
            )
            .await?;
        for (view, object) in applied {
            let node = self.view_node(view, object).await?;
            self.meta
                .put_event(node, execution.node, EventKind::Input)
                .await?;
        }
        self.meta
            .put_event(entity_node.node, execution.node, EventKind::Input)
            .await?;
        self.meta
            .put_event(training_set.node, execution.node, EventKind::Output)
            .await?;
        Ok(())
    }
}

/// A short content digest (first 16 hex digits of SHA-256), as MLflow datasets carry.
fn file_digest(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::invalid(format!("cannot read {}", path.display())).with_source(e))?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| {
            Error::invalid(format!("cannot read {}", path.display())).with_source(e)
        })?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
    }
    Ok(hash
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}
