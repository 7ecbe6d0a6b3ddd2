//! Checkpoints off the commit path: the writer's WAL hook hands the copying of the WAL back
//! into the database to a thread of the handle's own, and catches up inline only when a few
//! frames are left.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000 frames:
//! it copies those frames into the database and syncs it, and the commit's caller waits for
//! all of it. With `synchronous = NORMAL` a commit costs about 20 µs and that checkpoint
//! 14–21 ms on this project's test machine: the slowest write of every writer, once every
//! 1,000 frames.
//!
//! A checkpoint on another connection, running beside the writer, copies without holding up
//! any commit (`PASSIVE`: it takes no lock a writer or reader waits for). But the WAL is
//! written from its beginning again only when a write transaction starts while every frame is
//! already back in the database, and under a steady stream of commits a checkpoint that takes
//! milliseconds never catches up: the WAL would grow without end. So the work is split:
//!
//! - the writer's hook ([`Checkpoints::after_commit`]), called by SQLite after every commit
//!   with the number of frames in the WAL, does nothing below [`THRESHOLD`] frames; past it, it
//!   wakes the checkpoint thread (a load and, once per round, a wake-up);
//! - the thread runs `PASSIVE` checkpoints back to back, each copying what the commits added
//!   during the one before, until one copies at most [`CATCH_UP`] frames (or [`MAX_ROUNDS`]),
//!   and says how far it got;
//! - the hook of the next commit that finds at most [`CATCH_UP`] frames left after the
//!   thread's last round copies them inline (a `PASSIVE` checkpoint of a few frames, and the
//!   sync), so the next write transaction starts the WAL over, as SQLite's own checkpoint
//!   would have. Where that moment does not come (writers in other processes add frames
//!   between this one's commits, their own checkpoint threads hold the lock), the hook copies
//!   inline once the WAL reaches [`FIRST_INLINE`] frames, and a [`THRESHOLD`] further after
//!   each inline checkpoint: by then the rounds have copied most of them. A checkpoint that
//!   finds another one running is tried again at the next commit.
//!
//! A checkpoint that fails, or finds readers still on old frames, is not an error (the commit
//! already succeeded): the next commit past the threshold tries again; the WAL's bound
//! ([`crate::wal`]) still cuts a WAL that grew too long. Where the thread cannot be started the
//! hook checkpoints inline, as SQLite does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use crate::durability::Durability;

/// Frames in the WAL from which a checkpoint is due: SQLite's own default
/// (`SQLITE_DEFAULT_WAL_AUTOCHECKPOINT`).
pub(crate) const THRESHOLD: u32 = 1000;

/// At most this many frames left are copied inline, in a commit (64 pages: a fraction of a
/// millisecond, most of it the sync).
pub(crate) const CATCH_UP: u32 = 64;

/// Frames from which the hook checkpoints inline whatever the thread's rounds did (two
/// thresholds: by then the rounds of some process have copied most of them).
const FIRST_INLINE: u32 = 2 * THRESHOLD;

/// At most this many checkpoints back to back per wake-up of the thread.
const MAX_ROUNDS: u32 = 4;

/// The least time between rounds that got nowhere and the next ones: readers that keep a
/// checkpoint from copying must not make the thread spin.
const PAUSE: Duration = Duration::from_millis(2);

/// One handle's checkpoints: the thread (started at the first checkpoint due) and what it and
/// the writer's hook share.
pub(crate) struct Checkpoints {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    path: PathBuf,
    durability: Durability,
    /// The thread's last round: frames in the WAL (high 32 bits) and frames copied back (low
    /// 32 bits), or 0 when the WAL started over since.
    reached: AtomicU64,
    /// The thread is running rounds or has been woken for them.
    busy: AtomicBool,
    /// From how many frames on the hook checkpoints inline whatever the rounds did: a
    /// [`THRESHOLD`] past the last inline checkpoint, [`FIRST_INLINE`] in a WAL started over.
    inline_from: AtomicU32,
    /// The thread could not be started: the hook checkpoints inline.
    no_thread: AtomicBool,
    wake: Mutex<Wake>,
    bell: Condvar,
}

