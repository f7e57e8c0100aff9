//! Aliases: names that point at one version of a model and move when set again.

use async_trait::async_trait;
use twinloop_core::registry::*;
use twinloop_core::time::now_ms;
use twinloop_core::{Error, Result};

use super::events::EventSpec;
use super::{model_not_found, parse_version, require_version, touch_model};
use crate::sql::SqlStore;
use crate::sql::query::{Arg, RowExt, Sql};
use crate::store::{ModelAliasStore, ModelVersionStore};

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

#[async_trait]
impl ModelAliasStore for SqlStore {
    async fn set_alias(&self, name: &str, alias: &str, version: &str, actor: &str) -> Result<()> {
        self.set_alias_with(name, alias, version, actor, None).await
    }

    async fn delete_alias(&self, name: &str, alias: &str, actor: &str) -> Result<()> {
        let mut tx = self.change().await?;
        touch_model(&mut tx, name, now_ms()).await?;
        let mut sql = self.sql("DELETE FROM registered_model_aliases WHERE name = ");
        sql.arg(name)
            .push(" AND alias = ")
            .arg(alias)
            .push(" RETURNING version");
        // Removing an alias that is not set is not an error, as in MLflow.
        let Some(row) = sql.fetch_optional(&mut **tx).await? else {
            return tx.commit().await;
        };
        let version = row.int(0)?;
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::AliasDeleted, name)
                .version(version)
                .alias(alias)
                .change(Some(version.to_string()), None),
        )
        .await?;
        tx.commit().await
    }

    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
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
            Some(row) => self.get_model_version(name, &row.int(0)?.to_string()).await,
            // MLflow answers an unknown alias as an invalid argument, not a 404.
            None => Err(Error::invalid(format!(
                "Registered model alias {alias} not found."
            ))),
        }
    }
}

impl SqlStore {
    /// Sets an alias as [`ModelAliasStore::set_alias`] does, and runs `also` in the same
    /// transaction: the alias, its event and what must move with it commit together or not at
    /// all, and the event is announced only after the commit.
    pub(in crate::sql) async fn set_alias_with(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        actor: &str,
        also: Option<Sql>,
    ) -> Result<()> {
        validate_alias(alias)?;
        let v = parse_version(version)?;
        let now = now_ms();
        let mut tx = self.change().await?;
        touch_model(&mut tx, name, now).await?;
        require_version(&mut tx, name, v).await?;
        let mut before = self.sql("SELECT version FROM registered_model_aliases WHERE name = ");
        before.arg(name).push(" AND alias = ").arg(alias);
        let previous = before
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.int(0))
            .transpose()?;
        let mut sql =
            self.sql("INSERT INTO registered_model_aliases (name, alias, version) VALUES ");
        sql.tuple([Arg::from(name), Arg::from(alias), Arg::from(v)])
            .push(" ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version");
        sql.execute(&mut **tx).await?;
        tx.record(
            actor,
            EventSpec::new(RegistryEventKind::AliasSet, name)
                .version(v)
                .alias(alias)
                .change(previous.map(|p| p.to_string()), Some(v.to_string())),
        )
        .await?;
        if let Some(also) = also {
            also.execute(&mut **tx).await?;
        }
        tx.commit().await
    }
}
