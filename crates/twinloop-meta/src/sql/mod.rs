//! [`SqlStore`]: the SQL implementation of every store trait for SQLite and PostgreSQL, one area
//! per file, each file implementing its trait directly (experiments, runs, logged models,
//! `registry/`, lineage, webhooks, features, deployments, monitors). Both backends speak the same
//! SQL (`ON CONFLICT`, `RETURNING`) through sqlx's `Any` driver; the few dialect differences live
//! in [`Backend`], in `query.rs`'s placeholders and in the two migration folders, which define the
//! same tables (`tests/meta/schema_agreement.rs`).
//!
//! SQLite gets one writer connection and a pool of readers: WAL lets readers run beside the
//! writer, and a single writer never meets `SQLITE_BUSY` on a lock upgrade. Reads of many rows
//! (`Reader`) bypass sqlx on SQLite: `native_sqlite.rs` runs them on a blocking thread.

mod auth;
mod checkpointer;
mod deployments;
mod documents;
mod experiments;
mod features;
mod filter;
mod history;
mod keys;
mod leases;
mod lineage;
mod logged_models;
mod monitors;
mod native_sqlite;
mod native_writer;
mod pairs;
mod pipelines;
mod query;
mod registry;
mod rollups;
mod run_columns;
mod run_search;
mod runs;
mod series;
mod summaries;
mod uri;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use crate::store::RegistryEventLog;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Executor};
use twinloop_core::{Error, Result};

pub use keys::MAX_KEY_LIMIT;
pub use summaries::{MAX_SUMMARY_KEYS, MAX_SUMMARY_RUNS};
pub use uri::StoreUri;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct SqlStore {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    /// Large reads (metric history, run and version searches) go through this pool.
    bulk_reader: query::Reader,
    /// SQLite's `log_batch` writer, which takes `writer`'s connection as its lock.
    native_writer: Option<native_writer::NativeWriter>,
    /// Where new experiments' artifact locations go (`mlflow-artifacts:/`, a directory, `s3://…`),
    /// as [`crate::experiment_root`] made it.
    artifact_root: String,
    /// Committed registry events, this process's and other replicas', for in-process
    /// subscribers.
    feed: Arc<registry::tail::EventFeed>,
    /// Dropped with the store, which ends the event tail.
    _tail: tokio::sync::oneshot::Sender<()>,
}

/// `wal_autocheckpoint` is the WAL's bound: below it, commits leave checkpoints to the
/// checkpointer's thread (`checkpointer.rs`).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON; \
     PRAGMA wal_autocheckpoint = 8192;";

/// How a store is opened, beyond its location.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// How long a request may wait for a connection (SQLite's one writer, a reader, a
    /// PostgreSQL connection) before it is refused `Unavailable`, unwritten: under overload the
    /// queue for the database is bounded by time, whatever the writer's speed, and during a
    /// PostgreSQL outage (sqlx retries a refused connection until then) a client hears soon
    /// that it should retry, as the stock MLflow client does with a 503.
    pub max_wait: Duration,
}

impl Default for OpenOptions {
    /// Several times a normal burst's queue on a slow disk, far below a client's 30 s timeout.
    fn default() -> Self {
        OpenOptions {
            max_wait: Duration::from_secs(5),
        }
    }
}

impl SqlStore {
    /// Opens (creating if needed) the store at `uri` and brings its schema up to date.
    /// New experiments' artifact locations go under `artifact_root` (see
    /// [`crate::experiment_root`]), as MLflow's `--default-artifact-root`.
    pub async fn open(uri: &StoreUri, artifact_root: &str) -> Result<SqlStore> {
        SqlStore::open_with(uri, artifact_root, OpenOptions::default()).await
    }

