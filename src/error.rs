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

    /// The holder named by a lock timeout, when this error is one.
    pub fn lock_holder(&self) -> Option<&litekeep_lock::Holder> {
        match self {
            Error::Lock(e) => e.holder(),
            Error::Migrate(litekeep_migrate::MigrateError::Lock(e)) => e.holder(),
            Error::Recover(litekeep_recover::RecoverError::Lock(e)) => e.holder(),
            _ => None,
        }
    }

    /// Whether this is a lock held past its timeout (by this or another process).
    pub fn is_lock_timeout(&self) -> bool {
        let lock = match self {
            Error::Lock(e) => e,
            Error::Migrate(litekeep_migrate::MigrateError::Lock(e)) => e,
            Error::Recover(litekeep_recover::RecoverError::Lock(e)) => e,
            _ => return false,
        };
        matches!(lock, litekeep_lock::LockError::Timeout { .. })
    }
}
