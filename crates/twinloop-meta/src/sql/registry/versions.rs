//! Model versions: numbered under a row lock on their model, staged, tagged, and recorded in the
//! lineage graph as the output of their registration.

use async_trait::async_trait;
use sqlx::{Any, Transaction};
use twinloop_core::lineage::{EventKind, NewNode, NodeKind};
use twinloop_core::registry::*;
use twinloop_core::time::now_ms;
use twinloop_core::tracking::{Page, Tag};
use twinloop_core::{Error, Result};

use super::events::EventSpec;
use super::search;
use super::{
    VERSION_COLUMNS, parse_version, require_version, touch_model, validate_model_name,
    version_from_row, version_not_found,
};
use crate::pyjson::{self, Separators};
use crate::sql::SqlStore;
use crate::sql::lineage::{ensure_node, link, logged_model_node, run_node};
use crate::sql::pairs::{MODEL_TAGS, MODEL_VERSION_TAGS, OnConflict};
use crate::sql::query::{Arg, RowExt, Sql, backend_of};
use crate::store::{ModelVersionStore, RegistryQuery};
use crate::validation::validate_registry_tag;

/// Adds `{name, version}` to the logged model's `mlflow.modelVersions` tag (a JSON list), as
/// MLflow's server does when a version is registered from a logged model: unless the list has
/// it already, written by Python's `json.dumps` (clients compare the string).
async fn note_version_on_logged_model(
    tx: &mut Transaction<'_, Any>,
    model_id: &str,
    name: &str,
    version: i64,
) -> Result<()> {
    const TAG: &str = "mlflow.modelVersions";
    let mut read = Sql::new(
        backend_of(tx),
        "SELECT value FROM logged_model_tags WHERE model_id = ",
    );
    read.arg(model_id).push(" AND key = ").arg(TAG);
    let current = read
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.text(0))
        .transpose()?;
    let mut list: Vec<serde_json::Value> = current
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let entry = serde_json::json!({"name": name, "version": version});
    if !list.contains(&entry) {
        list.push(entry);
    }
    let value = pyjson::dumps(&serde_json::Value::Array(list), Separators::Default);
    MODEL_TAGS
        .write(tx, model_id, &[Tag::new(TAG, value)], OnConflict::Overwrite)
        .await
}

fn version_node_id(name: &str, version: i64) -> String {
    format!("model_version:{name}/{version}")
}

