//! Large reads on SQLite, run through the C library on a blocking thread. sqlx's SQLite driver
//! hands every row from its worker thread to the task through a channel and builds a row object
//! per row; for a 10,000-point history or a page of runs with their params and tags that
//! hand-off, not SQLite, was most of the time. Here a query runs start to finish on one
//! blocking thread with a cached prepared statement, and only its values cross threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::{Semaphore, mpsc};
use twinloop_core::{Error, Result};

use super::query::{Arg, RowExt};

/// Connections open at once: as many as sqlx's reader pool had.
const CONNECTIONS: usize = 4;

/// Page cache of each connection, in KiB. SQLite's default (2 MiB) holds a small fraction of a
/// tracking database, so a search over a few thousand runs read most of its pages back from the
/// OS on every call (a fifth of its time, profiled); the cache only fills as pages are read.
const CACHE_KIB: i64 = 32 * 1024;

/// Rows a streamed read decodes before handing them to the reader.
const STREAM_CHUNK: usize = 1024;

/// Chunks a streamed read runs ahead of its reader.
const STREAM_AHEAD: usize = 2;

/// Read-only connections to one SQLite file, opened when first needed and kept.
#[derive(Clone)]
pub(crate) struct SqliteReader {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    open: Arc<Semaphore>,
}

impl SqliteReader {
    pub fn new(path: &Path) -> SqliteReader {
        SqliteReader {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
                open: Arc::new(Semaphore::new(CONNECTIONS)),
            }),
        }
    }

    /// Runs `work` with a connection on a blocking thread.
    async fn with_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self
            .inner
            .open
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("the SQLite reader is closed"))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let connection = match inner.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(connection)) => connection,
                _ => connect(&inner.path)?,
            };
            let result = work(&connection);
            if let Ok(mut idle) = inner.idle.lock() {
                idle.push(connection);
            }
            result
        })
        .await
        .map_err(|e| Error::internal_from("a SQLite read stopped", e))?
    }

    /// All rows of `text` with `args`, as owned values.
    pub async fn read(&self, text: &str, args: &[Arg]) -> Result<Vec<OwnedRow>> {
        let text = text.to_owned();
        let args = args.to_vec();
        self.with_connection(move |connection| {
            let mut statement = connection.prepare_cached(&text).map_err(sqlite_err)?;
            let columns = statement.column_count();
            let mut rows = statement
                .query(rusqlite::params_from_iter(args.iter().map(bound)))
                .map_err(sqlite_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err)? {
                let values = (0..columns)
                    .map(|i| row.get_ref(i).map(Value::from))
                    .collect::<rusqlite::Result<Vec<Value>>>()
                    .map_err(sqlite_err)?;
                out.push(OwnedRow(values));
            }
            Ok(out)
        })
        .await
    }

    /// All rows of `text` with `args`, each decoded on the blocking thread straight from
    /// SQLite's buffers: no row of owned values is built first, which for 10,000 model versions
    /// was as many allocations again as the decoded values themselves.
    pub async fn read_as<T: Send + 'static>(
        &self,
        text: &str,
        args: &[Arg],
        decode: impl Fn(&dyn RowExt) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        let text = text.to_owned();
        let args = args.to_vec();
        self.with_connection(move |connection| {
            let mut statement = connection.prepare_cached(&text).map_err(sqlite_err)?;
            let mut rows = statement
                .query(rusqlite::params_from_iter(args.iter().map(bound)))
                .map_err(sqlite_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err)? {
                out.push(decode(row)?);
            }
            Ok(out)
        })
        .await
    }

    /// Decodes the rows of `text` on the blocking thread and hands them over in chunks; the
    /// read stops when the returned receiver is dropped.
    pub fn stream<T: Send + 'static>(
        &self,
        text: &str,
        args: &[Arg],
        decode: impl Fn(&dyn RowExt) -> Result<T> + Send + 'static,
    ) -> mpsc::Receiver<Result<Vec<T>>> {
        let (chunks, received) = mpsc::channel(STREAM_AHEAD);
        let text = text.to_owned();
        let args = args.to_vec();
        let reader = self.clone();
        tokio::spawn(async move {
            let sender = chunks.clone();
            let read = reader.with_connection(move |connection| {
                let mut statement = connection.prepare_cached(&text).map_err(sqlite_err)?;
                let mut rows = statement
                    .query(rusqlite::params_from_iter(args.iter().map(bound)))
                    .map_err(sqlite_err)?;
                let mut chunk = Vec::with_capacity(STREAM_CHUNK);
                while let Some(row) = rows.next().map_err(sqlite_err)? {
                    chunk.push(decode(row)?);
                    if chunk.len() == STREAM_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(STREAM_CHUNK));
                        if sender.blocking_send(Ok(full)).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = sender.blocking_send(Ok(chunk));
                }
                Ok(())
            });
            if let Err(e) = read.await {
                // The reader may be gone already; then nobody is left to tell.
                let _ = chunks.send(Err(e)).await;
            }
        });
        received
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|e| {
        Error::internal_from(format!("cannot open SQLite database {}", path.display()), e)
    })?;
    connection
        .busy_timeout(Duration::from_secs(10))
        .and_then(|()| connection.pragma_update(None, "case_sensitive_like", "ON"))
        .and_then(|()| connection.pragma_update(None, "cache_size", -CACHE_KIB))
        .map_err(sqlite_err)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

