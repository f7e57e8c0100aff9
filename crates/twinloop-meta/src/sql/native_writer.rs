//! The hot tracking write (`log_batch`, which `log-metric`, `log-parameter` and `set-tag` are
//! too) on SQLite, through the C library on one thread of its own. Through sqlx each statement
//! crossed from the task to sqlx's worker thread and back; at a few hundred statements per
//! batch those hand-offs, not SQLite, were most of a batch's time (issue 14's profile). Here the
//! thread owns a connection with prepared statements cached, takes batches from a channel and
//! writes every batch waiting then in one transaction (group commit), one savepoint each, so a
//! batch is still all or nothing and its fate is its own. A batch is acknowledged only after the
//! COMMIT that holds it returned: with WAL and `synchronous = FULL`, as on sqlx's connections,
//! it survives a crash from then on.
//!
//! SQLite has one writer at a time, and two connections that both write meet `SQLITE_BUSY`,
//! which `busy_timeout` does not always wait out (a deferred transaction that read before it
//! wrote cannot wait and is refused). So the two writers do not compete: the sqlx writer pool's
//! one connection is the write lock, and this thread holds it (unused) while its transaction
//! runs. Every other write of the store goes through that pool as before, and waits its turn.
//!
//! A request's wait is measured from when it was queued to when its transaction begins; a
//! request that waited longer than the sqlx writer pool's acquire timeout is refused unwritten
//! with the error of a timed-out acquire, so one budget bounds the queue of both writers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use sqlx::AnyPool;
use tokio::sync::oneshot;
use twinloop_core::ids::is_run_id;
use twinloop_core::run_columns::KeyKind;
use twinloop_core::tracking::{LifecycleStage, Metric, Param, Tag};
use twinloop_core::{Error, Result};

use super::checkpointer::Checkpointer;
use super::query::encode_metric_value;
use super::runs::{RUN_NAME_TAG, param_changed, require_active, run_not_found};
use super::{db_err, db_failure, keys, rollups, summaries};

/// Most batches written in one transaction: bounds how long the write lock is held while
/// others' writes wait.
const MAX_GROUP: usize = 64;

/// Page cache of the writer's connection, in KiB: the indexes a batch updates stay in memory.
const CACHE_KIB: i64 = 32 * 1024;

/// One `log_batch` request.
pub(crate) struct Batch {
    pub run_id: String,
    pub metrics: Vec<Metric>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

struct Job {
    batch: Batch,
    queued: Instant,
    done: oneshot::Sender<Result<()>>,
}

/// The handle requests are sent through; the thread ends when it is dropped or closed, once it
/// has written what was queued.
pub(crate) struct NativeWriter {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    checkpointer: Checkpointer,
}

impl NativeWriter {
    /// Starts the writer of the SQLite file at `path`, which writes while it holds `lock`'s
    /// connection. Must be called inside a tokio runtime: the lock is taken through it.
    pub fn start(path: &Path, lock: AnyPool) -> Result<NativeWriter> {
        let (jobs, queue) = mpsc::channel();
        let checkpointer = Checkpointer::start(path)?;
        let thread = Thread {
            path: path.to_path_buf(),
            lock,
            runtime: tokio::runtime::Handle::current(),
            connection: None,
            checkpointer: checkpointer.clone(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || thread.run(queue))
            .map_err(|e| Error::internal_from("cannot start the SQLite writer", e))?;
        Ok(NativeWriter {
            jobs: Mutex::new(Some(jobs)),
            checkpointer,
        })
    }

    /// Asks for a WAL checkpoint in the background.
    pub fn checkpoint_soon(&self) {
        self.checkpointer.wake();
    }

    /// Writes `batch` in one transaction; answers once it is committed (or refused).
    pub async fn log_batch(&self, batch: Batch) -> Result<()> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            batch,
            queued: Instant::now(),
            done,
        };
        let jobs = self.jobs.lock().ok().and_then(|jobs| jobs.clone());
        jobs.ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

/// A closed writer answers as the closed sqlx pool does.
fn stopped() -> Error {
    db_err(sqlx::Error::PoolClosed)
}

struct Thread {
    path: PathBuf,
    lock: AnyPool,
    runtime: tokio::runtime::Handle,
    /// Opened at the first batch (after the migrations), dropped when it may be out of step.
    connection: Option<Connection>,
    checkpointer: Checkpointer,
}

impl Thread {
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        // The lock's connection goes back to its pool through a task when dropped here.
        let _runtime = self.runtime.enter();
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.write_group(group);
        }
    }