    /// [`SqlStore::open`] with `options`.
    pub async fn open_with(
        uri: &StoreUri,
        artifact_root: &str,
        options: OpenOptions,
    ) -> Result<SqlStore> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::internal_from("cannot read the working directory", e))?;
        let artifact_root = crate::experiment_root(artifact_root, &cwd)?;
        install_default_drivers();
        let (backend, writer, reader, bulk_reader, native_writer) = match uri {
            StoreUri::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::internal_from(format!("cannot create {}", parent.display()), e)
                    })?;
                }
                let url = uri.sqlx_url();
                let writer = sqlite_writer(&url, options.max_wait).await?;
                let reader = sqlite_pool(&url, 4, options.max_wait).await?;
                let bulk = query::Reader::Sqlite(native_sqlite::SqliteReader::new(path));
                let native = native_writer::NativeWriter::start(path, writer.clone())?;
                (Backend::Sqlite, writer, reader, bulk, Some(native))
            }
            StoreUri::Postgres(_) => {
                let url = uri.sqlx_url();
                // A query a client gave up on (a costly search) would otherwise run on in
                // PostgreSQL long after its request is gone. A URI that sets its own
                // `options=-c statement_timeout=…` keeps it.
                let limit = !url.contains("statement_timeout");
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(options.max_wait)
                    .acquire_slow_threshold(options.max_wait)
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            if limit {
                                conn.execute(PG_STATEMENT_TIMEOUT).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_lazy(&url)
                    .map_err(|e| Error::internal_from(format!("cannot connect to {uri}"), e))?;
                first_connection(&pool)
                    .await
                    .map_err(|e| Error::internal_from(format!("cannot connect to {uri}"), e))?;
                (
                    Backend::Postgres,
                    pool.clone(),
                    pool.clone(),
                    query::Reader::Any(pool),
                    None,
                )
            }
        };
        let (tail, stop) = tokio::sync::oneshot::channel();
        let store = SqlStore {
            backend,
            writer,
            reader,
            bulk_reader,
            native_writer,
            artifact_root,
            feed: registry::tail::EventFeed::new(),
            _tail: tail,
        };
        store.migrate().await?;
        if let Some(native) = &store.native_writer {
            // A WAL left by a crash is folded back in the background, not by the first write.
            native.checkpoint_soon();
        }
        store.ensure_default_experiment().await?;
        // Events committed before this process started are history, read with `?after=`.
        let floor = store.latest_registry_event_id().await?;
        let pg_url = matches!(uri, StoreUri::Postgres(_)).then(|| uri.sqlx_url());
        registry::tail::spawn(
            backend,
            store.reader.clone(),
            pg_url,
            store.feed.clone(),
            floor,
            stop,
        );
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn sql(&self, text: &str) -> query::Sql {
        query::Sql::new(self.backend, text)
    }

    async fn migrate(&self) -> Result<()> {
        let result = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.writer).await,
            Backend::Postgres => {
                // Building an index on a large table may take longer than a request may.
                let mut conn = self.writer.acquire().await.map_err(db_err)?;
                let limit: String = sqlx::query_scalar("SHOW statement_timeout")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db_err)?;
                conn.execute("SET statement_timeout = 0")
                    .await
                    .map_err(db_err)?;
                let migrated = sqlx::migrate!("migrations/postgres").run(&mut *conn).await;
                sqlx::query(&format!(
                    "SET statement_timeout = '{}'",
                    limit.replace('\'', "")
                ))
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
                migrated
            }
        };
        result.map_err(|e| Error::internal_from("database migration failed", e))
    }

    pub async fn close(&self) {
        if let Some(native) = &self.native_writer {
            native.close();
        }
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// A database that is up accepts a connection in milliseconds; one that takes longer is treated
/// as down by the breaker that probes it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[async_trait::async_trait]
impl crate::store::HealthStore for SqlStore {
    /// A connection of its own, outside the pools: their queue may be long under load while the
    /// database is fine.
    async fn probe(&self) -> Result<()> {
        let options = self.reader.connect_options();
        let answered = tokio::time::timeout(PROBE_TIMEOUT, async {
            let mut conn = sqlx::AnyConnection::connect_with(&options).await?;
            conn.execute("SELECT 1").await?;
            conn.close().await
        })
        .await;
        match answered {
            Ok(answered) => answered.map_err(db_err),
            Err(_) => Err(Error::unavailable(format!(
                "The metadata store accepted no connection within {} ms; retry",
                PROBE_TIMEOUT.as_millis()
            ))),
        }
    }
}

/// How long a starting server waits for PostgreSQL (replicas started with their database).
const PG_STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Waits for the pool's first connection, up to [`PG_STARTUP_WAIT`].
async fn first_connection(pool: &AnyPool) -> std::result::Result<(), sqlx::Error> {
    let deadline = std::time::Instant::now() + PG_STARTUP_WAIT;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(e) if unreachable(&e) && std::time::Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
    }
}

