//! A cross-process lock with timeout that names its holder and never deadlocks on re-entry.
//!
//! litekeep takes this lock on a sidecar file, `<db>.lock`, to serialize schema setup,
//! migration and recovery of a SQLite database across processes, threads and async tasks:
//!
//! ```
//! use std::time::Duration;
//! use litekeep_lock::{FileLock, LockError, Wait};
//! # fn main() -> Result<(), LockError> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path();
//! let lock = FileLock::for_database(dir.join("app.db"))?.with_label("migrate");
//! match lock.exclusive(Wait::Timeout(Duration::from_secs(10))) {
//!     Ok(_guard) => { /* migrate: every other process waits */ }
//!     // "timed out after 10.0 s waiting for exclusive lock on app.db.lock:
//!     //  held by pid 4242 (litekeep migrate) on host h for 12.3 s"
//!     Err(e @ LockError::Timeout { .. }) => eprintln!("{e}"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! What it guarantees, and how:
//! - **Processes** exclude each other through `flock(2)`; the kernel drops a dead holder's lock
//!   at once, so locks are never stale. util-linux `flock(1)` on the same file interoperates.
//! - **Threads and tasks** of one process share one descriptor per file (a registry keyed by
//!   device and inode) and one in-process state, which hands the lock between them through a
//!   condvar without touching the disk.
//! - **Re-entry** by a thread (or task) that already holds the lock is refused at once with
//!   [`LockError::WouldDeadlock`] instead of hanging, or counted when asked for
//!   ([`FileLock::acquire_reentrant`]).
//! - **Holders are named**: an exclusive holder writes pid, host, label and start time into the
//!   lock file; on Linux that record is checked against `/proc/locks`, so a crashed holder's
//!   stale record or a foreign tool's lock is reported as what it is.
//! - **Waiting and fairness**: flock has no timed wait and lets a process that re-takes the
//!   lock in a loop win nearly every race. Where the lock file can carry it (Linux, a writable
//!   file whose second page can be allocated), waiting processes queue by ticket on a futex in
//!   a shared mapping of that page, the "bell": the process that lets the lock go wakes the
//!   waiter whose turn it is, and a process that did not queue goes ahead of waiters for at
//!   most a slice (1 ms shared among the waiters, at least 100 µs). Waiting processes get the
//!   lock in the order they asked: each holds its place with a POSIX read lock on one byte per
//!   ticket, which the kernel drops with the process, so only a dead waiter's turn is skipped
//!   (dead turns in a row all at once), and a turn that lasts 250 ms lets the others try too.
//!   A waiter sleeps until it is rung, looking on its own every 1 ms in its turn and up to
//!   every 8 ms far back in the queue (so a long queue does not wake the machine up thousands
//!   of times a second for nothing). The bell's page names
//!   its layout; a process that finds another one (another version beside it in a rolling
//!   deploy) uses no bell on that file. Where there is no bell, waiters poll
//!   (50 µs to 1 ms) and mark themselves with a POSIX record lock, and a process that has
//!   kept the lock for a 2 ms slice (timed on the kernel's coarse clock, so up to one tick,
//!   1 to 10 ms) lets a marked waiter go first. Either way a waiter's wait stays bounded.
//! - **Failures** of the lock file's own I/O (a full disk, `EIO` on its reads and writes) cost
//!   the bell and the holder's label at most: exclusion, timeouts that name the holder's pid, and
//!   handoffs hold (tested with real processes).
//! - **Async** acquisition (feature `tokio`) never blocks the executor.
//!
//! See [`FileLock`] for the notes on advisory locks, `fork`, and network filesystems.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

// flock(2), POSIX record locks and the `std::os::unix` file APIs the lock is built on have no
// equivalent there: say so instead of failing on a missing import.
#[cfg(not(unix))]
compile_error!(
    "litekeep-lock supports Linux (tested) and other Unix systems (untested) only: it is built \
     on flock(2) and POSIX record locks, which this target does not have"
);

#[cfg(feature = "tokio")]
mod async_lock;
mod bell;
mod clock;
mod error;
mod file_lock;
mod filesystem;
mod holder;
mod mode;
mod os;
mod registry;
mod sidecar;
#[cfg(loom)]
pub mod state;
#[cfg(not(loom))]
mod state;
mod sync;

pub use error::LockError;
pub use file_lock::{FileLock, LockGuard, lock_path_for, write_gate_path_for};
pub use filesystem::Filesystem;
pub use holder::Holder;
pub use mode::{Mode, Wait};
pub use sidecar::{Found, check_sidecar, open_sidecar};
