//! The embedded online store: one redb database file, one table per view.

use std::path::Path;

use async_trait::async_trait;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
};
use twinloop_core::{Error, Result};

use super::{OnlineRow, OnlineStore, OnlineWrite, newer_or_same};

pub struct EmbeddedStore {
    db: std::sync::Arc<Database>,
}

fn store_error(e: impl Into<twinloop_core::error::BoxError>) -> Error {
    Error::internal("embedded online store").with_source(e)
}

impl EmbeddedStore {
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::invalid(format!("cannot create {}", dir.display())).with_source(e)
        })?;
        let path = dir.join("online.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::invalid(format!(
                "the online store {} is open in another process (a running `twinloop features serve`?): \
                 stop it, or materialize through its POST /materialize",
                path.display()
            )),
            other => store_error(other),
        })?;
        Ok(EmbeddedStore {
            db: std::sync::Arc::new(db),
        })
    }
}

#[async_trait]
impl OnlineStore for EmbeddedStore {
    async fn write(&self, table: &str, rows: Vec<OnlineWrite>) -> Result<usize> {
        let db = self.db.clone();
        let table = table.to_string();
        // A write transaction ends in an fsync: on the runtime's workers it would stall every
        // request the feature server answers meanwhile.
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(store_error)?;
            let mut written = 0;
            {
                let mut t = txn
                    .open_table(TableDefinition::<&[u8], &[u8]>::new(&table))
                    .map_err(store_error)?;
                for row in &rows {
                    let replace = match t.get(row.key.as_slice()).map_err(store_error)? {
                        Some(old) => newer_or_same(&row.row, old.value()),
                        None => true,
                    };
                    if replace {
                        t.insert(row.key.as_slice(), row.row.as_slice())
                            .map_err(store_error)?;
                        written += 1;
                    }
                }
            }
            txn.commit().map_err(store_error)?;
            Ok(written)
        })
        .await
        .map_err(store_error)?
    }

    async fn read(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        let txn = self.db.begin_read().map_err(store_error)?;
        let t = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(table)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![None; keys.len()]),
            Err(e) => return Err(store_error(e)),
        };
        keys.iter()
            .map(|k| match t.get(k.as_slice()).map_err(store_error)? {
                Some(v) => OnlineRow::decode(v.value()).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    async fn count(&self, table: &str) -> Result<u64> {
        let txn = self.db.begin_read().map_err(store_error)?;
        match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(table)) {
            Ok(t) => t.len().map_err(store_error),
            Err(TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(store_error(e)),
        }
    }
}
