//! The model registry on SQL: registered models, numbered versions, aliases, stages, and the
//! event log. Every mutation writes its event in the same transaction and publishes it after
//! the commit.

use std::collections::HashMap;

use sqlx::{Any, Transaction};
use twinloop_core::lineage::{EventKind, NewNode, NodeKind};
use twinloop_core::registry::*;
use twinloop_core::time::now_ms;
use twinloop_core::tracking::Tag;
use twinloop_core::{Error, Result};

use super::lineage::{ensure_node, link, logged_model_node};
use super::pairs::{MODEL_TAGS, MODEL_VERSION_TAGS, OnConflict, REGISTERED_MODEL_TAGS};
use super::query::{Arg, RowExt, Sql, backend_of};
use super::{SqlStore, db_err};
use crate::validation::validate_tag;

pub(super) const VERSION_COLUMNS: &str = "mv.name, mv.version, mv.creation_time, mv.last_updated_time, mv.description, \
     mv.user_id, mv.current_stage, mv.source, mv.run_id, mv.run_link, mv.status, mv.model_id";

pub(crate) fn parse_version(version: &str) -> Result<i64> {
    version
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Parameter 'version' must be a positive integer, got {version:?}"
            ))
        })
}

pub(crate) fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(
            "Registered model name cannot be empty. Please provide a name.",
        ));
    }
    if name.contains(['/', ':']) {
        return Err(Error::invalid(format!(
            "Invalid registered model name {name:?}: names cannot contain '/' or ':'"
        )));
    }
    if name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "Invalid registered model name {name:?}: at most 256 printable characters"
        )));
    }
    Ok(())
}

/// MLflow's alias rules: word characters and dashes; `latest` and `v<number>` would be read as
/// version references, so they are refused.
fn validate_alias(alias: &str) -> Result<()> {
    let word = !alias.is_empty()
        && alias.len() <= 255
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let reserved = alias.eq_ignore_ascii_case("latest")
        || (alias.len() > 1
            && alias.starts_with(['v', 'V'])
            && alias[1..].chars().all(|c| c.is_ascii_digit()));
    if !word || reserved {
        return Err(Error::invalid(format!(
            "Invalid alias {alias:?}: use letters, digits, '_' and '-' (not 'latest' or 'v<number>')"
        )));
    }
    Ok(())
}

fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

