//! `experiment_keys`: each experiment's distinct metric, param and tag keys with the number of
//! its runs (active or deleted) that have each. A key is counted in the transaction that gives a
//! run its first value for it, found as the rows an insert actually added, so concurrent writers
//! of the same new key count it once; deleting a tag uncounts it. Listing 12,000 keys then reads
//! one experiment's rows instead of grouping every run's.

use sqlx::{Any, Transaction};
use twinloop_core::run_columns::{KeyCount, KeyKind, KeyList, KeyQuery};
use twinloop_core::{Error, Result};

use super::SqlStore;
use super::experiments::parse_experiment_id;
use super::query::{Arg, MAX_ARGS, RowExt, Sql, backend_of, chunks_for};

/// The most keys one listing returns.
pub const MAX_KEY_LIMIT: u32 = 50_000;

/// The head of the key-count upsert; a row is `(experiment, kind, key, 1)`, followed by
/// [`COUNT_ONE_MORE`].
pub(super) const INSERT: &str =
    "INSERT INTO experiment_keys (experiment_id, kind, key, runs) VALUES ";

pub(super) const COUNT_ONE_MORE: &str =
    " ON CONFLICT (experiment_id, kind, key) DO UPDATE SET runs = experiment_keys.runs + 1";

async fn experiment_of(tx: &mut Transaction<'_, Any>, run_id: &str) -> Result<i64> {
    let mut sql = Sql::new(
        backend_of(tx),
        "SELECT experiment_id FROM runs WHERE run_uuid = ",
    );
    sql.arg(run_id);
    sql.fetch_one(&mut **tx).await?.int(0)
}

/// Counts keys that the run `run_id` has just been given for the first time.
pub(super) async fn count_new(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    kind: KeyKind,
    keys: &[String],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let experiment_id = experiment_of(tx, run_id).await?;
    count_new_in(tx, experiment_id, kind, keys).await
}

/// [`count_new`] for a run whose experiment the caller knows.
pub(super) async fn count_new_in(
    tx: &mut Transaction<'_, Any>,
    experiment_id: i64,
    kind: KeyKind,
    keys: &[String],
) -> Result<()> {
    // Rows are taken in key order in every transaction, so concurrent ones cannot deadlock.
    let mut keys: Vec<&String> = keys.iter().collect();
    keys.sort();
    keys.dedup();
    for chunk in chunks_for(&keys, 4, MAX_ARGS) {
        let mut sql = Sql::new(backend_of(tx), INSERT);
        for (i, key) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.tuple([
                Arg::from(experiment_id),
                Arg::from(kind.as_str()),
                Arg::from(*key),
                Arg::from(1i64),
            ]);
        }
        sql.push(COUNT_ONE_MORE);
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Uncounts a key the run `run_id` no longer has (a deleted tag).
pub(super) async fn uncount(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    kind: KeyKind,
    key: &str,
) -> Result<()> {
    let experiment_id = experiment_of(tx, run_id).await?;
    let mut sql = Sql::new(
        backend_of(tx),
        "UPDATE experiment_keys SET runs = runs - 1 WHERE experiment_id = ",
    );
    sql.arg(experiment_id)
        .push(" AND kind = ")
        .arg(kind.as_str())
        .push(" AND key = ")
        .arg(key);
    sql.execute(&mut **tx).await?;
    Ok(())
}

/// `text` as a LIKE pattern matching itself anywhere, with `\` escaping LIKE's wildcards.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl SqlStore {
    pub(super) async fn list_experiment_keys(
        &self,
        experiment_id: &str,
        query: &KeyQuery,
    ) -> Result<KeyList> {
        let id = parse_experiment_id(experiment_id)?;
        if query.limit == 0 || query.limit > MAX_KEY_LIMIT {
            return Err(Error::invalid(format!(
                "Invalid limit {}: expected 1 to {MAX_KEY_LIMIT}",
                query.limit
            )));
        }
        let mut exists = self.sql("SELECT 1 FROM experiments WHERE experiment_id = ");
        exists.arg(id);
        if exists.fetch_optional(&self.reader).await?.is_none() {
            return Err(Error::not_found(format!(
                "No Experiment with id={experiment_id} exists"
            )));
        }
        let mut sql = self
            .sql("SELECT key, runs, COUNT(*) OVER () FROM experiment_keys WHERE experiment_id = ");
        sql.arg(id)
            .push(" AND kind = ")
            .arg(query.kind.as_str())
            .push(" AND runs > 0");
        if !query.contains.is_empty() {
            sql.push(" AND LOWER(key) LIKE ")
                .arg(contains_pattern(&query.contains))
                .push(" ESCAPE '\\'");
        }
        sql.push(" ORDER BY runs DESC, key LIMIT ")
            .arg(i64::from(query.limit));
        let (mut keys, mut total) = (Vec::new(), 0);
        sql.read(&self.bulk_reader).await?.for_each(|row| {
            keys.push(KeyCount {
                key: row.text(0)?,
                runs: row.int(1)?,
            });
            total = row.int(2)?;
            Ok(())
        })?;
        Ok(KeyList { keys, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_text_matches_itself_only() {
        assert_eq!(contains_pattern("Loss"), "%loss%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
