//! The bound on the write-ahead log ([`Builder::wal_limit`](crate::Builder::wal_limit)):
//! checkpoint starvation, and the `TRUNCATE` checkpoint that ends it.
//!
//! SQLite moves the WAL's frames back into the database at its automatic checkpoints, but these
//! are `PASSIVE`: they never wait for a reader. The WAL is written from its beginning again only
//! once every frame is back in the database *and* no reader still uses one; under a steady stream
//! of overlapping read transactions (searcher processes) that moment never comes, and the file
//! grows for as long as writes go on ("checkpoint starvation", in SQLite's `wal.html`): 0.9 to
//! 1.0 GB in 30 s of the stress runner, until the disk stalled on writeback and a commit sat for
//! seconds in `fsync`.
//!
//! So every [`CHECK_EVERY`]-th commit of a handle (the first one included) looks at the size of
//! `<db>-wal` (one `stat`), and past the limit runs `PRAGMA wal_checkpoint(TRUNCATE)` on the
//! writer. That checkpoint takes SQLite's write lock, waits for the readers of old frames,
//! copies every frame back, waits until no reader uses the WAL (new readers then read the
//! database file only), and cuts the WAL to zero bytes. Its waits go through the busy handler,
//! lowered to [`WAIT`] for the call, so a write never stalls long on it, nor do the other
//! processes' writers waiting behind its write lock. When the readers do not let go in time
//! the checkpoint stops, having copied what it could; that is not an error, and the next check
//! tries again. Nothing the checkpoint returns reaches the caller: the commit already succeeded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// The default limit: 64 MiB.
pub(crate) const DEFAULT_LIMIT: u64 = 64 * 1024 * 1024;

/// Commits between two looks at the WAL's size.
pub(crate) const CHECK_EVERY: u64 = 64;

/// How long the checkpoint may wait for SQLite's write lock and for readers.
pub(crate) const WAIT: Duration = Duration::from_millis(200);

/// One handle's WAL bound: where the WAL is, the limit, and the commits counted so far.
pub(crate) struct WalBound {
    wal: PathBuf,
    /// `None`: no bound.
    limit: Option<u64>,
    commits: AtomicU64,
}

/// What a check did (for the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Not this commit's turn, or no bound.
    Skipped,
    /// The WAL was within the limit (or absent).
    Within,
    /// A checkpoint ran and reset the WAL.
    Truncated,
    /// A checkpoint ran, but readers (or another checkpointer) held on: try again next time.
    Busy,
    /// The checkpoint failed (an I/O error, say); ignored, the next check tries again.
    Failed,
}

impl WalBound {
    /// The bound of the database `db`, as the writer connection `writer` names it (SQLite puts
    /// the WAL next to the file it resolved, symbolic links followed); `limit` 0 is no bound.
    pub(crate) fn new(db: &Path, writer: &Connection, limit: u64) -> WalBound {
        let resolved = writer
            .path()
            .filter(|p| !p.is_empty())
            .map_or_else(|| db.to_path_buf(), PathBuf::from);
        let mut wal = OsString::from(resolved);
        wal.push("-wal");
        WalBound {
            wal: PathBuf::from(wal),
            limit: (limit > 0).then_some(limit),
            commits: AtomicU64::new(0),
        }
    }

    /// Called after each successful commit on `writer` (in autocommit again), whose busy
    /// timeout is `busy_timeout` and is restored to it.
    pub(crate) fn after_commit(&self, writer: &Connection, busy_timeout: Duration) -> Checked {
        let Some(limit) = self.limit else {
            return Checked::Skipped;
        };
        if !self
            .commits
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(CHECK_EVERY)
        {
            return Checked::Skipped;
        }
        match std::fs::metadata(&self.wal) {
            Ok(meta) if meta.len() > limit => truncate(writer, busy_timeout),
            _ => Checked::Within,
        }
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` with the busy handler lowered to [`WAIT`].
fn truncate(writer: &Connection, busy_timeout: Duration) -> Checked {
    if !writer.is_autocommit() || writer.busy_timeout(WAIT).is_err() {
        return Checked::Failed;
    }
    // One row: busy (1 when it could not finish), frames in the WAL, frames copied back.
    let outcome = writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    // sqlite3_busy_timeout cannot fail on an open connection; should it, the writer would only
    // wait less for the write lock, and `Database::write` retries busy transactions.
    let _ = writer.busy_timeout(busy_timeout);
    match outcome {
        Ok(0) => Checked::Truncated,
        Ok(_) => Checked::Busy,
        Err(e) if crate::retry::is_transient(&e) => Checked::Busy,
        Err(_) => Checked::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lk-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("t.db")
    }

    fn wal_db(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (x BLOB);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_wal_past_the_limit_is_cut_to_nothing_and_a_reader_makes_it_wait() {
        let path = scratch("cut");
        let conn = wal_db(&path);
        let bound = WalBound::new(&path, &conn, 64 * 1024);
        for _ in 0..40 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        let size = || std::fs::metadata(&bound.wal).map_or(0, |m| m.len());
        assert!(size() > 64 * 1024, "{}", size());
        // A reader in the middle of a transaction on old frames: the checkpoint gives up.
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
            .unwrap();
        assert_eq!(
            bound.after_commit(&conn, Duration::from_secs(7)),
            Checked::Busy
        );
        // The writer's busy timeout is back (PRAGMA busy_timeout reads it).
        let ms: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ms, 7000);
        // Not this commit's turn.
        assert_eq!(
            bound.after_commit(&conn, Duration::from_secs(7)),
            Checked::Skipped
        );
        reader.execute_batch("COMMIT").unwrap();
        for _ in 2..CHECK_EVERY {
            bound.after_commit(&conn, Duration::from_secs(7));
        }
        assert_eq!(
            bound.after_commit(&conn, Duration::from_secs(7)),
            Checked::Truncated
        );
        assert_eq!(size(), 0);
        assert_eq!(
            bound.after_commit(&conn, Duration::from_secs(7)),
            Checked::Skipped
        );
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 41);
        drop((conn, reader));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_limit_of_zero_never_checks() {
        let path = scratch("off");
        let conn = wal_db(&path);
        let bound = WalBound::new(&path, &conn, 0);
        conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
            .unwrap();
        for _ in 0..2 * CHECK_EVERY {
            assert_eq!(
                bound.after_commit(&conn, Duration::from_secs(1)),
                Checked::Skipped
            );
        }
        assert!(std::fs::metadata(&bound.wal).unwrap().len() > 0);
        drop(conn);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