    fn write_group(&mut self, group: Vec<Job>) {
        let lock = match self.runtime.block_on(self.lock.acquire()) {
            Ok(lock) => lock,
            Err(e) => return refuse(group, &db_err(e)),
        };
        let budget = self.lock.options().get_acquire_timeout();
        let (late, group): (Vec<Job>, Vec<Job>) = group
            .into_iter()
            .partition(|job| job.queued.elapsed() > budget);
        if let Some(first) = late.first() {
            let waited = first.queued.elapsed();
            tracing::warn!(
                batches = late.len(),
                ?waited,
                "log_batch waited past its budget"
            );
            refuse(late, &db_err(sqlx::Error::PoolTimedOut));
        }
        if group.is_empty() {
            return;
        }
        let connection = match self.connection() {
            Ok(connection) => connection,
            Err(e) => return refuse(group, &e),
        };
        let written = write_group(connection, group);
        if written.is_err() || !connection.is_autocommit() {
            // Closing a connection rolls back what it left open; the next group opens a new one.
            self.connection = None;
        }
        drop(lock);
        if let Ok(written) = written {
            self.checkpointer.wake();
            for job in written {
                let _ = job.done.send(Ok(()));
            }
        }
    }

    fn connection(&mut self) -> Result<&Connection> {
        if self.connection.is_none() {
            self.connection = Some(connect(&self.path)?);
        }
        self.connection
            .as_ref()
            .ok_or_else(|| Error::internal("no SQLite writer connection"))
    }
}

fn refuse(jobs: Vec<Job>, e: &Error) {
    for job in jobs {
        let _ = job.done.send(Err(e.clone()));
    }
}

/// The pragmas of the store's sqlx connections (`SQLITE_PRAGMAS`): durability is theirs. But
/// not their foreign-key checks: every row a batch writes references its run (or the run's
/// experiment), which [`write`] reads first inside the same transaction, under the write lock
/// that every delete also needs, so the per-row lookups of the run a check would make (over a
/// thousand per batch) could only find it.
fn connect(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).map_err(|e| {
        Error::internal_from(format!("cannot open SQLite database {}", path.display()), e)
    })?;
    connection
        .execute_batch(super::SQLITE_PRAGMAS)
        .and_then(|()| connection.pragma_update(None, "foreign_keys", false))
        .and_then(|()| connection.pragma_update(None, "cache_size", -CACHE_KIB))
        .map_err(db_failure)?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

/// Writes the group in one transaction and returns the jobs it committed, the others answered
/// already; on `Err` every job has been answered and the transaction may still be open.
fn write_group(c: &Connection, group: Vec<Job>) -> std::result::Result<Vec<Job>, ()> {
    if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
        refuse(group, &db_failure(e));
        return Err(());
    }
    if group.len() == 1 {
        return write_alone(c, group);
    }
    let mut written = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    while let Some(job) = jobs.next() {
        match write_one(c, &job.batch) {
            Ok(()) => written.push(job),
            Err(Failure::Batch(e)) => {
                let _ = job.done.send(Err(e));
            }
            Err(Failure::Group(e)) => {
                written.push(job);
                written.extend(jobs);
                refuse(written, &e);
                return Err(());
            }
        }
    }
    match c.execute_batch("COMMIT") {
        Ok(()) => Ok(written),
        Err(e) => {
            refuse(written, &db_failure(e));
            Err(())
        }
    }
}

/// A group of one batch, whose transaction is already its all-or-nothing: a savepoint would
/// only copy every page the batch first touches into the statement journal (6 % of the server's
/// CPU for lone 1,000-metric batches, by perf).
fn write_alone(c: &Connection, group: Vec<Job>) -> std::result::Result<Vec<Job>, ()> {
    let written = write(c, &group[0].batch);
    if let Err(e) = written {
        let lost = c.is_autocommit() || c.execute_batch("ROLLBACK").is_err();
        refuse(group, &e);
        return if lost { Err(()) } else { Ok(Vec::new()) };
    }
    match c.execute_batch("COMMIT") {
        Ok(()) => Ok(group),
        Err(e) => {
            refuse(group, &db_failure(e));
            Err(())
        }
    }
}

