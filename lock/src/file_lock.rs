//! [`FileLock`], the handle on a lock file, and [`LockGuard`], one acquisition of it.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::error::LockError;
use crate::filesystem::Filesystem;
use crate::holder::{self, Holder};
use crate::mode::{Mode, Wait};
use crate::registry::{self, Entry};
use crate::state::{Grant, Owner, Refusal, Request};

/// The lock file that guards the database at `db`: `<db>.lock`.
///
/// The lock is a sidecar file, never the database itself: closing any descriptor of a database
/// file drops every POSIX lock SQLite holds on it, so a lock taken on the database file by another
/// descriptor would break SQLite's own locking.
///
/// ```
/// use std::path::Path;
/// assert_eq!(litekeep_lock::lock_path_for("data/app.db"), Path::new("data/app.db.lock"));
/// ```
pub fn lock_path_for(db: impl AsRef<Path>) -> PathBuf {
    let mut name = OsString::from(db.as_ref().as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// The write gate of the database at `db`: `<db>.write.lock`.
///
/// Writers of every litekeep process take it exclusively around each write transaction, so
/// that they queue by ticket on the lock file's bell (a futex: woken the moment it frees, in
/// turn, with this crate's fairness slice) instead of sleeping and polling in SQLite's busy
/// handler. Migrations and repairs take it
/// too, after the schema lock on `<db>.lock`: the lock order is always schema lock first, gate
/// second, never the other way round. A second file rather than a byte range of `<db>.lock`:
/// flock has no ranges, POSIX record locks are per process (threads could not be told apart)
/// and OFD range locks would need a second locking scheme beside flock; a second flock file
/// reuses everything this crate already does (registry, fairness, naming the holder).
///
/// ```
/// use std::path::Path;
/// assert_eq!(litekeep_lock::write_gate_path_for("data/app.db"), Path::new("data/app.db.write.lock"));
/// ```
pub fn write_gate_path_for(db: impl AsRef<Path>) -> PathBuf {
    let mut name = OsString::from(db.as_ref().as_os_str());
    name.push(".write.lock");
    PathBuf::from(name)
}

/// A cross-process lock on a lock file, shared or exclusive, with a timeout that names the
/// holder.
///
/// Handles are cheap to clone and every handle on the same file in one process (however its path
/// is spelled) shares one descriptor and one in-process state, so threads, async tasks and
/// processes all exclude each other correctly. A thread that already holds the lock and asks
/// again gets [`LockError::WouldDeadlock`] at once, unless it asks for a reentrant guard
/// ([`FileLock::acquire_reentrant`]).
///
/// ```
/// use std::time::Duration;
/// use litekeep_lock::{FileLock, Wait};
/// # fn main() -> Result<(), litekeep_lock::LockError> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let lock = FileLock::for_database(dir.join("app.db"))?.with_label("schema setup");
/// {
///     let _guard = lock.exclusive(Wait::Timeout(Duration::from_secs(10)))?;
///     // … set WAL, create tables: no other process or thread is in here …
/// } // released here
/// let _readers = lock.shared(Wait::Forever)?;
/// # Ok(()) }
/// ```
///
/// # Notes on advisory locks
/// The lock is `flock(2)` on the lock file: advisory, so only processes that take it are
/// excluded, which is every litekeep process and util-linux `flock(1)` on the same file. The
/// kernel drops it when the holding process dies, even by SIGKILL, so it is never stale. The
/// lock file is created if missing and never deleted (deleting lock files races with processes
/// that have them open). Descriptors are close-on-exec.
///
/// # Fork
/// A child created by `fork` without `exec` shares the parent's descriptor, and flock locks
/// belong to the descriptor: the child holds whatever the parent held, and a guard dropped in the
/// child releases the lock for the parent too. Do not use a `FileLock` across `fork` without
/// `exec`; after `exec` the descriptor is closed (close-on-exec) and the child starts clean.
///
/// # Sidecar files
/// A lock file lives beside the database, often in a directory other users can write. So it
/// is never reached through a symbolic link (created with `O_EXCL`, opened with `O_NOFOLLOW`),
/// must be a regular file with one name, and, when it exists, must be empty (util-linux
/// `flock(1)` makes those) or carry litekeep's layout (a holder record of any version, or only
/// the bell's words): anything else is refused with [`LockError::Refused`] and never written
/// to. A new lock file of a database gets the database file's permissions, as SQLite's `-wal`
/// and `-shm` do. [`open_sidecar`](crate::open_sidecar) opens other files beside a database the
/// same way.
///
/// # Network filesystems
/// [`FileLock::filesystem`] tells whether the file is on NFS, CIFS or another network
/// filesystem, where flock may be emulated and SQLite's WAL mode is unsafe.
#[derive(Clone)]
pub struct FileLock {
    entry: Arc<Entry>,
    label: Arc<str>,
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLock")
            .field("path", &self.entry.path)
            .field("label", &self.label)
            .finish()
    }
}

impl FileLock {
    /// Opens (creating if missing) the lock file at `path`.
    ///
    /// The file is never reached through a symbolic link and must be empty or a lock file:
    /// see [Sidecar files](#sidecar-files). A new file gets the process's default permissions
    /// (its umask); [`FileLock::open_beside`] gives it a database's.
    ///
    /// # Errors
    /// [`LockError::Refused`] if something else is at `path` (a symbolic link, a directory, a
    /// FIFO, a device, a file with several names or another program's bytes);
    /// [`LockError::Open`] if the file can be neither opened nor created (missing directory,
    /// no permission).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// let lock = litekeep_lock::FileLock::open(dir.join("jobs.lock")).unwrap();
    /// assert!(lock.path().ends_with("jobs.lock"));
    /// assert!(litekeep_lock::FileLock::open("/no/such/dir/x.lock").is_err());
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<FileLock, LockError> {
        Ok(FileLock {
            entry: registry::entry_for(path.as_ref(), None)?,
            label: default_label(),
        })
    }

    /// Opens (creating if missing) the lock file at `path` that belongs to the database at
    /// `db`: a new file gets the permission bits of `db` (and, when this process is root, its
    /// owner and group), so that every user who may write the database may take the lock.
    ///
    /// # Errors
    /// As [`FileLock::open`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use std::os::unix::fs::PermissionsExt;
    /// let db = dir.join("app.db");
    /// std::fs::write(&db, b"").unwrap();
    /// std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o664)).unwrap();
    /// let lock = litekeep_lock::FileLock::open_beside(dir.join("app.db.jobs.lock"), &db).unwrap();
    /// let mode = std::fs::metadata(lock.path()).unwrap().permissions().mode();
    /// assert_eq!(mode & 0o777, 0o664);
    /// ```
    pub fn open_beside(
        path: impl AsRef<Path>,
        db: impl AsRef<Path>,
    ) -> Result<FileLock, LockError> {
        Ok(FileLock {
            entry: registry::entry_for(path.as_ref(), Some(db.as_ref()))?,
            label: default_label(),
        })
    }

    /// Opens the lock file of the database at `db` ([`lock_path_for`]).
    ///
    /// # Errors
    /// As [`FileLock::open`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// let lock = litekeep_lock::FileLock::for_database(dir.join("app.db")).unwrap();
    /// assert!(lock.path().ends_with("app.db.lock"));
    /// ```
    pub fn for_database(db: impl AsRef<Path>) -> Result<FileLock, LockError> {
        FileLock::open_beside(lock_path_for(&db), db)
    }

    /// Opens the write gate of the database at `db` ([`write_gate_path_for`]).
    ///
    /// # Errors
    /// As [`FileLock::open`].
    pub fn write_gate_for_database(db: impl AsRef<Path>) -> Result<FileLock, LockError> {
        FileLock::open_beside(write_gate_path_for(&db), db)
    }

    /// Names what this handle's holder does ("litekeep migrate"); the label is recorded in the
    /// lock file while it holds the lock exclusively and shows in other processes' timeout
    /// errors. Defaults to the program's name.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// let lock = litekeep_lock::FileLock::for_database(dir.join("app.db")).unwrap()
    ///     .with_label("nightly reindex");
    /// assert_eq!(lock.label(), "nightly reindex");
    /// ```
    pub fn with_label(mut self, label: impl AsRef<str>) -> FileLock {
        self.label = Arc::from(label.as_ref());
        self
    }

    /// The lock file's path (as first opened in this process).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// let lock = litekeep_lock::FileLock::open(dir.join("x.lock")).unwrap();
    /// assert!(lock.path().ends_with("x.lock"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.entry.path
    }

    /// This handle's label (the program's name unless set with [`FileLock::with_label`]).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// let lock = litekeep_lock::FileLock::open(dir.join("x.lock")).unwrap();
    /// assert!(!lock.label().is_empty());
    /// ```
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The kind of filesystem the lock file is on.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let lock = litekeep_lock::FileLock::open(tmp.path().join("app.db.lock")).unwrap();
    /// assert!(!lock.filesystem().is_network());
    /// ```
    pub fn filesystem(&self) -> Filesystem {
        self.entry.filesystem
    }

    /// Takes the lock exclusively, waiting as `wait` says.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] (with `Wait::None`) or [`LockError::Timeout`] when it is held
    /// elsewhere, naming the holder; [`LockError::WouldDeadlock`] when this thread holds it
    /// already; [`LockError::Io`] when the OS call fails.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep_lock::{FileLock, Mode, Wait};
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap();
    /// let guard = lock.exclusive(Wait::None).unwrap();
    /// assert_eq!(guard.mode(), Mode::Exclusive);
    /// ```
    #[inline(always)]
    pub fn exclusive(&self, wait: impl Into<Wait>) -> Result<LockGuard, LockError> {
        self.acquire(Mode::Exclusive, wait)
    }

    /// Takes the lock exclusively if that can be done now, without waiting: `Ok(None)` when it
    /// is held elsewhere (or refused for fairness, as [`Wait::None`] says). Unlike
    /// `exclusive(Wait::None)` a busy lock costs no search for its holder, so it suits a
    /// caller that tries on every operation and takes another path when the lock is busy.
    ///
    /// # Errors
    /// [`LockError::WouldDeadlock`] when this thread holds it already; [`LockError::Io`] when
    /// the OS call fails.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// use litekeep_lock::FileLock;
    /// let lock = FileLock::for_database(tmp.path().join("app.db")).unwrap();
    /// let held = lock.try_exclusive().unwrap();
    /// assert!(held.is_some(), "nobody held it");
    /// let again = std::thread::scope(|s| s.spawn(|| lock.try_exclusive().map(|g| g.is_some())).join().unwrap());
    /// assert_eq!(again.unwrap(), false, "busy while the first guard lives");
    /// ```
    pub fn try_exclusive(&self) -> Result<Option<LockGuard>, LockError> {
        let req = Request {
            mode: Mode::Exclusive,
            reentrant: false,
            label: &self.label,
        };
        let owner = Owner::current_thread();
        match self.entry.core.acquire(&req, owner, None, true) {
            Err(Refusal::WouldBlock) => Ok(None),
            result => self.finish(Mode::Exclusive, None, owner, result).map(Some),
        }
    }

    /// Takes the lock shared, waiting as `wait` says.
    ///
    /// # Errors
    /// As [`FileLock::exclusive`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep_lock::{FileLock, Wait};
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap();
    /// let a = lock.shared(Wait::None).unwrap();
    /// let b = std::thread::scope(|s| s.spawn(|| lock.shared(Wait::None).map(drop)).join().unwrap());
    /// assert!(b.is_ok(), "shared holders coexist");
    /// assert!(std::thread::scope(|s| s.spawn(|| lock.exclusive(Wait::None).is_err()).join().unwrap()));
    /// drop(a);
    /// ```
    #[inline(always)]
    pub fn shared(&self, wait: impl Into<Wait>) -> Result<LockGuard, LockError> {
        self.acquire(Mode::Shared, wait)
    }

    /// Takes the lock in `mode`, waiting as `wait` says.
    ///
    /// # Errors
    /// As [`FileLock::exclusive`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use std::time::Duration;
    /// use litekeep_lock::{FileLock, Mode};
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap();
    /// let _g = lock.acquire(Mode::Shared, Duration::from_millis(100)).unwrap();
    /// ```
    #[inline(always)]
    pub fn acquire(&self, mode: Mode, wait: impl Into<Wait>) -> Result<LockGuard, LockError> {
        self.acquire_as(mode, wait.into(), false, Owner::current_thread())
    }

    /// Like [`FileLock::acquire`], but if this thread already holds the lock the new guard only
    /// counts: the lock is released when the last of the thread's guards is dropped. An
    /// exclusive holder may take shared or exclusive guards this way; a shared holder asking for
    /// exclusive still gets [`LockError::WouldDeadlock`] (flock cannot upgrade atomically).
    ///
    /// # Errors
    /// As [`FileLock::exclusive`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep_lock::{FileLock, Mode, Wait};
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap();
    /// let outer = lock.exclusive(Wait::None).unwrap();
    /// let inner = lock.acquire_reentrant(Mode::Exclusive, Wait::None).unwrap();
    /// drop(outer);
    /// assert!(lock.holder().is_some(), "still held by the inner guard");
    /// drop(inner);
    /// assert!(lock.holder().is_none());
    /// ```
    pub fn acquire_reentrant(
        &self,
        mode: Mode,
        wait: impl Into<Wait>,
    ) -> Result<LockGuard, LockError> {
        self.acquire_as(mode, wait.into(), true, Owner::current_thread())
    }

    /// Who holds the lock now, in this process or another; `None` if nobody does (as far as
    /// can be seen: without `/proc/locks`, only this process and the record are visible).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep_lock::{FileLock, Wait};
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap().with_label("demo");
    /// let _g = lock.exclusive(Wait::None).unwrap();
    /// let h = lock.holder().unwrap();
    /// assert!(h.this_process);
    /// assert_eq!(h.label.as_deref(), Some("demo"));
    /// ```
    pub fn holder(&self) -> Option<Holder> {
        self.find_holder(Mode::Exclusive)
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn label_arc(&self) -> &Arc<str> {
        &self.label
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn core(&self) -> &crate::state::Core<crate::os::Descriptor> {
        &self.entry.core
    }

    #[inline(always)]
    pub(crate) fn acquire_as(
        &self,
        mode: Mode,
        wait: Wait,
        reentrant: bool,
        owner: Owner,
    ) -> Result<LockGuard, LockError> {
        let req = Request {
            mode,
            reentrant,
            label: &self.label,
        };
        // Read the clock only when a deadline needs it: it is a fair share of an uncontended
        // acquisition's cost.
        let start = match wait {
            Wait::Timeout(_) => Some(Instant::now()),
            Wait::None | Wait::Forever => None,
        };
        let (deadline, no_wait) = match (wait, start) {
            (Wait::Timeout(d), Some(start)) => (start.checked_add(d), false),
            (Wait::None, _) => (None, true),
            _ => (None, false),
        };
        let result = self.entry.core.acquire(&req, owner, deadline, no_wait);
        self.finish(mode, start, owner, result)
    }

    /// Turns the in-process state's answer into a guard or an error that names the holder.
    /// Inlined: the OS call of an uncontended acquisition is (see `Core::acquire`).
    #[inline(always)]
    pub(crate) fn finish(
        &self,
        mode: Mode,
        start: Option<Instant>,
        owner: Owner,
        result: Result<Grant, Refusal>,
    ) -> Result<LockGuard, LockError> {
        match result {
            Ok(grant) => {
                if let Some(since) = grant.write_record {
                    self.write_record(since);
                }
                Ok(LockGuard {
                    entry: self.entry.clone(),
                    owner,
                    mode: grant.mode,
                    released: false,
                })
            }
            Err(refusal) => Err(self.refused(mode, start, refusal)),
        }
    }

    /// Writes the holder record. Best effort: the lock holds without a record; the kernel still
    /// names us.
    #[inline(never)]
    fn write_record(&self, since: SystemTime) {
        let os = self.entry.core.os();
        if os.writable() {
            let _ = os.write_record(holder::format_record(&self.label, since).as_bytes());
        }
    }

    #[cold]
    #[inline(never)]
    fn refused(&self, mode: Mode, start: Option<Instant>, refusal: Refusal) -> LockError {
        let path = || self.entry.path.clone();
        match refusal {
            Refusal::WouldDeadlock { held } => LockError::WouldDeadlock {
                path: path(),
                held,
                wanted: mode,
            },
            Refusal::WouldBlock => LockError::WouldBlock {
                path: path(),
                wanted: mode,
                holder: self.find_holder(mode).map(Box::new),
            },
            Refusal::TimedOut => LockError::Timeout {
                path: path(),
                wanted: mode,
                waited: start.map(|s| s.elapsed()).unwrap_or_default(),
                holder: self.find_holder(mode).map(Box::new),
            },
            Refusal::Io(source) => LockError::Io {
                path: path(),
                op: "flock",
                source,
            },
        }
    }

    fn find_holder(&self, wanted: Mode) -> Option<Holder> {
        if let Some(local) = self.entry.core.local_holder(wanted) {
            let mut h = Holder::new(std::process::id(), local.mode);
            h.label = Some(local.label.to_string());
            h.host = Some(holder::host_name().to_owned());
            h.since = Some(local.since);
            h.this_process = true;
            h.others = local.others;
            return Some(h);
        }
        let (dev, ino) = self.entry.key;
        holder::foreign_holder(self.entry.core.os().file(), dev, ino)
            .filter(|h| wanted == Mode::Exclusive || h.mode == Mode::Exclusive)
    }
}

fn default_label() -> Arc<str> {
    let name = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    Arc::from(name.unwrap_or_else(|| "litekeep".to_owned()))
}

/// One held acquisition of a [`FileLock`]; the lock is released when it is dropped (or by
/// [`LockGuard::release`], which reports an error instead of ignoring it).
///
/// A guard may be moved to another thread; it is released for the thread or task that acquired
/// it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    entry: Arc<Entry>,
    owner: Owner,
    mode: Mode,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.entry.path)
            .field("mode", &self.mode)
            .finish()
    }
}