pub(super) fn version_from_row(row: &dyn RowExt) -> Result<ModelVersion> {
    Ok(ModelVersion {
        name: row.text(0)?,
        version: row.int(1)?,
        creation_timestamp: row.int(2)?,
        last_updated_timestamp: row.int(3)?,
        description: row.text(4)?,
        user_id: row.text(5)?,
        current_stage: row.text(6)?,
        source: row.text(7)?,
        run_id: row.text(8)?,
        run_link: row.text(9)?,
        status: row.text(10)?,
        model_id: row.opt_text(11)?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

/// Changes made inside a transaction, published once it commits.
#[derive(Default)]
pub(super) struct Pending(Vec<RegistryEvent>);

pub(super) struct EventSpec<'a> {
    kind: RegistryEventKind,
    model_name: &'a str,
    version: Option<i64>,
    alias: Option<&'a str>,
    before: Option<String>,
    after: Option<String>,
}

impl<'a> EventSpec<'a> {
    fn new(kind: RegistryEventKind, model_name: &'a str) -> Self {
        EventSpec {
            kind,
            model_name,
            version: None,
            alias: None,
            before: None,
            after: None,
        }
    }

    fn version(mut self, version: i64) -> Self {
        self.version = Some(version);
        self
    }

    fn alias(mut self, alias: &'a str) -> Self {
        self.alias = Some(alias);
        self
    }

    /// The value before and after the change: a version, a stage or a name.
    fn change(mut self, before: Option<String>, after: Option<String>) -> Self {
        self.before = before;
        self.after = after;
        self
    }
}

async fn record(
    tx: &mut Transaction<'_, Any>,
    pending: &mut Pending,
    actor: &str,
    spec: EventSpec<'_>,
) -> Result<()> {
    let timestamp = now_ms();
    let mut sql = Sql::new(
        backend_of(tx),
        "INSERT INTO registry_events (timestamp, actor, kind, model_name, version, alias, before, after) VALUES ",
    );
    sql.tuple([
        Arg::from(timestamp),
        Arg::from(actor),
        Arg::from(spec.kind.as_str()),
        Arg::from(spec.model_name),
        Arg::from(spec.version),
        Arg::from(spec.alias.map(String::from)),
        Arg::from(spec.before.clone()),
        Arg::from(spec.after.clone()),
    ])
    .push(" RETURNING id");
    let id = sql.fetch_one(&mut **tx).await?.int(0)?;
    pending.0.push(RegistryEvent {
        id,
        timestamp,
        actor: actor.to_string(),
        kind: spec.kind,
        model_name: spec.model_name.to_string(),
        version: spec.version,
        alias: spec.alias.map(String::from),
        before: spec.before,
        after: spec.after,
    });
    Ok(())
}

/// Locks the model's row for the rest of the transaction (PostgreSQL takes a row lock on
/// UPDATE; SQLite has one writer) and fails if the model does not exist.
async fn touch_model(tx: &mut Transaction<'_, Any>, name: &str, now: i64) -> Result<()> {
    let mut sql = Sql::new(
        backend_of(tx),
        "UPDATE registered_models SET last_updated_time = ",
    );
    sql.arg(now).push(" WHERE name = ").arg(name);
    if sql.execute(&mut **tx).await? == 0 {
        return Err(model_not_found(name));
    }
    Ok(())
}

async fn require_version(
    tx: &mut Transaction<'_, Any>,
    name: &str,
    version: i64,
) -> Result<ModelVersion> {
    let mut sql = Sql::new(
        backend_of(tx),
        &format!("SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.name = "),
    );
    sql.arg(name)
        .push(" AND mv.version = ")
        .arg(version)
        .push(" AND mv.current_stage <> ")
        .arg(DELETED_STAGE);
    let row = sql.fetch_optional(&mut **tx).await?;
    version_from_row(&row.ok_or_else(|| version_not_found(name, version))?)
}

/// Adds `{name, version}` to the logged model's `mlflow.modelVersions` tag (a JSON list), as
/// MLflow's server does when a version is registered from a logged model.
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
    list.push(serde_json::json!({"name": name, "version": version}));
    let value = serde_json::Value::Array(list).to_string();
    MODEL_TAGS
        .write(tx, model_id, &[Tag::new(TAG, value)], OnConflict::Overwrite)
        .await
}

fn version_node_id(name: &str, version: i64) -> String {
    format!("model_version:{name}/{version}")
}

impl SqlStore {
    async fn commit(&self, tx: Transaction<'_, Any>, pending: Pending) -> Result<()> {
        tx.commit().await.map_err(db_err)?;
        for event in pending.0 {
            // Nobody listening is not an error.
            let _ = self.events.send(event);
        }
        Ok(())
    }

    pub(super) async fn attach_version_details(&self, versions: &mut [ModelVersion]) -> Result<()> {
        if versions.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
        names.sort();
        names.dedup();
        let index: HashMap<(String, i64), usize> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| ((v.name.clone(), v.version), i))
            .collect();
        for chunk in names.chunks(500) {
            let mut sql =
                self.sql("SELECT name, version, key, value FROM model_version_tags WHERE name IN ");
            sql.arg_list(chunk).push(" ORDER BY key");
            sql.read(&self.bulk_reader).await?.for_each(|row| {
                if let Some(&i) = index.get(&(row.text(0)?, row.int(1)?)) {
                    versions[i].tags.push(Tag::new(row.text(2)?, row.text(3)?));
                }
                Ok(())
            })?;
            let mut sql = self
                .sql("SELECT name, version, alias FROM registered_model_aliases WHERE name IN ");
            sql.arg_list(chunk).push(" ORDER BY alias");
            sql.read(&self.bulk_reader).await?.for_each(|row| {
                if let Some(&i) = index.get(&(row.text(0)?, row.int(1)?)) {
                    versions[i].aliases.push(row.text(2)?);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    pub(super) async fn attach_registered_model_details(
        &self,
        models: &mut [RegisteredModel],
    ) -> Result<()> {
        if models.is_empty() {
            return Ok(());
        }
        let index: HashMap<String, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let names: Vec<String> = models.iter().map(|m| m.name.clone()).collect();
        for chunk in names.chunks(500) {
            let mut sql =
                self.sql("SELECT name, key, value FROM registered_model_tags WHERE name IN ");
            sql.arg_list(chunk).push(" ORDER BY key");
            for row in sql.fetch_all(&self.reader).await? {
                models[index[&row.text(0)?]]
                    .tags
                    .push(Tag::new(row.text(1)?, row.text(2)?));
            }
            let mut sql = self
                .sql("SELECT name, alias, version FROM registered_model_aliases WHERE name IN ");
            sql.arg_list(chunk).push(" ORDER BY alias");
            for row in sql.fetch_all(&self.reader).await? {
                models[index[&row.text(0)?]].aliases.push(ModelAlias {
                    alias: row.text(1)?,
                    version: row.int(2)?,
                });
            }
            // The newest version in each stage.
            let mut sql = self.sql(&format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.name IN "
            ));
            sql.arg_list(chunk)
                .push(" AND mv.current_stage <> ")
                .arg(DELETED_STAGE)
                .push(
                    " AND mv.version = (SELECT MAX(v2.version) FROM model_versions v2 \
                     WHERE v2.name = mv.name AND v2.current_stage = mv.current_stage) ORDER BY mv.version",
                );
            let mut latest = sql
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| version_from_row(r))
                .collect::<Result<Vec<_>>>()?;
            self.attach_version_details(&mut latest).await?;
            for v in latest {
                models[index[&v.name]].latest_versions.push(v);
            }
        }
        Ok(())
    }

    pub(super) async fn create_registered_model_impl(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        actor: &str,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        tags.iter().try_for_each(validate_tag)?;
        let now = now_ms();
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
        let mut sql = self.sql("INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES ");
        sql.tuple([
            Arg::from(name),
            Arg::from(now),
            Arg::from(now),
            Arg::from(description.map(String::from)),
        ])
        .push(" ON CONFLICT (name) DO NOTHING");
        if sql.execute(&mut *tx).await? == 0 {
            return Err(Error::already_exists(format!(
                "Registered Model (name={name}) already exists."
            )));
        }
        REGISTERED_MODEL_TAGS
            .write(&mut tx, name, tags, OnConflict::Overwrite)
            .await?;
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::ModelCreated, name),
        )
        .await?;
        self.commit(tx, pending).await?;
        self.get_registered_model_impl(name).await
    }

    pub(super) async fn get_registered_model_impl(&self, name: &str) -> Result<RegisteredModel> {
        let mut sql = self.sql("SELECT name, creation_time, last_updated_time, description FROM registered_models WHERE name = ");
        sql.arg(name);
        let row = sql
            .fetch_optional(&self.reader)
            .await?
            .ok_or_else(|| model_not_found(name))?;
        let mut models = vec![model_from_row(&row)?];
        self.attach_registered_model_details(&mut models).await?;
        Ok(models.remove(0))
    }

    pub(super) async fn rename_registered_model_impl(
        &self,
        name: &str,
        new_name: &str,
        actor: &str,
    ) -> Result<RegisteredModel> {
        validate_model_name(new_name)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
        touch_model(&mut tx, name, now_ms()).await?;
        let mut exists = self.sql("SELECT 1 FROM registered_models WHERE name = ");
        exists.arg(new_name);
        if exists.fetch_optional(&mut *tx).await?.is_some() {
            return Err(Error::already_exists(format!(
                "Registered Model (name={new_name}) already exists."
            )));
        }
        for table in [
            "registered_models",
            "registered_model_tags",
            "model_versions",
            "model_version_tags",
            "registered_model_aliases",
        ] {
            let mut sql = self.sql(&format!("UPDATE {table} SET name = "));
            sql.arg(new_name).push(" WHERE name = ").arg(name);
            sql.execute(&mut *tx).await?;
        }
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::ModelRenamed, new_name)
                .change(Some(name.to_string()), Some(new_name.to_string())),
        )
        .await?;
        self.commit(tx, pending).await?;
        self.get_registered_model_impl(new_name).await
    }

    pub(super) async fn update_registered_model_impl(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        touch_model(&mut tx, name, now_ms()).await?;
        let mut sql = self.sql("UPDATE registered_models SET description = ");
        sql.arg(description).push(" WHERE name = ").arg(name);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_registered_model_impl(name).await
    }

    pub(super) async fn delete_registered_model_impl(&self, name: &str, actor: &str) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
        touch_model(&mut tx, name, now_ms()).await?;
        for table in [
            "registered_model_aliases",
            "model_version_tags",
            "model_versions",
            "registered_model_tags",
            "registered_models",
        ] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE name = "));
            sql.arg(name);
            sql.execute(&mut *tx).await?;
        }
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::ModelDeleted, name),
        )
        .await?;
        self.commit(tx, pending).await
    }

    pub(super) async fn set_registered_model_tag_impl(&self, name: &str, tag: &Tag) -> Result<()> {
        validate_tag(tag)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        touch_model(&mut tx, name, now_ms()).await?;
        REGISTERED_MODEL_TAGS
            .write(
                &mut tx,
                name,
                std::slice::from_ref(tag),
                OnConflict::Overwrite,
            )
            .await?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn delete_registered_model_tag_impl(
        &self,
        name: &str,
        key: &str,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        touch_model(&mut tx, name, now_ms()).await?;
        // Deleting a tag that is not there is not an error, as in MLflow's registry.
        REGISTERED_MODEL_TAGS.delete(&mut tx, name, key).await?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn get_latest_versions_impl(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        let model = self.get_registered_model_impl(name).await?;
        let wanted: Vec<&'static str> = stages
            .iter()
            .map(|s| canonical_stage(s).ok_or_else(|| Error::invalid(format!("Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."))))
            .collect::<Result<_>>()?;
        Ok(model
            .latest_versions
            .into_iter()
            .filter(|v| wanted.is_empty() || wanted.contains(&v.current_stage.as_str()))
            .collect())
    }

    pub(super) async fn create_model_version_impl(
        &self,
        new: NewModelVersion,
        actor: &str,
    ) -> Result<ModelVersion> {
        validate_model_name(&new.name)?;
        new.tags.iter().try_for_each(validate_tag)?;
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
        touch_model(&mut tx, &new.name, now).await?;
        let mut run_id = new.run_id.clone().unwrap_or_default();
        let mut model_node = None;
        if let Some(model_id) = &new.model_id {
            let mut lm =
                self.sql("SELECT source_run_id, artifact_uri FROM logged_models WHERE model_id = ");
            lm.arg(model_id);
            let row = lm.fetch_optional(&mut *tx).await?.ok_or_else(|| {
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
        let version = next.fetch_one(&mut *tx).await?.int(0)?;
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
        insert.execute(&mut *tx).await?;
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
            let run_node = ensure_node(
                &mut tx,
                NodeKind::Execution,
                &super::lineage::run_node(&run_id),
            )
            .await?;
            link(&mut tx, version_node, run_node, EventKind::Output).await?;
        }
        if let Some(model_id) = &new.model_id {
            note_version_on_logged_model(&mut tx, model_id, &new.name, version).await?;
        }
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::VersionCreated, &new.name)
                .version(version)
                .change(None, Some(version.to_string())),
        )
        .await?;
        self.commit(tx, pending).await?;
        self.get_model_version_impl(&new.name, &version.to_string())
            .await
    }

    pub(super) async fn get_model_version_impl(
        &self,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion> {
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

    pub(super) async fn update_model_version_impl(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        let v = parse_version(version)?;
        let now = now_ms();
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_version(&mut tx, name, v).await?;
        let mut sql = self.sql("UPDATE model_versions SET description = ");
        sql.arg(description)
            .push(", last_updated_time = ")
            .arg(now)
            .push(" WHERE name = ")
            .arg(name)
            .push(" AND version = ")
            .arg(v);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_model_version_impl(name, version).await
    }

    pub(super) async fn delete_model_version_impl(
        &self,
        name: &str,
        version: &str,
        actor: &str,
    ) -> Result<()> {
        let v = parse_version(version)?;
        let now = now_ms();
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
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
        sql.execute(&mut *tx).await?;
        let mut aliases = self.sql("SELECT alias FROM registered_model_aliases WHERE name = ");
        aliases.arg(name).push(" AND version = ").arg(v);
        let dropped: Vec<String> = aliases
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<_>>()?;
        let mut delete = self.sql("DELETE FROM registered_model_aliases WHERE name = ");
        delete.arg(name).push(" AND version = ").arg(v);
        delete.execute(&mut *tx).await?;
        let mut tags = self.sql("DELETE FROM model_version_tags WHERE name = ");
        tags.arg(name).push(" AND version = ").arg(v);
        tags.execute(&mut *tx).await?;
        for alias in &dropped {
            record(
                &mut tx,
                &mut pending,
                actor,
                EventSpec::new(RegistryEventKind::AliasDeleted, name)
                    .version(v)
                    .alias(alias)
                    .change(Some(v.to_string()), None),
            )
            .await?;
        }
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::VersionDeleted, name)
                .version(v)
                .change(Some(v.to_string()), None),
        )
        .await?;
        self.commit(tx, pending).await
    }

    pub(super) async fn transition_stage_impl(
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
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
            for row in others.fetch_all(&mut *tx).await? {
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
                archive.execute(&mut *tx).await?;
                record(
                    &mut tx,
                    &mut pending,
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
        sql.execute(&mut *tx).await?;
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::StageChanged, name)
                .version(v)
                .change(Some(current.current_stage), Some(stage.to_string())),
        )
        .await?;
        self.commit(tx, pending).await?;
        self.get_model_version_impl(name, version).await
    }

    pub(super) async fn set_model_version_tag_impl(
        &self,
        name: &str,
        version: &str,
        tag: &Tag,
    ) -> Result<()> {
        validate_tag(tag)?;
        let v = parse_version(version)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_version(&mut tx, name, v).await?;
        MODEL_VERSION_TAGS
            .write(
                &mut tx,
                (name, v),
                std::slice::from_ref(tag),
                OnConflict::Overwrite,
            )
            .await?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn delete_model_version_tag_impl(
        &self,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<()> {
        let v = parse_version(version)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_version(&mut tx, name, v).await?;
        MODEL_VERSION_TAGS.delete(&mut tx, (name, v), key).await?;
        tx.commit().await.map_err(db_err)
    }

    /// A version made from a logged model downloads from the model's artifacts; any other
    /// source (`runs:/…`, `s3://…`) is returned as it is, for the client to resolve.
    pub(super) async fn download_uri_impl(&self, name: &str, version: &str) -> Result<String> {
        let mv = self.get_model_version_impl(name, version).await?;
        if let Some(model_id) = &mv.model_id {
            let mut sql = self.sql("SELECT artifact_uri FROM logged_models WHERE model_id = ");
            sql.arg(model_id);
            if let Some(row) = sql.fetch_optional(&self.reader).await? {
                return row.text(0);
            }
        }
        Ok(mv.source)
    }

    pub(super) async fn set_alias_impl(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        actor: &str,
    ) -> Result<()> {
        validate_alias(alias)?;
        let v = parse_version(version)?;
        let now = now_ms();
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
        touch_model(&mut tx, name, now).await?;
        require_version(&mut tx, name, v).await?;
        let mut before = self.sql("SELECT version FROM registered_model_aliases WHERE name = ");
        before.arg(name).push(" AND alias = ").arg(alias);
        let previous = before
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.int(0))
            .transpose()?;
        let mut sql =
            self.sql("INSERT INTO registered_model_aliases (name, alias, version) VALUES ");
        sql.tuple([Arg::from(name), Arg::from(alias), Arg::from(v)])
            .push(" ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version");
        sql.execute(&mut *tx).await?;
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::AliasSet, name)
                .version(v)
                .alias(alias)
                .change(previous.map(|p| p.to_string()), Some(v.to_string())),
        )
        .await?;
        self.commit(tx, pending).await
    }

    pub(super) async fn delete_alias_impl(
        &self,
        name: &str,
        alias: &str,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut pending = Pending::default();
        touch_model(&mut tx, name, now_ms()).await?;
        let mut sql = self.sql("DELETE FROM registered_model_aliases WHERE name = ");
        sql.arg(name)
            .push(" AND alias = ")
            .arg(alias)
            .push(" RETURNING version");
        // Removing an alias that is not set is not an error, as in MLflow.
        let Some(row) = sql.fetch_optional(&mut *tx).await? else {
            return tx.commit().await.map_err(db_err);
        };
        let version = row.int(0)?;
        record(
            &mut tx,
            &mut pending,
            actor,
            EventSpec::new(RegistryEventKind::AliasDeleted, name)
                .version(version)
                .alias(alias)
                .change(Some(version.to_string()), None),
        )
        .await?;
        self.commit(tx, pending).await
    }

    pub(super) async fn version_by_alias_impl(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        let mut model = self.sql("SELECT 1 FROM registered_models WHERE name = ");
        model.arg(name);
        if model.fetch_optional(&self.reader).await?.is_none() {
            return Err(model_not_found(name));
        }
        // `latest` cannot be set; it always names the highest live version.
        let sql = if alias.eq_ignore_ascii_case("latest") {
            let mut sql = self.sql("SELECT MAX(version) FROM model_versions WHERE name = ");
            sql.arg(name)
                .push(" AND current_stage <> ")
                .arg(DELETED_STAGE)
                .push(" HAVING MAX(version) IS NOT NULL");
            sql
        } else {
            let mut sql = self.sql("SELECT version FROM registered_model_aliases WHERE name = ");
            sql.arg(name).push(" AND alias = ").arg(alias);
            sql
        };
        match sql.fetch_optional(&self.reader).await? {
            Some(row) => {
                self.get_model_version_impl(name, &row.int(0)?.to_string())
                    .await
            }
            // MLflow answers an unknown alias with INVALID_PARAMETER_VALUE, not a 404.
            None => Err(Error::invalid(format!(
                "Registered model alias {alias} not found."
            ))),
        }
    }

    pub(super) async fn registry_events_impl(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RegistryEvent>> {
        let mut sql = self.sql("SELECT id, timestamp, actor, kind, model_name, version, alias, before, after FROM registry_events WHERE id > ");
        sql.arg(after)
            .push(" ORDER BY id LIMIT ")
            .arg(limit.clamp(1, 10_000));
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| {
                Ok(RegistryEvent {
                    id: r.int(0)?,
                    timestamp: r.int(1)?,
                    actor: r.text(2)?,
                    kind: RegistryEventKind::parse(&r.text(3)?)
                        .ok_or_else(|| Error::internal("unknown registry event kind"))?,
                    model_name: r.text(4)?,
                    version: r.opt_int(5)?,
                    alias: r.opt_text(6)?,
                    before: r.opt_text(7)?,
                    after: r.opt_text(8)?,
                })
            })
            .collect()
    }
}

pub(super) fn model_from_row(row: &dyn RowExt) -> Result<RegisteredModel> {
    Ok(RegisteredModel {
        name: row.text(0)?,
        creation_timestamp: row.int(1)?,
        last_updated_timestamp: row.int(2)?,
        description: row.opt_text(3)?,
        tags: Vec::new(),
        aliases: Vec::new(),
        latest_versions: Vec::new(),
    })
}
