//! Registered models: create, rename, describe, tag and delete, with their latest versions.

use std::collections::HashMap;

use async_trait::async_trait;
use twinloop_core::registry::*;
use twinloop_core::time::now_ms;
use twinloop_core::tracking::{Page, Tag};
use twinloop_core::{Error, Result};

use super::events::EventSpec;
use super::search;
use super::{
    VERSION_COLUMNS, model_from_row, model_not_found, touch_model, validate_model_name,
    version_from_row,
};
use crate::sql::SqlStore;
use crate::sql::pairs::{OnConflict, REGISTERED_MODEL_TAGS};
use crate::sql::query::{Arg, RowExt};
use crate::store::{RegisteredModelStore, RegistryQuery};
use crate::validation::validate_registry_tag;

#[async_trait]
impl RegisteredModelStore for SqlStore {
    async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        actor: &str,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        tags.iter().try_for_each(validate_registry_tag)?;
        let now = now_ms();
        let mut tx = self.change().await?;
        let mut sql = self.sql("INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES ");
        sql.tuple([
            Arg::from(name),
            Arg::from(now),
            Arg::from(now),
            Arg::from(description.map(String::from)),
        ])
        .push(" ON CONFLICT (name) DO NOTHING");
        if sql.execute(&mut **tx).await? == 0 {
            return Err(Error::already_exists(format!(
                "Registered Model (name={name}) already exists."
            )));
        }
        REGISTERED_MODEL_TAGS
            .write(&mut tx, name, tags, OnConflict::Overwrite)
            .await?;
        let detail = EventDetail {
            tags: tags.to_vec(),
            description: description.map(String::from),
            ..EventDetail::default()
        };
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::ModelCreated, name).detail(detail),
        )
        .await?;
        tx.commit().await?;
        self.get_registered_model(name).await
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
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

    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        actor: &str,
    ) -> Result<RegisteredModel> {
        validate_model_name(new_name)?;
        let mut tx = self.change().await?;
        touch_model(&mut tx, name, now_ms()).await?;
        let mut exists = self.sql("SELECT 1 FROM registered_models WHERE name = ");
        exists.arg(new_name);
        if exists.fetch_optional(&mut **tx).await?.is_some() {
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
            sql.execute(&mut **tx).await?;
        }
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::ModelRenamed, new_name)
                .change(Some(name.to_string()), Some(new_name.to_string())),
        )
        .await?;
        tx.commit().await?;
        self.get_registered_model(new_name).await
    }

    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        let mut tx = self.change().await?;
        touch_model(&mut tx, name, now_ms()).await?;
        let mut sql = self.sql("UPDATE registered_models SET description = ");
        sql.arg(description).push(" WHERE name = ").arg(name);
        sql.execute(&mut **tx).await?;
        tx.commit().await?;
        self.get_registered_model(name).await
    }

    async fn delete_registered_model(&self, name: &str, actor: &str) -> Result<()> {
        let mut tx = self.change().await?;
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
            sql.execute(&mut **tx).await?;
        }
        tx.record(actor, EventSpec::new(RegistryEventKind::ModelDeleted, name))
            .await?;
        tx.commit().await
    }

    async fn search_registered_models(&self, q: &RegistryQuery) -> Result<Page<RegisteredModel>> {
        let select = self.sql("SELECT rm.name, rm.creation_time, rm.last_updated_time, rm.description FROM registered_models rm WHERE 1 = 1");
        let (sql, window) = search::models_query(select, q)?;
        let rows = sql.read(&self.bulk_reader).await?;
        let mut result = window.page(&rows, model_from_row)?;
        self.attach_registered_model_details(&mut result.items)
            .await?;
        Ok(result)
    }

    async fn set_registered_model_tag(&self, name: &str, tag: &Tag) -> Result<()> {
        validate_registry_tag(tag)?;
        let mut tx = self.change().await?;
        touch_model(&mut tx, name, now_ms()).await?;
        REGISTERED_MODEL_TAGS
            .write(
                &mut tx,
                name,
                std::slice::from_ref(tag),
                OnConflict::Overwrite,
            )
            .await?;
        tx.commit().await
    }

    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let mut tx = self.change().await?;
        touch_model(&mut tx, name, now_ms()).await?;
        // Deleting a tag that is not there is not an error, as in MLflow's registry.
        REGISTERED_MODEL_TAGS.delete(&mut tx, name, key).await?;
        tx.commit().await
    }

    async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        let model = self.get_registered_model(name).await?;
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
}

impl SqlStore {
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
            // The newest version in each stage, from one pass over the models' versions: as a
            // subquery per version PostgreSQL's generic plan read them all again for each one
            // (180 ms for a model of 1,000 versions).
            let mut sql = self.sql(&format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions mv JOIN (SELECT name, \
                 MAX(version) AS version FROM model_versions WHERE name IN "
            ));
            sql.arg_list(chunk)
                .push(" AND current_stage <> ")
                .arg(DELETED_STAGE)
                .push(
                    " GROUP BY name, current_stage) newest \
                     ON mv.name = newest.name AND mv.version = newest.version ORDER BY mv.version",
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
}
