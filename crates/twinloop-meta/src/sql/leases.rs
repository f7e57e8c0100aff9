//! Leases over the `leases` table: one statement each, so that two replicas racing for a lease
//! are ordered by the database (PostgreSQL's row lock on the conflicting key, SQLite's one
//! writer).

use async_trait::async_trait;
use twinloop_core::Result;

use crate::sql::query::RowExt;
use crate::sql::{Backend, SqlStore};
use crate::store::LeaseStore;

impl SqlStore {
    /// The database's clock in ms since the epoch, so that expiry never compares two replicas'
    /// clocks.
    pub(super) fn db_now_ms(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        }
    }
}

#[async_trait]
impl LeaseStore for SqlStore {
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<i64>> {
        let now = self.db_now_ms();
        let mut sql = self.sql("INSERT INTO leases (name, holder, token, expires_at) VALUES (");
        sql.arg(name)
            .push(", ")
            .arg(holder)
            .push(&format!(", 1, {now} + "))
            .arg(ttl_ms)
            .push(&format!(
                ") ON CONFLICT (name) DO UPDATE SET \
                 token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END, \
                 holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= {now} RETURNING token"
            ));
        match sql.fetch_optional(&self.writer).await? {
            Some(row) => Ok(Some(row.int(0)?)),
            None => Ok(None),
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let mut sql = self.sql("UPDATE leases SET expires_at = 0 WHERE name = ");
        sql.arg(name).push(" AND holder = ").arg(holder);
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn lease_cursor(&self, name: &str) -> Result<Option<i64>> {
        let mut sql = self.sql("SELECT cursor FROM leases WHERE name = ");
        sql.arg(name);
        match sql.fetch_optional(&self.writer).await? {
            Some(row) => row.opt_int(0),
            None => Ok(None),
        }
    }

    async fn advance_lease(&self, name: &str, token: i64, cursor: i64) -> Result<bool> {
        let now = self.db_now_ms();
        let mut sql = self.sql("UPDATE leases SET cursor = ");
        sql.arg(cursor)
            .push(" WHERE name = ")
            .arg(name)
            .push(" AND token = ")
            .arg(token)
            .push(&format!(" AND expires_at > {now}"));
        Ok(sql.execute(&self.writer).await? == 1)
    }
}