#[async_trait]
impl ModelVersionStore for SqlStore {
    async fn create_model_version(
        &self,
        new: NewModelVersion,
        actor: &str,
    ) -> Result<ModelVersion> {
        validate_model_name(&new.name)?;
        new.tags.iter().try_for_each(validate_registry_tag)?;
        if new.source.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'source'",
            ));
        }
        if let Some(source_model) = new.source.strip_prefix("models:/m-")
            && new.model_id.as_deref() != Some(&format!("m-{source_model}"))
        {
            return Err(Error::invalid(format!(
                "The source {} names a logged model; pass its model_id (m-{source_model}) with the request",
                new.source
            )));
        }
        if let Some(rest) = new.source.strip_prefix("runs:/") {
            let source_run = rest.split('/').next().unwrap_or_default();
            if new.run_id.as_deref() != Some(source_run) {
                return Err(Error::invalid(format!(
                    "The source {} names run {source_run}; pass that run_id with the request",
                    new.source
                )));
            }
        }
        let now = now_ms();
        let mut tx = self.change().await?;
        touch_model(&mut tx, &new.name, now).await?;
        let mut run_id = new.run_id.clone().unwrap_or_default();
        let mut model_node = None;
        if let Some(model_id) = &new.model_id {
            let mut lm =
                self.sql("SELECT source_run_id, artifact_uri FROM logged_models WHERE model_id = ");
            lm.arg(model_id);
            let row = lm.fetch_optional(&mut **tx).await?.ok_or_else(|| {
                Error::not_found(format!("Logged model with ID '{model_id}' not found"))
            })?;
            if run_id.is_empty() {
                run_id = row.text(0)?;
            }
            model_node = Some(
                ensure_node(
                    &mut tx,
                    NodeKind::Artifact,
                    &logged_model_node(model_id, Some(&row.text(1)?)),
                )
                .await?,
            );
        }
        let mut next =
            self.sql("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ");
        next.arg(&new.name);
        let version = next.fetch_one(&mut **tx).await?.int(0)?;
        let mut insert = self.sql(
            "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, \
             current_stage, source, run_id, run_link, status, model_id) VALUES ",
        );
        insert.tuple([
            Arg::from(&new.name),
            Arg::from(version),
            Arg::from(now),
            Arg::from(now),
            Arg::from(new.description.clone().unwrap_or_default()),
            Arg::from(&new.user_id),
            Arg::from("None"),
            Arg::from(&new.source),
            Arg::from(&run_id),
            Arg::from(new.run_link.clone().unwrap_or_default()),
            Arg::from("READY"),
            Arg::from(new.model_id.clone()),
        ]);
        insert.execute(&mut **tx).await?;
        if !new.tags.is_empty() {
            MODEL_VERSION_TAGS
                .write(
                    &mut tx,
                    (new.name.as_str(), version),
                    &new.tags,
                    OnConflict::Overwrite,
                )
                .await?;
        }
        // Lineage: the version is an artifact produced by a registration that read the logged
        // model, or, without one, by the run itself.
        let version_node = ensure_node(
            &mut tx,
            NodeKind::Artifact,
            &NewNode {
                node_type: "model_version".into(),
                name: format!("{}/{version}", new.name),
                uri: Some(new.source.clone()),
                external_id: Some(version_node_id(&new.name, version)),
                properties: None,
            },
        )
        .await?;
        if let Some(model_node) = model_node {
            let registration = ensure_node(
                &mut tx,
                NodeKind::Execution,
                &NewNode {
                    node_type: "registration".into(),
                    name: format!("register {}/{version}", new.name),
                    uri: None,
                    external_id: Some(format!("registration:{}/{version}", new.name)),
                    properties: None,
                },
            )
            .await?;
            link(&mut tx, model_node, registration, EventKind::Input).await?;
            link(&mut tx, version_node, registration, EventKind::Output).await?;
        } else if !run_id.is_empty() {
            let run_node = ensure_node(&mut tx, NodeKind::Execution, &run_node(&run_id)).await?;
            link(&mut tx, version_node, run_node, EventKind::Output).await?;
        }
        if let Some(model_id) = &new.model_id {
            note_version_on_logged_model(&mut tx, model_id, &new.name, version).await?;
        }
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::VersionCreated, &new.name)
                .version(version)
                .change(None, Some(version.to_string()))
                .detail(EventDetail {
                    tags: new.tags.clone(),
                    description: new.description.clone(),
                    source: Some(new.source.clone()),
                    run_id: new.run_id.clone(),
                    tag: None,
                }),
        )
        .await?;
        tx.commit().await?;
        self.get_model_version(&new.name, &version.to_string())
            .await
    }

    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let version = parse_version(version)?;
        let mut sql = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.name = "
        ));
        sql.arg(name)
            .push(" AND mv.version = ")
            .arg(version)
            .push(" AND mv.current_stage <> ")
            .arg(DELETED_STAGE);
        let row = sql
            .fetch_optional(&self.reader)
            .await?
            .ok_or_else(|| version_not_found(name, version))?;
        let mut versions = vec![version_from_row(&row)?];
        self.attach_version_details(&mut versions).await?;
        Ok(versions.remove(0))
    }

    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        let v = parse_version(version)?;
        let now = now_ms();
        let mut tx = self.change().await?;
        require_version(&mut tx, name, v).await?;
        let mut sql = self.sql("UPDATE model_versions SET description = ");
        sql.arg(description)
            .push(", last_updated_time = ")
            .arg(now)
            .push(" WHERE name = ")
            .arg(name)
            .push(" AND version = ")
            .arg(v);
        sql.execute(&mut **tx).await?;
        tx.commit().await?;
        self.get_model_version(name, version).await
    }

    async fn delete_model_version(&self, name: &str, version: &str, actor: &str) -> Result<()> {
        let v = parse_version(version)?;
        let now = now_ms();
        let mut tx = self.change().await?;
        require_version(&mut tx, name, v).await?;
        touch_model(&mut tx, name, now).await?;
        let mut sql = self.sql("UPDATE model_versions SET current_stage = ");
        sql.arg(DELETED_STAGE)
            .push(", last_updated_time = ")
            .arg(now)
            .push(" WHERE name = ")
            .arg(name)
            .push(" AND version = ")
            .arg(v);
        sql.execute(&mut **tx).await?;
        let mut aliases = self.sql("SELECT alias FROM registered_model_aliases WHERE name = ");
        aliases.arg(name).push(" AND version = ").arg(v);
        let dropped: Vec<String> = aliases
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<_>>()?;
        let mut delete = self.sql("DELETE FROM registered_model_aliases WHERE name = ");
        delete.arg(name).push(" AND version = ").arg(v);
        delete.execute(&mut **tx).await?;
        let mut tags = self.sql("DELETE FROM model_version_tags WHERE name = ");
        tags.arg(name).push(" AND version = ").arg(v);
        tags.execute(&mut **tx).await?;
        for alias in &dropped {
            tx.record(
                actor,
                EventSpec::new(RegistryEventKind::AliasDeleted, name)
                    .version(v)
                    .alias(alias)
                    .change(Some(v.to_string()), None),
            )
            .await?;
        }
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::VersionDeleted, name)
                .version(v)
                .change(Some(v.to_string()), None),
        )
        .await?;
        tx.commit().await
    }

    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
        actor: &str,
    ) -> Result<ModelVersion> {
        let v = parse_version(version)?;
        let stage = canonical_stage(stage).ok_or_else(|| {
            Error::invalid(format!("Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."))
        })?;
        let now = now_ms();
        let mut tx = self.change().await?;
        let current = require_version(&mut tx, name, v).await?;
        touch_model(&mut tx, name, now).await?;
        if archive_existing && (stage == "Staging" || stage == "Production") {
            let mut others = self.sql("SELECT version FROM model_versions WHERE name = ");
            others
                .arg(name)
                .push(" AND current_stage = ")
                .arg(stage)
                .push(" AND version <> ")
                .arg(v);
            for row in others.fetch_all(&mut **tx).await? {
                let other = row.int(0)?;
                let mut archive = self.sql(
                    "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ",
                );
                archive
                    .arg(now)
                    .push(" WHERE name = ")
                    .arg(name)
                    .push(" AND version = ")
                    .arg(other);
                archive.execute(&mut **tx).await?;
                tx.record(
                    actor,
                    EventSpec::new(RegistryEventKind::StageChanged, name)
                        .version(other)
                        .change(Some(stage.to_string()), Some("Archived".into())),
                )
                .await?;
            }
        }
        let mut sql = self.sql("UPDATE model_versions SET current_stage = ");
        sql.arg(stage)
            .push(", last_updated_time = ")
            .arg(now)
            .push(" WHERE name = ")
            .arg(name)
            .push(" AND version = ")
            .arg(v);
        sql.execute(&mut **tx).await?;
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::StageChanged, name)
                .version(v)
                .change(Some(current.current_stage), Some(stage.to_string())),
        )
        .await?;
        tx.commit().await?;
        self.get_model_version(name, version).await
    }

    async fn search_model_versions(&self, q: &RegistryQuery) -> Result<Page<ModelVersion>> {
        let select = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.current_stage <> "
        ));
        let (sql, window) = search::versions_query(select, q)?;
        let mut result = window.page_of(sql.read_as(&self.bulk_reader, version_from_row).await?);
        self.attach_version_details(&mut result.items).await?;
        Ok(result)
    }

    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: &Tag,
        actor: &str,
    ) -> Result<()> {
        validate_registry_tag(tag)?;
        let v = parse_version(version)?;
        let mut tx = self.change().await?;
        require_version(&mut tx, name, v).await?;
        MODEL_VERSION_TAGS
            .write(
                &mut tx,
                (name, v),
                std::slice::from_ref(tag),
                OnConflict::Overwrite,
            )
            .await?;
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::VersionTagSet, name)
                .version(v)
                .detail(EventDetail {
                    tag: Some(tag.clone()),
                    ..EventDetail::default()
                }),
        )
        .await?;
        tx.commit().await
    }

    async fn delete_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        actor: &str,
    ) -> Result<()> {
        let v = parse_version(version)?;
        let mut tx = self.change().await?;
        require_version(&mut tx, name, v).await?;
        MODEL_VERSION_TAGS.delete(&mut tx, (name, v), key).await?;
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::VersionTagDeleted, name)
                .version(v)
                .detail(EventDetail {
                    tag: Some(Tag {
                        key: key.to_string(),
                        value: String::new(),
                    }),
                    ..EventDetail::default()
                }),
        )
        .await?;
        tx.commit().await
    }

    /// A version made from a logged model downloads from the model's artifacts; any other
    /// source (`runs:/…`, `s3://…`) is returned as it is, for the client to resolve.
    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        let mv = self.get_model_version(name, version).await?;
        if let Some(model_id) = &mv.model_id {
            let mut sql = self.sql("SELECT artifact_uri FROM logged_models WHERE model_id = ");
            sql.arg(model_id);
            if let Some(row) = sql.fetch_optional(&self.reader).await? {
                return row.text(0);
            }
        }
        Ok(mv.source)
    }
}