#[derive(Default)]
struct Wake {
    wanted: bool,
    stop: bool,
}

/// What the hook did (for the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hooked {
    /// Below the threshold.
    Nothing,
    /// Past it: the thread was woken (or is at work already).
    Handed,
    /// A few frames were left: copied inline.
    CaughtUp,
    /// No thread: checkpointed inline, as SQLite does.
    Inline,
}

impl Checkpoints {
    /// The checkpoints of the database at `path`, whose writer commits with `durability` (the
    /// checkpoint connection syncs as the writer would).
    pub(crate) fn new(path: PathBuf, durability: Durability) -> Checkpoints {
        Checkpoints {
            shared: Arc::new(Shared {
                path,
                durability,
                reached: AtomicU64::new(0),
                busy: AtomicBool::new(false),
                inline_from: AtomicU32::new(FIRST_INLINE),
                no_thread: AtomicBool::new(false),
                wake: Mutex::new(Wake::default()),
                bell: Condvar::new(),
            }),
            thread: Mutex::new(None),
        }
    }

    /// Installs the hook on a writer connection (replacing SQLite's automatic checkpoint).
    pub(crate) fn install(self: &Arc<Self>, writer: &mut Connection) -> rusqlite::Result<()> {
        let me = Arc::downgrade(self);
        writer.wal_hook(Some(
            move |wal: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
                if let Some(me) = me.upgrade() {
                    me.after_commit(frames.max(0) as u32, || {
                        wal.checkpoint_v2(CheckpointMode::PASSIVE).map(|_| ())
                    });
                }
                // A commit succeeded whatever its checkpoint did: never an error here.
                Ok(())
            },
        ))
    }

    /// The hook: `frames` in the WAL after a commit; `checkpoint` runs a `PASSIVE` one inline.
    pub(crate) fn after_commit(
        &self,
        frames: u32,
        checkpoint: impl FnOnce() -> rusqlite::Result<()>,
    ) -> Hooked {
        let shared = &*self.shared;
        if frames < THRESHOLD {
            // The WAL started over: the next inline checkpoint is due at the first mark again.
            if shared.inline_from.load(Ordering::Relaxed) != FIRST_INLINE {
                shared.inline_from.store(FIRST_INLINE, Ordering::Relaxed);
            }
            return Hooked::Nothing;
        }
        if shared.no_thread.load(Ordering::Relaxed) {
            let _ = checkpoint();
            return Hooked::Inline;
        }
        let reached = shared.reached.load(Ordering::Acquire);
        let (log, copied) = ((reached >> 32) as u32, reached as u32);
        // A round of this WAL (not of one before it started over) copied all but a few of the
        // frames there are now; or the WAL passed the mark (the rounds of this process could
        // not catch up: other processes' commits, their checkpoints holding the lock).
        let few_left = reached != 0 && log <= frames && frames - copied <= CATCH_UP;
        if (few_left || frames >= shared.inline_from.load(Ordering::Relaxed))
            && checkpoint().is_ok()
        {
            shared.reached.store(0, Ordering::Release);
            shared
                .inline_from
                .store(frames.saturating_add(THRESHOLD), Ordering::Relaxed);
            return Hooked::CaughtUp;
        }
        // (A checkpoint that found another one running is tried again at the next commit.)
        if !shared.busy.swap(true, Ordering::AcqRel) {
            self.wake();
        }
        Hooked::Handed
    }

    /// Wakes the thread, starting it the first time.
    fn wake(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_none() {
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("litekeep-checkpoint".into())
                .spawn(move || run(&shared))
            {
                Ok(handle) => *thread = Some(handle),
                Err(_) => {
                    self.shared.no_thread.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        drop(thread);
        let mut wake = self
            .shared
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        wake.wanted = true;
        drop(wake);
        self.shared.bell.notify_one();
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        let mut wake = self
            .shared
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        wake.stop = true;
        drop(wake);
        self.shared.bell.notify_one();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = thread.take() {
            let _ = handle.join();
        }
    }
}

/// The thread: waits to be woken, then runs rounds of checkpoints.
fn run(shared: &Shared) {
    let mut conn = None;
    let mut stalled = None::<Instant>;
    loop {
        {
            let mut wake = shared.wake.lock().unwrap_or_else(PoisonError::into_inner);
            while !wake.wanted && !wake.stop {
                wake = shared
                    .bell
                    .wait(wake)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if wake.stop {
                return;
            }
            wake.wanted = false;
        }
        // After rounds that got nowhere (readers, another checkpoint), a pause: the hooks of
        // the commits meanwhile must not make this thread spin.
        if let Some(since) = stalled.map(|t: Instant| t.elapsed())
            && since < PAUSE
        {
            std::thread::sleep(PAUSE - since);
        }
        if conn.is_none() {
            conn = open(shared).ok();
        }
        let progress = conn.as_ref().is_some_and(|conn| rounds(shared, conn));
        stalled = (!progress).then(Instant::now);
        shared.busy.store(false, Ordering::Release);
    }
}

/// The checkpoint connection: syncs as the writer does, never waits on a busy handler (a
/// `PASSIVE` checkpoint that finds another one running gives up).
fn open(shared: &Shared) -> rusqlite::Result<Connection> {
    let conn = Connection::open(&shared.path)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};",
        shared.durability.pragma()
    ))?;
    Ok(conn)
}

