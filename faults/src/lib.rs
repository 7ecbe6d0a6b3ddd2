//! A fault-injecting SQLite VFS for tests: power loss, I/O errors and full disks.
//!
//! `litekeep-faults` wraps SQLite's default VFS (unix) and passes everything through, counting
//! the file operations, until told to:
//!
//! 1. **cut the power** ([`CrashAt`]): the writes of each file since its last `xSync` are
//!    *held*; at the crash point a seeded random subset of them (or all, or none: [`Keep`])
//!    is left on disk, one possibly torn at a 512-byte sector boundary, and the process ends
//!    with `_exit(`[`EXIT_CRASHED`]`)`. Run the code under test in a child process, then open
//!    the files from the parent and check them;
//! 2. **fail the Nth operation** of a kind ([`Op`]) with its extended code
//!    (`SQLITE_IOERR_READ`, `..._WRITE`, `..._FSYNC`, `..._TRUNCATE`, `..._LOCK`,
//!    `SQLITE_CANTOPEN` for opens), once or from then on;
//! 3. **report a full disk**: `SQLITE_FULL` for a write once a budget of growth (bytes written
//!    past a file's end, over all files) would be exceeded.
//!
//! [`counters`] tell how many operations of each kind ran and how many faults were injected,
//! so a test can run a workload once without faults, read the counts, and then run it again
//! crashing or failing at each point in turn.
//!
//! # Use
//!
//! ```no_run
//! use litekeep_faults::{Config, Op, VFS_NAME};
//! use rusqlite::{Connection, OpenFlags};
//!
//! litekeep_faults::register().unwrap();
//! let _serial = litekeep_faults::exclusive(); // the configuration is process-wide
//! let conn = Connection::open_with_flags_and_vfs("t.db", OpenFlags::default(), VFS_NAME)?;
//! conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x)")?;
//!
//! litekeep_faults::configure(Config::new().fail_once(Op::Sync, 1));
//! let err = conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
//! assert_eq!(err.sqlite_error().unwrap().extended_code, rusqlite::ffi::SQLITE_IOERR_FSYNC);
//! assert_eq!(litekeep_faults::counters().faults, 1);
//! # Ok::<(), rusqlite::Error>(())
//! ```
//!
//! [`register_as_default`] makes it the default VFS too, so that code opening with a plain
//! `Connection::open` (the litekeep library) goes through it.
//!
//! ## Child processes
//!
//! A child (the test binary re-executed, with a role in its environment) calls
//! [`init_from_env`], which reads [`ENV_VAR`] (`LK_FAULTS`), registers the VFS (as the default
//! if the value says `default`) and configures it. [`Config`]'s `Display` writes that value:
//!
//! ```text
//! LK_FAULTS="crash=sync:3;seed=7;tear"        cut instead of the 3rd xSync, seeded subset, one torn
//! LK_FAULTS="default;crash=random:40;seed=2"  cut at a random write/sync/truncate among the first 40
//! LK_FAULTS="crash=manual;keep=none"          hold writes; cut_power() loses all unsynced ones
//! LK_FAULTS="fail=write:5"                    the 5th xWrite fails with SQLITE_IOERR_WRITE
//! LK_FAULTS="fail=read:1+;full=1048576"       every xRead fails; SQLITE_FULL past 1 MiB growth
//! LK_FAULTS="thread=litekeep-checkpoint;fail=sync:1+"
//!                                             every xSync of that thread fails, no other
//! ```
//!
//! The full syntax is in [`config`](mod@crate::config). A child whose power was cut exits with
//! [`EXIT_CRASHED`] (86) after one line on stderr saying what reached the disk.
//!
//! To try every sync point of a workload: run the child once without `LK_FAULTS` and have it
//! print [`counters`] where it matters (say, before and after the commit under test), then
//! re-run it cutting at each of those points, with a few seeds:
//!
//! ```no_run
//! use litekeep_faults::{Config, ENV_VAR, EXIT_CRASHED, Op};
//! use std::process::Command;
//!
//! let (before, after) = (6, 9); // syncs counted by the child's run without faults
//! for n in before + 1..=after {
//!     for seed in 1..=3 {
//!         let faults = Config::new().crash_at(Op::Sync, n).seed(seed).tear(true);
//!         let status = Command::new(std::env::current_exe().unwrap())
//!             .args(["--exact", "child_process_entry", "--nocapture"])
//!             .env(ENV_VAR, faults.to_string()) // "crash=sync:7;tear;seed=1"
//!             .status()
//!             .unwrap();
//!         assert_eq!(status.code(), Some(EXIT_CRASHED));
//!         // Open the database with the plain VFS: integrity_check, synced rows all there.
//!     }
//! }
//! ```
//!
//! Tests of one binary run on parallel threads, and the configuration is process-wide: those
//! that configure the VFS in-process hold [`exclusive`]'s guard.
//!
//! [`harness`] has the rest of what such a test needs: children with roles, marked lines,
//! timeouts, kills, ledgers, seeds for replay, scratch directories and checks with the plain
//! VFS.
//!
//! # What SQLite does (counted with this VFS, unix, `synchronous=FULL`)
//!
//! - `journal_mode=DELETE`, one commit: journal header and page records written, journal
//!   synced, the header rewritten with the record count, journal synced again (unix does not
//!   claim `SQLITE_IOCAP_SAFE_APPEND`), database pages written, database synced, journal
//!   deleted. Three sync points; the commit point is the delete, so a cut at any write or sync
//!   of the commit rolls it back.
//! - WAL, one commit: frames (a 24-byte header and a page, two writes each) appended, the WAL
//!   synced once. One sync point; a cut there that keeps every frame whole keeps the commit.
//!   The closing checkpoint writes the pages to the database, syncs the WAL, truncates the
//!   database to its size, syncs it, and deletes the WAL.
//! - `synchronous=OFF` never syncs: a cut can lose or corrupt anything since the last sync,
//!   which this VFS reproduces (see the crate's `power_loss` tests).
//!
//! # Design
//!
//! Our `sqlite3_vfs` has the real VFS's `szOsFile` plus a small header; our `sqlite3_file`
//! (the header) points to the real file, allocated right after it, and its method table (of
//! the real file's version, 3 for unix) passes `xLock`, `xUnlock`, `xCheckReservedLock`,
//! `xFileControl`, `xSectorSize`, `xDeviceCharacteristics`, the shared-memory methods and
//! `xFetch`/`xUnfetch` straight through: locking, WAL and other processes work as with the
//! plain VFS. The `-shm` file is the real VFS's business and is never held (after a cut, the
//! next process to open the database finds no other connection and rebuilds the WAL index from
//! the WAL file).
//!
//! **Held writes are write-through with an undo log**, not an in-memory overlay: each write
//! and truncate of a database, journal or WAL file reaches the real file at once, and the log
//! keeps, per file, each operation since that file's last successful `xSync` with the bytes it
//! overwrote or cut off. Reads, file sizes, other connections, other processes and `mmap` all
//! see the latest contents, as an OS page cache would show them; a process that ends without a
//! cut (normally, by a panic, or by SIGKILL) leaves the latest contents, as a process crash
//! without power loss does. At a cut, each file is rolled back to its last-synced state and the
//! chosen operations are replayed in order. An in-memory overlay would hide unsynced writes
//! from the file's other handles, from other processes and from `mmap`, which a page cache does
//! not, and would lose them when the process ends any other way.
//!
//! **Truncates are held like writes**: SQLite truncates journals and WAL files between syncs
//! (in `journal_mode=TRUNCATE` the truncate of the journal *is* the commit), and whether such a
//! truncate reached the disk before the cut is exactly what a test wants explored; applying
//! them as durable at once would skip those states. A sync of any handle of a file makes every
//! handle's writes to it durable (`fsync` flushes the inode).
//!
//! Operations are counted over all files (temporary ones too) from the last [`configure`] or
//! [`reset_counters`]; the Nth is 1-based. With a crash point, writes are held from the
//! [`configure`] call on: earlier unsynced writes count as durable.
//!
//! # Limits
//!
//! - Creating and deleting files are durable at once. A real file system can lose an unlink
//!   not followed by a directory sync: in `journal_mode=DELETE`, SQLite only syncs the
//!   directory after deleting the journal at `synchronous=EXTRA`, so at `FULL` a real power
//!   cut can bring back a committed transaction's journal and roll it back. This VFS does not
//!   simulate that.
//! - A power cut is one process's: other processes must not write the same files while a
//!   cut is armed (rolling a file back would also take back their writes), and must not keep
//!   the database open across the cut (their WAL index would not be rebuilt).
//! - The growth budget counts `xWrite`s only (not files grown by `xTruncate` or by the real
//!   VFS on its own, e.g. `SQLITE_FCNTL_SIZE_HINT` with a chunk size); shrinking refunds
//!   nothing.
//! - A torn write is cut at a 512-byte boundary of the file; the unix VFS reports 4096-byte
//!   sectors, so SQLite assumes less than this may happen.
//! - While a crash point is armed, held writes, truncates and syncs run under the VFS's
//!   process-wide mutex (so a cut never sees half of one): I/O through the VFS is serialized.