enum Failure {
    /// The batch was refused and undone; the group's transaction goes on.
    Batch(Error),
    /// The transaction cannot be trusted any more (SQLite ended it itself on a full disk or an
    /// I/O error, or a savepoint could not be undone): no batch in it may be acknowledged.
    Group(Error),
}

/// One batch inside the group's transaction, under a savepoint of its own.
fn write_one(c: &Connection, batch: &Batch) -> std::result::Result<(), Failure> {
    c.execute_batch("SAVEPOINT batch")
        .map_err(|e| Failure::Group(db_failure(e)))?;
    let written = write(c, batch);
    if c.is_autocommit() {
        let e = written
            .err()
            .unwrap_or_else(|| Error::internal("the transaction ended"));
        return Err(Failure::Group(e));
    }
    let end = if written.is_ok() {
        "RELEASE batch"
    } else {
        "ROLLBACK TO batch; RELEASE batch"
    };
    c.execute_batch(end)
        .map_err(|e| Failure::Group(db_failure(e)))?;
    written.map_err(Failure::Batch)
}

fn write(c: &Connection, b: &Batch) -> Result<()> {
    let run_id = b.run_id.as_str();
    if !is_run_id(run_id) {
        return Err(run_not_found(run_id));
    }
    let run: Option<(String, i64)> = c
        .prepare_cached("SELECT lifecycle_stage, experiment_id FROM runs WHERE run_uuid = ?1")
        .and_then(|mut s| {
            s.query_row([run_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(db_failure)?;
    let (stage, experiment_id) = run.ok_or_else(|| run_not_found(run_id))?;
    require_active(run_id, LifecycleStage::parse(&stage)?)?;
    write_params(c, run_id, experiment_id, &b.params)?;
    write_tags(c, run_id, experiment_id, &b.tags)?;
    write_metrics(c, run_id, experiment_id, &b.metrics)
}

/// Counts the keys the run has just been given for the first time (`keys.rs`).
fn count_new_keys(
    c: &Connection,
    experiment_id: i64,
    kind: KeyKind,
    mut new_keys: Vec<&str>,
) -> Result<()> {
    new_keys.sort_unstable();
    new_keys.dedup();
    let mut count = c
        .prepare_cached(&format!(
            "{}(?1, ?2, ?3, 1){}",
            keys::INSERT,
            keys::COUNT_ONE_MORE
        ))
        .map_err(db_failure)?;
    for key in new_keys {
        count
            .execute(params![experiment_id, kind.as_str(), key])
            .map_err(db_failure)?;
    }
    Ok(())
}

/// Params keep their first value; another value for a logged key refuses the batch.
fn write_params(c: &Connection, run_id: &str, experiment_id: i64, params: &[Param]) -> Result<()> {
    if params.is_empty() {
        return Ok(());
    }
    let mut insert = c
        .prepare_cached(
            "INSERT INTO params (run_uuid, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .map_err(db_failure)?;
    let mut stored = c
        .prepare_cached("SELECT value FROM params WHERE run_uuid = ?1 AND key = ?2")
        .map_err(db_failure)?;
    let mut new_keys = Vec::new();
    for p in params {
        if insert
            .execute(params![run_id, p.key, p.value])
            .map_err(db_failure)?
            == 1
        {
            new_keys.push(p.key.as_str());
            continue;
        }
        let old: String = stored
            .query_row(params![run_id, p.key], |row| row.get(0))
            .map_err(db_failure)?;
        if old != p.value {
            return Err(param_changed(run_id, p, &old));
        }
    }
    count_new_keys(c, experiment_id, KeyKind::Param, new_keys)
}

/// Tags take the last value written; `mlflow.runName` also renames the run, as in MLflow.
fn write_tags(c: &Connection, run_id: &str, experiment_id: i64, tags: &[Tag]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut insert = c
        .prepare_cached(
            "INSERT INTO tags (run_uuid, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .map_err(db_failure)?;
    let mut update = c
        .prepare_cached("UPDATE tags SET value = ?3 WHERE run_uuid = ?1 AND key = ?2")
        .map_err(db_failure)?;
    let mut new_keys = Vec::new();
    for t in tags {
        if insert
            .execute(params![run_id, t.key, t.value])
            .map_err(db_failure)?
            == 1
        {
            new_keys.push(t.key.as_str());
        } else {
            update
                .execute(params![run_id, t.key, t.value])
                .map_err(db_failure)?;
        }
    }
    count_new_keys(c, experiment_id, KeyKind::Tag, new_keys)?;
    if let Some(name) = tags.iter().rev().find(|t| t.key == RUN_NAME_TAG) {
        c.prepare_cached("UPDATE runs SET name = ?1 WHERE run_uuid = ?2")
            .and_then(|mut s| s.execute(params![name.value, run_id]))
            .map_err(db_failure)?;
    }
    Ok(())
}

/// The points, then their summaries and rollup cells from the points really added (a point
/// stored before, as in a retried batch, is not counted twice).
fn write_metrics(
    c: &Connection,
    run_id: &str,
    experiment_id: i64,
    metrics: &[Metric],
) -> Result<()> {
    if metrics.is_empty() {
        return Ok(());
    }
    let mut insert = c
        .prepare_cached(
            "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )
        .map_err(db_failure)?;
    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut inserted: Vec<&Metric> = Vec::with_capacity(metrics.len());
    for m in metrics {
        let (value, is_nan) = encode_metric_value(m.value);
        let added = insert
            .execute(params![run_id, m.key, m.step, m.timestamp, value, is_nan])
            .map_err(db_failure)?;
        if added == 1 {
            match stored.get_mut(&m.key) {
                Some(n) => *n += 1,
                None => {
                    stored.insert(m.key.clone(), 1);
                }
            }
            inserted.push(m);
        }
    }

    let mut summary = c
        .prepare_cached(&format!(
            "{}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9){}",
            summaries::INSERT,
            summaries::merge()
        ))
        .map_err(db_failure)?;
    let mut new_keys = Vec::new();
    for (key, s) in summaries::summarise(metrics, &stored) {
        let (value, is_nan) = encode_metric_value(s.latest.value);
        let count: i64 = summary
            .query_row(
                params![
                    run_id,
                    key,
                    s.latest.step,
                    s.latest.timestamp,
                    value,
                    is_nan,
                    s.min,
                    s.max,
                    s.count
                ],
                |row| row.get(1),
            )
            .map_err(db_failure)?;
        if summaries::is_new_key(s.count, count) {
            new_keys.push(key);
        }
    }
    count_new_keys(c, experiment_id, KeyKind::Metric, new_keys)?;

    let mut cell = c
        .prepare_cached(&format!(
            "{}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12){}",
            rollups::INSERT,
            rollups::MERGE
        ))
        .map_err(db_failure)?;
    for ((key, level, at), cells) in rollups::fold(inserted) {
        cell.execute(params![
            run_id,
            key,
            level,
            at,
            i64::try_from(cells.count).unwrap_or(i64::MAX),
            cells.min,
            cells.max,
            cells.last.step,
            cells.last.timestamp,
            cells.last.value,
            cells.min_timestamp,
            cells.max_timestamp,
        ])
        .map_err(db_failure)?;
    }

    let linked = metrics.iter().filter(|m| m.model_id.is_some());
    let mut link = c
        .prepare_cached(
            "INSERT INTO logged_model_metrics (model_id, run_uuid, key, step, timestamp, value, \
             is_nan, dataset_name, dataset_digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT DO NOTHING",
        )
        .map_err(db_failure)?;
    for m in linked {
        let (value, is_nan) = encode_metric_value(m.value);
        link.execute(params![
            m.model_id,
            run_id,
            m.key,
            m.step,
            m.timestamp,
            value,
            is_nan,
            m.dataset_name,
            m.dataset_digest
        ])
        .map_err(db_failure)?;
    }
    Ok(())
}
