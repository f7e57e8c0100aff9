//! SQLite's WAL checkpoints, on a thread of their own. By default a connection checkpoints
//! inside the commit that takes the WAL past 1,000 pages: that commit copies every page back
//! to the database file and syncs it while its request waits, and every other write waits
//! behind it (7 % of the `log_batch` writer's time and the slow tail of its batches, profiled).
//! Here a thread checkpoints after commits instead, at most every [`PAUSE`], while writers go
//! on appending to the WAL. Connections still checkpoint themselves past 8,192 pages (32 MiB,
//! `wal_autocheckpoint` in the store's pragmas): if this thread falls behind (a long read pins
//! the WAL), the WAL stays bounded.
//!
//! A checkpoint is PASSIVE: it copies what no reader still needs, never waits for a lock, and
//! never blocks a writer. After kill -9 the WAL holds what was committed before the crash; the
//! store wakes this thread once it is open, so that WAL is folded back in the background too.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use twinloop_core::{Error, Result};

/// The least time between two checkpoints: under a steady stream of commits each checkpoint
/// then copies a few thousand pages and syncs once, as the default every 1,000 pages did.
const PAUSE: Duration = Duration::from_millis(100);

/// The handle writers wake the thread through; the thread ends when every clone is dropped.
#[derive(Clone)]
pub(crate) struct Checkpointer {
    wake: mpsc::SyncSender<()>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer> {
        // One pending wake-up is enough: the checkpoint that answers it copies everything
        // committed before it starts.
        let (wake, woken) = mpsc::sync_channel(1);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&path, &woken))
            .map_err(|e| Error::internal_from("cannot start the SQLite checkpointer", e))?;
        Ok(Checkpointer { wake })
    }

    /// Asks for a checkpoint of what has been committed so far; never blocks.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

fn run(path: &Path, woken: &mpsc::Receiver<()>) {
    let mut connection: Option<Connection> = None;
    while woken.recv().is_ok() {
        if connection.is_none() {
            connection = connect(path)
                .inspect_err(
                    |e| tracing::warn!(error = %e, "cannot open the checkpointer's connection"),
                )
                .ok();
        }
        if let Some(c) = &connection
            && let Err(e) = checkpoint(c)
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
            connection = None;
        }
        std::thread::sleep(PAUSE);
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.execute_batch(super::SQLITE_PRAGMAS)?;
    Ok(connection)
}

/// Returns the WAL's frames and how many of them are now in the database file.
fn checkpoint(c: &Connection) -> rusqlite::Result<(i64, i64)> {
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// The store's pragmas leave every commit below the fallback uncheckpointed, so pages reach
    /// the database file only through the thread.
    #[test]
    fn commits_below_the_fallback_reach_the_database_file_through_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = connect(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE t (v BLOB NOT NULL)")
            .unwrap();
        let before = file_len(&path);
        let blob = vec![7u8; 8 * 1024];
        for _ in 0..256 {
            writer
                .execute("INSERT INTO t (v) VALUES (?1)", [&blob])
                .unwrap();
        }
        // 2 MiB committed, far below the fallback: nothing has been copied back yet.
        assert_eq!(file_len(&path), before);
        let checkpointer = Checkpointer::start(&path).unwrap();
        checkpointer.wake();
        let deadline = Instant::now() + Duration::from_secs(30);
        while file_len(&path) < before + (2 << 20) {
            assert!(Instant::now() < deadline, "no checkpoint within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (frames, copied) = checkpoint(&writer).unwrap();
        assert_eq!(frames, copied);
    }

    #[test]
    fn the_pragmas_set_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let c = connect(&dir.path().join("t.db")).unwrap();
        let pages: u32 = c
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap();
        assert_eq!(pages, 8192);
    }
}