#![deny(missing_docs)]

pub mod config;
mod file;
pub mod harness;
mod held;
mod state;
mod vfs;

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use config::{Config, CrashAt, Fail, Keep, Op, ParseError};
pub use state::{Counters, EXIT_CRASHED};

/// The name the VFS is registered under, for `Connection::open_with_flags_and_vfs`.
pub const VFS_NAME: &str = "litekeep-faults";

/// The environment variable [`init_from_env`] reads: a [`Config`] in its text form.
pub const ENV_VAR: &str = "LK_FAULTS";

/// What can go wrong setting the VFS up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// [`ENV_VAR`] does not follow the syntax.
    Parse(ParseError),
    /// SQLite refused the VFS.
    Register(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(e) => write!(f, "{ENV_VAR}: {e}"),
            Error::Register(why) => write!(f, "could not register the {VFS_NAME} VFS: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Parse(e) => Some(e),
            Error::Register(_) => None,
        }
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Error {
        Error::Parse(e)
    }
}

/// Registers the VFS under [`VFS_NAME`], wrapping the default VFS. Does not change the default;
/// once registered, calling it again does nothing.
pub fn register() -> Result<(), Error> {
    vfs::register(false)
}

/// Registers the VFS and makes it the process's default VFS: `Connection::open` goes through
/// it from now on (connections already open keep theirs).
pub fn register_as_default() -> Result<(), Error> {
    vfs::register(true)
}