/// Longer than any request of a client that has not given up (MLflow's client waits 120 s in
/// all, over its retries).
const PG_STATEMENT_TIMEOUT: &str = "SET statement_timeout = '60s'";

async fn sqlite_pool(url: &str, connections: u32, max_wait: Duration) -> Result<AnyPool> {
    sqlite_options(connections, max_wait)
        .connect(url)
        .await
        .map_err(|e| cannot_open(url, e))
}

/// The writer's pool, whose one connection is closed when a transaction left it out of step
/// with SQLite. On some errors (a full disk, an I/O error) SQLite rolls the whole transaction
/// back by itself; sqlx's ROLLBACK then fails and sqlx goes on counting a transaction open, so
/// its next `begin` is a SAVEPOINT, and a failure inside that leaves a transaction open that the
/// later commits (RELEASEs of inner savepoints) never end: writes acknowledged, visible to no
/// reader, lost with the connection (found by the fault suite's full disk). A new connection
/// starts in step.
async fn sqlite_writer(url: &str, max_wait: Duration) -> Result<AnyPool> {
    sqlite_options(1, max_wait)
        .after_release(|conn, _meta| {
            Box::pin(async move {
                // Queued after the ROLLBACK of a dropped transaction, so both answers below are
                // about the connection as the next caller would get it. SQLite refuses BEGIN
                // inside a transaction.
                let closed = conn.execute("BEGIN").await.is_ok();
                if closed {
                    conn.execute("ROLLBACK").await?;
                }
                Ok(closed && !conn.is_in_transaction())
            })
        })
        .connect(url)
        .await
        .map_err(|e| cannot_open(url, e))
}

/// A wait within `max_wait` is the queue doing its job, not a warning (sqlx warns past 2 s,
/// which under load was nearly every request).
fn sqlite_options(connections: u32, max_wait: Duration) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(max_wait)
        .acquire_slow_threshold(max_wait)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                Ok(())
            })
        })
}

fn cannot_open(url: &str, e: sqlx::Error) -> Error {
    Error::internal_from(format!("cannot open SQLite database {url}"), e)
}

/// Maps a database failure to the error a caller sees. The database's own text names tables,
/// columns and statements, so it never reaches the message: a failure that is ours gets an id,
/// logged with the cause, that an operator can find from what the client shows. Constraint
/// violations and values the database cannot hold are the caller's doing.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    if matches!(e, sqlx::Error::PoolTimedOut) {
        // Under overload this is the queue's time budget doing its job, request after request:
        // not a warning. During an outage the server's breaker says so, once.
        let id = error_id();
        tracing::info!(error_id = %id, "no database connection within the wait budget");
        return Error::unavailable(format!(
            "The metadata store is busy or cannot be reached right now; retry (error id {id})"
        ))
        .with_hidden_source(e);
    }
    if unreachable(&e) {
        let id = error_id();
        tracing::warn!(error_id = %id, error = %e, "database unreachable");
        return Error::unavailable(format!(
            "The metadata store cannot be reached right now; retry (error id {id})"
        ))
        .with_hidden_source(e);
    }
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return Error::already_exists(
                "The resource already exists (a concurrent request may have created it)",
            )
            .with_hidden_source(e);
        }
        // PostgreSQL's class 22, data exceptions: a NUL character, a value too long or out of
        // range for its column.
        if db.code().is_some_and(|c| c.starts_with("22")) {
            let id = error_id();
            tracing::info!(error_id = %id, error = %e, "value refused by the database");
            return Error::invalid(format!(
                "Invalid value: the store cannot hold one of the request's values (error id {id})"
            ))
            .with_hidden_source(e);
        }
    }
    db_failure(e)
}

/// Whether `e` says the database cannot be reached, is restarting or has no connection to
/// spare, rather than that it refused the request: a retry may succeed.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's connection exceptions (class 08), shutdown, crash and start-up (57P01–3)
        // and too many connections (53300).
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// A failure of ours in the database (any driver): the client gets an id, the log gets it with
/// the cause.
pub(crate) fn db_failure(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    let id = error_id();
    tracing::error!(error_id = %id, error = %e, "database error");
    Error::internal(format!(
        "Database failure (error id {id}; the server's log has the details)"
    ))
    .with_hidden_source(e)
}

