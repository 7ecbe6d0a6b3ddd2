//! [`Error`]: the facade's one error type. It wraps the member crates' errors whole, so their
//! detail (the lock's holder, the migration's offending rowids, the leftover's name) survives.

use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::Database`] can fail with. `Display` is one line that names the file and
/// says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lock on the database's lock file (see [`crate::lock`]).
    #[error(transparent)]
    Lock(#[from] litekeep_lock::LockError),
    /// Bringing the schema up to date.
    #[error(transparent)]
    Migrate(#[from] litekeep_migrate::MigrateError),
    /// The owner service ([`crate::Service`]): its election, socket, or the owner's answer.
    #[error(transparent)]
    Owner(#[from] litekeep_owner::OwnerError),
    /// Repairing what an interrupted migration left behind.
    #[error(transparent)]
    Recover(#[from] litekeep_recover::RecoverError),
    /// The same file is already open in this process with another desired schema.
    #[error(
        "{} is already open in this process with a different schema; open it with the same schema (or none), or migrate it with Database::migrate",
        path.display()
    )]
    SchemaMismatch {
        /// The database.
        path: PathBuf,
    },
    /// `Database::write` or `Database::migrate` was called from inside a `Database::write`
    /// closure on the same database and thread: it would wait for the very transaction it runs
    /// in. Refused at once, never a hang.
    #[error(
        "{what} was called from inside a Database::write on {} in the same thread; it would wait for that very transaction — call it after the write returns",
        path.display()
    )]
    InsideWrite {
        /// The database.
        path: PathBuf,
        /// What was called: "Database::write", "Database::migrate" or "Service::call".
        what: &'static str,
    },
    /// SQLite would not switch the file to WAL mode.
    #[error(
        "{} stayed in journal mode {mode} when asked for WAL; WAL needs shared memory beside the file (not on a network filesystem) and a writable directory",
        path.display()
    )]
    NoWal {
        /// The database.
        path: PathBuf,
        /// The journal mode it kept.
        mode: String,
    },
    /// SQLite stayed busy (another process kept the write lock) for the whole retry budget.
    #[error(
        "{} stayed busy for {:.1} s ({attempts} attempt(s)); another process holds its write lock that long — raise the budget or find the long transaction",
        path.display(), waited.as_secs_f64()
    )]
    Busy {
        /// The database.
        path: PathBuf,
        /// How long the write kept retrying.
        waited: Duration,
        /// How many times it tried.
        attempts: u32,
    },
    /// The disk holding the database is full (SQLite said "database or disk is full", or a
    /// "disk I/O error" with almost no free space left); the transaction was rolled back.
    #[error(
        "the disk holding {} is full{} while {op}; the transaction was rolled back — free space and try again (a WAL database needs room for its -wal and -shm files even to be read)",
        path.display(), free.map_or_else(String::new, |f| format!(" ({} KiB free)", f / 1024))
    )]
    DiskFull {
        /// The database.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Free bytes left, when they could be read.
        free: Option<u64>,
    },
    /// An I/O error other than a full disk (a failed read, write or sync); the transaction was
    /// rolled back.
    #[error(
        "{}: {} failed while {op} ({source}); the transaction was rolled back — check the disk (its health, `dmesg`) and try again",
        path.display(), litekeep_recover::what_failed(source)
    )]
    IoFailure {
        /// The database.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// SQLite's error (its extended code says which file operation failed).
        #[source]
        source: rusqlite::Error,
    },
    /// An error from SQLite, or from the caller's closure.
    #[error("{} while {op}: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// An I/O error outside SQLite.
    #[error("{}: {source} while {op}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A SQLite error about `path`, as the variant that says what it was: a full disk and other
    /// I/O failures get their own, everything else is [`Error::Sqlite`].
    pub(crate) fn sqlite(
        path: &std::path::Path,
        op: &'static str,
        source: rusqlite::Error,
    ) -> Error {
        match litekeep_recover::io_failure(path, &source) {
            Some(litekeep_recover::IoFailure::DiskFull { free }) => Error::DiskFull {
                path: path.to_path_buf(),
                op,
                free,
            },
            Some(litekeep_recover::IoFailure::Other { .. }) => Error::IoFailure {
                path: path.to_path_buf(),
                op,
                source,
            },
            None => Error::Sqlite {
                path: path.to_path_buf(),
                op,
                source,
            },
        }
    }

    /// The lock error inside this error, whichever crate raised it: a lock held past its
    /// timeout, or a lock file refused ([`LockError::Refused`](litekeep_lock::LockError::Refused):
    /// something planted at its name).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = tmp.path().join("app.db");
    /// std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("app.db.lock")).unwrap();
    /// let err = litekeep::Database::open(&db).err().unwrap();
    /// assert!(matches!(err.lock_error(), Some(litekeep::lock::LockError::Refused { .. })));
    /// ```
    pub fn lock_error(&self) -> Option<&litekeep_lock::LockError> {
        match self {
            Error::Lock(e)
            | Error::Migrate(litekeep_migrate::MigrateError::Lock(e))
            | Error::Recover(litekeep_recover::RecoverError::Lock(e)) => Some(e),
            _ => None,
        }
    }

    /// The holder named by a lock timeout, when this error is one (whether it came from the
    /// open, a migration or a repair).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use litekeep::lock::{FileLock, Wait};
    /// let path = tmp.path().join("app.db");
    /// let lock = FileLock::for_database(&path)?.with_label("nightly backup");
    /// // Another thread holds the lock exclusive; an open with a short timeout names it.
    /// let held = std::thread::scope(|s| s.spawn(|| lock.exclusive(Wait::None)).join().unwrap())?;
    /// let err = litekeep::Database::builder(&path)
    ///     .lock_timeout(Duration::from_millis(50))
    ///     .open()
    ///     .unwrap_err();
    /// assert!(err.is_lock_timeout());
    /// assert_eq!(err.lock_holder().unwrap().label.as_deref(), Some("nightly backup"));
    /// drop(held);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_holder(&self) -> Option<&litekeep_lock::Holder> {
        self.lock_error().and_then(litekeep_lock::LockError::holder)
    }

    /// Whether this is a lock held past its timeout (by this or another process). Example:
    /// [`Error::lock_holder`].
    pub fn is_lock_timeout(&self) -> bool {
        matches!(
            self.lock_error(),
            Some(litekeep_lock::LockError::Timeout { .. })
        )
    }
}
