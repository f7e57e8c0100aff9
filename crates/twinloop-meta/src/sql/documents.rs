//! Tables of named JSON documents — a spec and a state per name, replaced whole on each change
//! (`deployments`, `monitors`): their owners' crates keep the JSON, the store keeps it safe.

use twinloop_core::Result;
use twinloop_core::time::now_ms;

use super::SqlStore;
use super::query::{Arg, RowExt, Sql};

/// A document as stored: (name, spec, state, update time in ms).
pub(super) type Document = (String, String, String, i64);

impl SqlStore {
    /// Creates or replaces the document `name` of `table`, stamping its update time.
    pub(super) async fn put_document(
        &self,
        table: &str,
        name: &str,
        spec: &str,
        state: &str,
    ) -> Result<()> {
        self.document_upsert(table, name, spec, state)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The statement [`SqlStore::put_document`] runs, for a transaction that writes the
    /// document with something else.
    pub(super) fn document_upsert(&self, table: &str, name: &str, spec: &str, state: &str) -> Sql {
        let mut sql = self.sql(&format!(
            "INSERT INTO {table} (name, spec, state, update_time) VALUES "
        ));
        sql.tuple([
            Arg::from(name),
            Arg::from(spec),
            Arg::from(state),
            Arg::from(now_ms()),
        ]);
        sql.push(
            " ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, state = excluded.state, \
             update_time = excluded.update_time",
        );
        sql
    }

    pub(super) async fn documents(&self, table: &str) -> Result<Vec<Document>> {
        let sql = self.sql(&format!(
            "SELECT name, spec, state, update_time FROM {table} ORDER BY name"
        ));
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| Ok((row.text(0)?, row.text(1)?, row.text(2)?, row.int(3)?)))
            .collect()
    }

    /// Whether there was one to delete.
    pub(super) async fn delete_document(&self, table: &str, name: &str) -> Result<bool> {
        let mut sql = self.sql(&format!("DELETE FROM {table} WHERE name = "));
        sql.arg(name);
        Ok(sql.execute(&self.writer).await? > 0)
    }
}
