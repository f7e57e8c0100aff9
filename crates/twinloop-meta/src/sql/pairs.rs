//! Key/value tables (run params and tags, experiment tags, logged-model params and tags,
//! registered-model and model-version tags) share one shape: owner columns, `key`, `value`,
//! unique on (owner, key). These write and delete them.

use sqlx::{Any, Transaction};
use twinloop_core::Result;
use twinloop_core::tracking::Tag;

use super::Backend;
use super::query::{Arg, MAX_ARGS, RowExt, Sql, backend_of, chunks_for};

/// What happens when a key is written again.
#[derive(Clone, Copy)]
pub(crate) enum OnConflict {
    /// Tags: the new value replaces the old one.
    Overwrite,
    /// Params: the first value stays; callers check for a changed value themselves.
    Keep,
}

/// A key/value table and the columns naming a row's owner.
#[derive(Clone, Copy)]
pub(crate) struct PairTable {
    pub table: &'static str,
    pub owner_columns: &'static [&'static str],
}

/// The values of a table's owner columns.
pub(crate) struct Owner(Vec<Arg>);

impl From<&str> for Owner {
    fn from(id: &str) -> Owner {
        Owner(vec![Arg::from(id)])
    }
}

impl From<i64> for Owner {
    fn from(id: i64) -> Owner {
        Owner(vec![Arg::from(id)])
    }
}

impl From<(&str, i64)> for Owner {
    fn from((name, version): (&str, i64)) -> Owner {
        Owner(vec![Arg::from(name), Arg::from(version)])
    }
}

const fn table(table: &'static str, owner_columns: &'static [&'static str]) -> PairTable {
    PairTable {
        table,
        owner_columns,
    }
}

pub(crate) const RUN_TAGS: PairTable = table("tags", &["run_uuid"]);
pub(crate) const RUN_PARAMS: PairTable = table("params", &["run_uuid"]);
pub(crate) const EXPERIMENT_TAGS: PairTable = table("experiment_tags", &["experiment_id"]);
pub(crate) const MODEL_TAGS: PairTable = table("logged_model_tags", &["model_id"]);
pub(crate) const MODEL_PARAMS: PairTable = table("logged_model_params", &["model_id"]);
pub(crate) const REGISTERED_MODEL_TAGS: PairTable = table("registered_model_tags", &["name"]);
pub(crate) const MODEL_VERSION_TAGS: PairTable = table("model_version_tags", &["name", "version"]);

impl PairTable {
    /// `INSERT INTO table (owner columns, key, value) VALUES (…), (…)` for one chunk of pairs.
    fn insert(self, backend: Backend, owner: &[Arg], columns: &str, chunk: &[Tag]) -> Sql {
        let mut sql = Sql::new(
            backend,
            &format!("INSERT INTO {} ({columns}, key, value) VALUES ", self.table),
        );
        for (i, pair) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let values = owner
                .iter()
                .cloned()
                .chain([Arg::from(&pair.key), Arg::from(&pair.value)]);
            sql.tuple(values);
        }
        sql
    }

    pub async fn write(
        self,
        tx: &mut Transaction<'_, Any>,
        owner: impl Into<Owner>,
        pairs: &[Tag],
        on_conflict: OnConflict,
    ) -> Result<()> {
        let Owner(owner) = owner.into();
        let columns = self.owner_columns.join(", ");
        for chunk in chunks_for(pairs, owner.len() + 2, MAX_ARGS) {
            let mut sql = self.insert(backend_of(tx), &owner, &columns, chunk);
            sql.push(&format!(" ON CONFLICT ({columns}, key) DO "));
            sql.push(match on_conflict {
                OnConflict::Overwrite => "UPDATE SET value = excluded.value",
                OnConflict::Keep => "NOTHING",
            });
            sql.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Inserts the pairs whose key the owner does not have yet, leaving the others as they are;
    /// returns the keys inserted (under concurrency, exactly one writer of a new key sees it).
    pub async fn insert_new(
        self,
        tx: &mut Transaction<'_, Any>,
        owner: impl Into<Owner>,
        pairs: &[Tag],
    ) -> Result<Vec<String>> {
        let Owner(owner) = owner.into();
        let columns = self.owner_columns.join(", ");
        let mut inserted = Vec::new();
        for chunk in chunks_for(pairs, owner.len() + 2, MAX_ARGS) {
            let mut sql = self.insert(backend_of(tx), &owner, &columns, chunk);
            sql.push(" ON CONFLICT DO NOTHING RETURNING key");
            for row in sql.fetch_all(&mut **tx).await? {
                inserted.push(row.text(0)?);
            }
        }
        Ok(inserted)
    }

    /// Deletes one key; returns whether it existed.
    pub async fn delete(
        self,
        tx: &mut Transaction<'_, Any>,
        owner: impl Into<Owner>,
        key: &str,
    ) -> Result<bool> {
        let Owner(owner) = owner.into();
        let mut sql = Sql::new(
            backend_of(tx),
            &format!("DELETE FROM {} WHERE ", self.table),
        );
        for (column, value) in self.owner_columns.iter().zip(owner) {
            sql.push(column).push(" = ").arg(value).push(" AND ");
        }
        sql.push("key = ").arg(key);
        Ok(sql.execute(&mut **tx).await? > 0)
    }
}