/// Sets the process-wide configuration, zeroes the [`counters`] and forgets held writes (they
/// count as durable). Takes effect for the next operation of every open file.
pub fn configure(config: Config) {
    state::state().configure(config);
}

/// The configuration in force.
pub fn config() -> Config {
    state::state().config.clone()
}

/// The counts since the last [`configure`] or [`reset_counters`].
pub fn counters() -> Counters {
    state::state().snapshot()
}

/// Zeroes the counters; the Nth operations of the configuration count from here. Held writes
/// stay held.
pub fn reset_counters() {
    state::state().reset_counters();
}

/// For a child process: if [`ENV_VAR`] is set (and not blank), registers the VFS (as the
/// default if it says `default`) and configures it; gives the configuration. Without the
/// variable it does nothing and gives `None`.
pub fn init_from_env() -> Result<Option<Config>, Error> {
    let Some(text) = std::env::var_os(ENV_VAR) else {
        return Ok(None);
    };
    let text = text
        .into_string()
        .map_err(|_| ParseError("not valid UTF-8".to_owned()))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let config: Config = text.parse()?;
    if config.default_vfs {
        register_as_default()?;
    } else {
        register()?;
    }
    configure(config.clone());
    Ok(Some(config))
}

/// Cuts the power now: leaves on disk what the configuration's [`Keep`] and tear choose of the
/// held writes, and ends the process with [`EXIT_CRASHED`]. Without a crash point configured
/// (not even [`CrashAt::Manual`]) nothing is held, so every write stays: a plain process crash.
pub fn cut_power() -> ! {
    state::state().cut("by cut_power()")
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds [`exclusive`]'s lock; dropping it configures no faults and lets the next one in.
#[derive(Debug)]
#[must_use = "the configuration is only yours while the guard lives"]
pub struct Exclusive {
    _serial: MutexGuard<'static, ()>,
}

/// Serializes the tests of one process that configure the VFS (the configuration and the
/// counters are process-wide, and tests run on parallel threads): waits for the previous
/// holder, then configures no faults. The guard configures no faults again when dropped.
pub fn exclusive() -> Exclusive {
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    configure(Config::new());
    Exclusive { _serial: serial }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        configure(Config::new());
    }
}
