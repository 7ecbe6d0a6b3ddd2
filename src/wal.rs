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
//!
//! With the write gate on, SQLite's own automatic checkpoint is split in two here
//! ([`WalBound::watch`]). SQLite runs it inside `COMMIT` (after its write lock is let go, but
//! before `COMMIT` returns), so every other process's writer waited behind the gate for the copy
//! and its `fsync`s: 4.4–5.0 s of a 15 s stress run. Run wholly after the gate is let go, it
//! never catches up with the writers appending meanwhile, the WAL never starts over, and every
//! commit ran one (half the single-row throughput). So a WAL hook on the writer only notes the
//! WAL's frames; a commit that left [`AUTO_CHECKPOINT`] of them or more (SQLite's threshold)
//! runs SQLite's `PASSIVE` checkpoint after letting the gate go, which copies the bulk while the
//! next writer writes; this process's next commit, still holding the gate, runs it again for
//! the frames appended meanwhile, so the WAL is whole in the database and the next writer
//! starts it over.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// The default limit: 64 MiB.
pub(crate) const DEFAULT_LIMIT: u64 = 64 * 1024 * 1024;

/// Commits between two looks at the WAL's size.
pub(crate) const CHECK_EVERY: u64 = 64;

/// How long the checkpoint may wait for SQLite's write lock and for readers.
pub(crate) const WAIT: Duration = Duration::from_millis(200);

/// Frames in the WAL from which a commit is followed by a `PASSIVE` checkpoint: SQLite's default
/// `wal_autocheckpoint`, in pages.
pub(crate) const AUTO_CHECKPOINT: u32 = 1000;

/// One handle's WAL bound: where the WAL is, the limit, and the commits counted so far.
pub(crate) struct WalBound {
    wal: PathBuf,
    /// `None`: no bound.
    limit: Option<u64>,
    commits: AtomicU64,
    /// The WAL's frames after the writer's last commit, as its WAL hook saw them (0 once a
    /// checkpoint was considered for them).
    frames: Arc<AtomicU32>,
    /// A checkpoint ran after the gate was let go; the next commit finishes it in the gate.
    owed: AtomicBool,
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
            frames: Arc::new(AtomicU32::new(0)),
            owed: AtomicBool::new(false),
        }
    }

    /// Replaces SQLite's automatic checkpoint on `writer` (it ran inside `COMMIT`) by a WAL hook
    /// that only counts the WAL's frames; [`WalBound::checkpoint_in_gate`] and
    /// [`WalBound::checkpoint_after_gate`] checkpoint.
    pub(crate) fn watch(&self, writer: &mut Connection) -> rusqlite::Result<()> {
        let frames = Arc::clone(&self.frames);
        writer.wal_hook(Some(move |_: &mut Wal, pages: std::ffi::c_int| {
            frames.store(u32::try_from(pages).unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }))
    }

    /// Called right after a successful commit, the gate still held: when the last commit's
    /// checkpoint ran out of the gate and the WAL has not started over since, the `PASSIVE`
    /// checkpoint again, for the frames appended while it ran.
    pub(crate) fn checkpoint_in_gate(&self, writer: &Connection) -> bool {
        if !self.owed.swap(false, Ordering::Relaxed)
            || self.frames.load(Ordering::Relaxed) < AUTO_CHECKPOINT
        {
            return false;
        }
        self.frames.store(0, Ordering::Relaxed);
        passive(writer);
        true
    }

    /// Called after a successful commit, the gate let go: the `PASSIVE` checkpoint SQLite would
    /// have run inside `COMMIT`, when the WAL holds [`AUTO_CHECKPOINT`] frames or more.
    pub(crate) fn checkpoint_after_gate(&self, writer: &Connection) -> bool {
        if self.frames.swap(0, Ordering::Relaxed) < AUTO_CHECKPOINT {
            return false;
        }
        passive(writer);
        self.owed.store(true, Ordering::Relaxed);
        true
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

/// `PRAGMA wal_checkpoint(PASSIVE)`: it never waits (a reader or another checkpointer in the
/// way only stops it early), and what it returns is ignored, as SQLite ignores it.
fn passive(writer: &Connection) {
    if writer.is_autocommit() {
        let _ = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
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
    fn the_gates_checkpoint_runs_after_the_gate_and_is_finished_in_it() {
        let path = scratch("gated");
        let mut conn = wal_db(&path);
        conn.execute_batch("PRAGMA wal_autocheckpoint = 1000")
            .unwrap();
        let bound = WalBound::new(&path, &conn, 0);
        bound.watch(&mut conn).unwrap();
        let commit = |conn: &Connection| {
            conn.execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .unwrap();
            bound.frames.load(Ordering::Relaxed)
        };
        // SQLite's automatic checkpoint no longer runs inside COMMIT: the WAL only grows, and
        // nothing is due until AUTO_CHECKPOINT frames.
        let mut frames = 0;
        while frames < AUTO_CHECKPOINT {
            let next = commit(&conn);
            assert!(next > frames, "{next} after {frames}: the WAL started over");
            frames = next;
            assert!(!bound.checkpoint_in_gate(&conn));
            if frames < AUTO_CHECKPOINT {
                assert!(!bound.checkpoint_after_gate(&conn));
            }
        }
        // Past it: the checkpoint after the gate. Another process's writer appends while it
        // runs (here: before it, with a reader holding the checkpoint to the frames before).
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute("INSERT INTO t VALUES (zeroblob(3000))", [])
            .unwrap();
        assert!(bound.checkpoint_after_gate(&conn));
        reader.execute_batch("COMMIT").unwrap();
        // So the WAL cannot start over at the next commit, which finishes the checkpoint in the
        // gate; the commit after that starts the WAL over.
        assert!(commit(&conn) > frames);
        assert!(bound.checkpoint_in_gate(&conn));
        assert!(!bound.checkpoint_after_gate(&conn), "already checkpointed");
        assert!(commit(&conn) < 10, "the WAL did not start over");
        assert!(!bound.checkpoint_in_gate(&conn));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert!(n > 2);
        drop((conn, reader, other));
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