/// `PASSIVE` checkpoints back to back, each copying what the commits added during the one
/// before, until one copies at most [`CATCH_UP`] frames (the commits' hooks catch up on the
/// rest), the WAL started over, or [`MAX_ROUNDS`]. Whether they got there (not when another
/// checkpoint held the lock, readers kept frames from being copied, or a checkpoint failed).
fn rounds(shared: &Shared, conn: &Connection) -> bool {
    let mut before = None::<(i64, i64)>;
    for _ in 0..MAX_ROUNDS {
        let Ok((busy, log, copied)) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        }) else {
            return false;
        };
        if busy != 0 || log <= 0 || copied < 0 {
            return false;
        }
        let (log32, copied32) = (log.min(u32::MAX.into()) as u32, copied as u32);
        shared.reached.store(
            (u64::from(log32) << 32) | u64::from(copied32),
            Ordering::Release,
        );
        let (log_before, copied_before) = before.unwrap_or((0, 0));
        if log < log_before {
            // The WAL started over.
            return true;
        }
        if copied - copied_before <= i64::from(CATCH_UP) {
            // Little left to copy (or readers keep the rest): nothing more to gain now.
            return copied > copied_before || before.is_some();
        }
        before = Some((log, copied));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lk-ckpt-{name}-"))
            .tempdir()
            .unwrap();
        let path = dir.path().join("t.db");
        (dir, path)
    }

    /// A writer in WAL mode with the hook installed.
    fn writer(path: &std::path::Path) -> (Arc<Checkpoints>, Connection) {
        let mut conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE t (x BLOB);",
        )
        .unwrap();
        let cp = Arc::new(Checkpoints::new(path.to_path_buf(), Durability::Normal));
        cp.install(&mut conn).unwrap();
        (cp, conn)
    }

    /// The most frames the WAL ever held: a WAL file is written from its beginning again,
    /// never cut, so its length tells.
    fn most_frames(path: &std::path::Path) -> u64 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0, |m| m.len().saturating_sub(32) / (4096 + 24))
    }

    #[test]
    fn below_the_threshold_nothing_happens_and_past_it_the_thread_is_woken() {
        let (_dir, path) = scratch("hook");
        let cp = Checkpoints::new(path, Durability::Normal);
        assert_eq!(cp.after_commit(THRESHOLD - 1, || panic!()), Hooked::Nothing);
        assert_eq!(cp.after_commit(THRESHOLD, || panic!()), Hooked::Handed);
        assert!(
            cp.thread.lock().unwrap().is_some(),
            "the thread was not started"
        );
    }

    #[test]
    fn a_few_frames_left_after_the_threads_round_are_copied_inline() {
        let (_dir, path) = scratch("catch");
        let cp = Checkpoints::new(path, Durability::Normal);
        cp.shared
            .reached
            .store((1500u64 << 32) | 1500, Ordering::Release);
        let mut ran = false;
        let hooked = cp.after_commit(1500 + CATCH_UP, || {
            ran = true;
            Ok(())
        });
        assert_eq!(hooked, Hooked::CaughtUp);
        assert!(ran);
        // The round is used up: the next commit past the threshold wakes the thread.
        assert_eq!(cp.after_commit(1600, || panic!()), Hooked::Handed);
    }

    #[test]
    fn a_round_of_a_wal_that_started_over_since_is_not_caught_up_on() {
        let (_dir, path) = scratch("epoch");
        let cp = Checkpoints::new(path, Durability::Normal);
        // The round saw 3,000 frames; the WAL now has 1,010 (it started over and grew again).
        cp.shared
            .reached
            .store((3000u64 << 32) | 2990, Ordering::Release);
        assert_eq!(cp.after_commit(1010, || panic!()), Hooked::Handed);
    }

    #[test]
    fn past_the_mark_the_hook_checkpoints_inline_and_tries_again_while_another_runs() {
        let (_dir, path) = scratch("mark");
        let cp = Checkpoints::new(path, Durability::Normal);
        assert_eq!(
            cp.after_commit(FIRST_INLINE - 1, || panic!()),
            Hooked::Handed
        );
        // Another checkpoint holds the lock: handed on, tried again at the next commit.
        let busy = || {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            ))
        };
        assert_eq!(cp.after_commit(FIRST_INLINE, busy), Hooked::Handed);
        assert_eq!(
            cp.after_commit(FIRST_INLINE + 1, || Ok(())),
            Hooked::CaughtUp
        );
        // The next mark is a threshold further; a WAL started over brings the first back.
        assert_eq!(
            cp.after_commit(FIRST_INLINE + THRESHOLD, || panic!()),
            Hooked::Handed
        );
        assert_eq!(cp.after_commit(10, || panic!()), Hooked::Nothing);
        assert_eq!(cp.after_commit(FIRST_INLINE, || Ok(())), Hooked::CaughtUp);
    }

    #[test]
    fn without_the_thread_the_hook_checkpoints_inline() {
        let (_dir, path) = scratch("inline");
        let cp = Checkpoints::new(path, Durability::Normal);
        cp.shared.no_thread.store(true, Ordering::Relaxed);
        let mut ran = false;
        assert_eq!(
            cp.after_commit(THRESHOLD, || {
                ran = true;
                Ok(())
            }),
            Hooked::Inline
        );
        assert!(ran);
    }

    #[test]
    fn under_a_steady_stream_of_commits_the_wal_starts_over_and_stays_short() {
        let (_dir, path) = scratch("stream");
        let (cp, conn) = writer(&path);
        let mut insert = conn
            .prepare("INSERT INTO t (x) VALUES (zeroblob(200))")
            .unwrap();
        for _ in 0..20_000 {
            insert.execute([]).unwrap();
        }
        drop(insert);
        let most = most_frames(&path);
        // Every commit appends a frame or two: without the catch-up the WAL never starts over
        // (20,000 commits: tens of thousands of frames); with it, it stays within a few
        // thresholds (the thread's rounds take milliseconds).
        assert!(
            most < u64::from(THRESHOLD) * 8,
            "the WAL grew to {most} frames"
        );
        assert!(cp.thread.lock().unwrap().is_some(), "the thread never ran");
        assert_eq!(
            conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
                .unwrap(),
            "ok"
        );
    }
}