fn bound(arg: &Arg) -> &dyn ToSql {
    match arg {
        Arg::Text(s) => s,
        Arg::Float(v) => v,
        Arg::Int(v) => v,
        Arg::OptText(v) => v,
        Arg::OptInt(v) => v,
    }
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    super::db_failure(e)
}

/// One row's values, read out of SQLite.
pub(crate) struct OwnedRow(Vec<Value>);

impl OwnedRow {
    fn value(&self, idx: usize) -> Result<ValueRef<'_>> {
        self.0
            .get(idx)
            .map(ValueRef::from)
            .ok_or_else(|| Error::internal(format!("no column {idx} in the row")))
    }
}

impl RowExt for OwnedRow {
    fn text(&self, idx: usize) -> Result<String> {
        required(self.opt_text(idx)?, idx)
    }
    fn opt_text(&self, idx: usize) -> Result<Option<String>> {
        opt_text(self.value(idx)?, idx)
    }
    fn int(&self, idx: usize) -> Result<i64> {
        required(self.opt_int(idx)?, idx)
    }
    fn opt_int(&self, idx: usize) -> Result<Option<i64>> {
        opt_int(self.value(idx)?, idx)
    }
    fn float(&self, idx: usize) -> Result<f64> {
        required(self.opt_float(idx)?, idx)
    }
    fn opt_float(&self, idx: usize) -> Result<Option<f64>> {
        opt_float(self.value(idx)?, idx)
    }
}

impl RowExt for rusqlite::Row<'_> {
    fn text(&self, idx: usize) -> Result<String> {
        required(self.opt_text(idx)?, idx)
    }
    fn opt_text(&self, idx: usize) -> Result<Option<String>> {
        opt_text(self.get_ref(idx).map_err(sqlite_err)?, idx)
    }
    fn int(&self, idx: usize) -> Result<i64> {
        required(self.opt_int(idx)?, idx)
    }
    fn opt_int(&self, idx: usize) -> Result<Option<i64>> {
        opt_int(self.get_ref(idx).map_err(sqlite_err)?, idx)
    }
    fn float(&self, idx: usize) -> Result<f64> {
        required(self.opt_float(idx)?, idx)
    }
    fn opt_float(&self, idx: usize) -> Result<Option<f64>> {
        opt_float(self.get_ref(idx).map_err(sqlite_err)?, idx)
    }
}

fn required<T>(value: Option<T>, idx: usize) -> Result<T> {
    value.ok_or_else(|| Error::internal(format!("column {idx} is NULL")))
}

fn wrong_type(idx: usize, wanted: &str, found: ValueRef<'_>) -> Error {
    Error::internal(format!(
        "column {idx} holds {:?}, not {wanted}",
        found.data_type()
    ))
}

fn opt_text(value: ValueRef<'_>, idx: usize) -> Result<Option<String>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|e| Error::internal_from(format!("column {idx} is not UTF-8"), e)),
        other => Err(wrong_type(idx, "text", other)),
    }
}

fn opt_int(value: ValueRef<'_>, idx: usize) -> Result<Option<i64>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(v) => Ok(Some(v)),
        other => Err(wrong_type(idx, "an integer", other)),
    }
}

/// SQLite stores a REAL that happens to be whole as an INTEGER when the column has no REAL
/// affinity, so both are floats here, as sqlx reads them.
fn opt_float(value: ValueRef<'_>, idx: usize) -> Result<Option<f64>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Real(v) => Ok(Some(v)),
        ValueRef::Integer(v) => Ok(Some(v as f64)),
        other => Err(wrong_type(idx, "a float", other)),
    }
}
