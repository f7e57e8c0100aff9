//! The model registry on SQL, one area per file: registered models (`models.rs`), their numbered
//! versions and stages (`versions.rs`), aliases (`aliases.rs`), the event log and the write
//! helper every mutation goes through (`events.rs`), and the search language (`search.rs`).
//! This file holds what they share: row decoding and the checks every write starts with.

mod aliases;
pub(super) mod events;
mod models;
mod search;
pub(super) mod tail;
mod versions;

use std::collections::HashMap;

use sqlx::{Any, Transaction};
use twinloop_core::registry::{DELETED_STAGE, ModelVersion, RegisteredModel};
use twinloop_core::tracking::Tag;
use twinloop_core::{Error, Result};

use super::SqlStore;
use super::query::{RowExt, Sql, backend_of};

const VERSION_COLUMNS: &str = "mv.name, mv.version, mv.creation_time, mv.last_updated_time, mv.description, \
     mv.user_id, mv.current_stage, mv.source, mv.run_id, mv.run_link, mv.status, mv.model_id";

fn parse_version(version: &str) -> Result<i64> {
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

fn validate_model_name(name: &str) -> Result<()> {
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

fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

fn version_from_row(row: &dyn RowExt) -> Result<ModelVersion> {
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

impl SqlStore {
    async fn attach_version_details(&self, versions: &mut [ModelVersion]) -> Result<()> {
        if versions.is_empty() {
            return Ok(());
        }
        let mut names: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut tags = Vec::new();
        let mut aliases = Vec::new();
        for chunk in names.chunks(500) {
            let mut sql =
                self.sql("SELECT name, version, key, value FROM model_version_tags WHERE name IN ");
            sql.arg_list(chunk).push(" ORDER BY key");
            tags.extend(
                sql.read_as(&self.bulk_reader, |row| {
                    Ok((
                        row.text(0)?,
                        row.int(1)?,
                        Tag::new(row.text(2)?, row.text(3)?),
                    ))
                })
                .await?,
            );
            let mut sql = self
                .sql("SELECT name, version, alias FROM registered_model_aliases WHERE name IN ");
            sql.arg_list(chunk).push(" ORDER BY alias");
            aliases.extend(
                sql.read_as(&self.bulk_reader, |row| {
                    Ok((row.text(0)?, row.int(1)?, row.text(2)?))
                })
                .await?,
            );
        }
        // Most searches find neither, and the index costs a copy of every version's name.
        if tags.is_empty() && aliases.is_empty() {
            return Ok(());
        }
        let index: HashMap<(String, i64), usize> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| ((v.name.clone(), v.version), i))
            .collect();
        for (name, version, tag) in tags {
            if let Some(&i) = index.get(&(name, version)) {
                versions[i].tags.push(tag);
            }
        }
        for (name, version, alias) in aliases {
            if let Some(&i) = index.get(&(name, version)) {
                versions[i].aliases.push(alias);
            }
        }
        Ok(())
    }
}

fn model_from_row(row: &dyn RowExt) -> Result<RegisteredModel> {
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