/// A short id that ties a client's error to the server's log line.
fn error_id() -> String {
    twinloop_core::ids::new_uuid()[..8].to_string()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use twinloop_core::ErrorKind;

    use super::*;

    #[test]
    fn a_database_failure_keeps_the_sqlx_error_as_its_source() {
        let e = db_err(sqlx::Error::Protocol("unexpected message".into()));
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(matches!(
            e.source().and_then(|s| s.downcast_ref::<sqlx::Error>()),
            Some(sqlx::Error::Protocol(_))
        ));
        // The driver's words stay out of what a client sees; the id ties it to the log.
        assert!(
            e.message.starts_with("Database failure (error id "),
            "{}",
            e.message
        );
        assert!(!e.message.contains("unexpected message"));
    }

    /// SQLite rolls a transaction back by itself on some errors (a full disk in the fault suite;
    /// here `RAISE(ROLLBACK)`), and sqlx keeps counting it open; a plain failure in the next
    /// transaction must not leave the writer in a transaction that later commits never end.
    #[tokio::test]
    async fn the_writer_commits_after_sqlite_rolled_a_transaction_back_by_itself() {
        install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let writer = sqlite_writer(&url, OpenOptions::default().max_wait)
            .await
            .unwrap();
        writer
            .execute(
                "CREATE TABLE t (x INTEGER CHECK (x <> 0)); \
                 CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.x < 0 \
                 BEGIN SELECT RAISE(ROLLBACK, 'refused'); END;",
            )
            .await
            .unwrap();
        let insert = |x: i64| sqlx::query("INSERT INTO t VALUES ($1)").bind(x);

        let mut tx = writer.begin().await.unwrap();
        assert!(insert(-1).execute(&mut *tx).await.is_err());
        drop(tx);
        let mut tx = writer.begin().await.unwrap();
        assert!(insert(0).execute(&mut *tx).await.is_err());
        drop(tx);
        let mut tx = writer.begin().await.unwrap();
        insert(1).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();

        let reader = sqlite_pool(&url, 1, OpenOptions::default().max_wait)
            .await
            .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&reader)
            .await
            .unwrap();
        assert_eq!(
            rows, 1,
            "the committed row is visible to another connection"
        );
    }

    /// The queue for the writer is bounded by time: a write that waited past the budget is
    /// refused as a retryable `Unavailable` before it began, and the writer serves the next.
    #[tokio::test]
    async fn a_write_that_waited_past_the_budget_is_refused_before_it_began() {
        install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let budget = Duration::from_millis(200);
        let writer = sqlite_writer(&url, budget).await.unwrap();
        writer.execute("CREATE TABLE t (x INTEGER)").await.unwrap();

        let held = writer.begin().await.unwrap();
        let began = std::time::Instant::now();
        let refused = writer.begin().await.map_err(db_err).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Unavailable);
        assert!(refused.message.contains("retry"), "{}", refused.message);
        assert!(
            began.elapsed() >= budget,
            "refused before the budget ran out"
        );
        drop(held);

        let mut tx = writer.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_reachable_database_answers_the_probe() {
        use crate::store::HealthStore;
        let dir = tempfile::tempdir().unwrap();
        let uri: StoreUri = format!("sqlite:///{}", dir.path().join("t.db").display())
            .parse()
            .unwrap();
        let store = SqlStore::open(&uri, "mlflow-artifacts:/").await.unwrap();
        store.probe().await.unwrap();
    }

    #[test]
    fn an_unreachable_database_is_unavailable_not_internal() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for cause in [sqlx::Error::PoolTimedOut, sqlx::Error::Io(refused)] {
            let text = cause.to_string();
            let e = db_err(cause);
            assert_eq!(e.kind, ErrorKind::Unavailable, "{text}");
            assert!(e.message.contains("retry"), "{}", e.message);
            assert!(!e.message.contains(&text), "{}", e.message);
            assert!(e.source().is_some());
        }
    }
}