impl LockGuard {
    /// The mode held: exclusive for a reentrant shared request covered by an exclusive hold.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep_lock::{FileLock, Mode, Wait};
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap();
    /// let _outer = lock.exclusive(Wait::None).unwrap();
    /// let inner = lock.acquire_reentrant(Mode::Shared, Wait::None).unwrap();
    /// assert_eq!(inner.mode(), Mode::Exclusive);
    /// ```
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The lock file.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// let lock = litekeep_lock::FileLock::for_database(dir.join("app.db")).unwrap();
    /// let g = lock.shared(litekeep_lock::Wait::None).unwrap();
    /// assert!(g.path().ends_with("app.db.lock"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.entry.path
    }

    /// Releases the lock now.
    ///
    /// # Errors
    /// [`LockError::Io`] if the unlock call fails; the kernel then releases the lock when the
    /// process's descriptor closes.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// let lock = litekeep_lock::FileLock::for_database(dir.join("app.db")).unwrap();
    /// let g = lock.exclusive(litekeep_lock::Wait::None).unwrap();
    /// g.release().unwrap();
    /// assert!(lock.holder().is_none());
    /// ```
    pub fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        self.entry
            .core
            .release(self.owner)
            .map_err(|source| LockError::Io {
                path: self.entry.path.clone(),
                op: "unlock",
                source,
            })
    }
}

impl Drop for LockGuard {
    /// Inlined, with the unlock call (see `Core::acquire`).
    #[inline(always)]
    fn drop(&mut self) {
        if !self.released {
            // Nothing to report to from drop; an unlock failure leaves the lock to the kernel,
            // which drops it when the descriptor closes.
            let _ = self.entry.core.release(self.owner);
        }
    }
}
