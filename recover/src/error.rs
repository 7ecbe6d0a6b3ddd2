//! [`RecoverError`]: every way a scan, a repair or a check can fail. Whatever the error, the
//! file is as it was: repairs run in one transaction that is rolled back.

use std::path::{Path, PathBuf};

use litekeep_lock::LockError;
use rusqlite::ErrorCode;

/// The error type of this crate. `Display` is one line that names the file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// The file does not exist.
    #[error("{} does not exist; check the path", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a SQLite database: wrong header, encrypted, or too short to be one.
    #[error("{} is not a SQLite database ({why}); check the path — nothing was changed", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The database cannot be written (read-only file, directory or filesystem).
    #[error("{} is read-only; a repair needs write access to the file and its directory — nothing was changed", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// SQLite reports the file damaged; nothing is repaired in a damaged file.
    #[error("{} is damaged ({detail}); nothing was changed — restore it from a backup, or try `sqlite3 {} .recover`", path.display(), path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite says.
        detail: String,
    },
    /// The disk filled up during the repair; it was rolled back.
    #[error("the disk holding {} is full{}; nothing was changed (a repair is rolled back) — free space and run it again (a WAL database needs room for its -wal and -shm files even to be read)", path.display(), free_text(*free))]
    DiskFull {
        /// Free bytes left, when they could be read.
        free: Option<u64>,
        /// The file.
        path: PathBuf,
    },
    /// SQLite refused a step of the repair because of something else in the schema (for
    /// example a view that names a table that does not exist); it was rolled back.
    #[error("cannot repair {}: {detail} while {op}; it was rolled back — fix or drop that object and run it again", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// The step.
        op: String,
        /// SQLite's complaint.
        detail: String,
    },
    /// The repair lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The repair finished but its result did not pass verification; it was rolled back.
    #[error("the repair of {} did not verify ({detail}); it was rolled back — please report this", path.display())]
    Verify {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// An I/O error under SQLite other than a full disk (a failed read, write or sync).
    #[error("{}: {} failed while {op} ({source}); nothing was changed — check the disk (its health, `dmesg`) and run it again", path.display(), crate::io::what_failed(source))]
    IoFailure {
        /// The database.
        path: PathBuf,
        /// What was being done.
        op: String,
        /// SQLite's error (its extended code says which file operation failed).
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// Any other SQLite error.
    #[error("{} while {op}: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An I/O error outside SQLite (reading a directory or a header).
    #[error("{}: {source} while {op}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl RecoverError {
    /// Maps a SQLite error to the variant that says what to do about it.
    pub(crate) fn from_db(path: &Path, op: &str, e: rusqlite::Error) -> RecoverError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => RecoverError::NotADatabase {
                path,
                why: "SQLite does not recognise the file".to_owned(),
            },
            Some(ErrorCode::ReadOnly) => RecoverError::ReadOnly { path },
            Some(ErrorCode::CannotOpen) if !path.exists() => RecoverError::NotFound { path },
            Some(ErrorCode::DatabaseCorrupt) => RecoverError::Corrupt {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => {
                match crate::io::io_failure(&path, &e) {
                    Some(crate::io::IoFailure::DiskFull { free }) => {
                        RecoverError::DiskFull { path, free }
                    }
                    Some(crate::io::IoFailure::Other { .. }) => RecoverError::IoFailure {
                        path,
                        op: op.to_owned(),
                        source: Box::new(e),
                    },
                    None => RecoverError::Sqlite {
                        path,
                        op: op.to_owned(),
                        source: e,
                    },
                }
            }
            _ => RecoverError::Sqlite {
                path,
                op: op.to_owned(),
                source: e,
            },
        }
    }

    /// A helper for `map_err`.
    pub(crate) fn db<'a>(
        path: &'a Path,
        op: &'a str,
    ) -> impl Fn(rusqlite::Error) -> RecoverError + 'a {
        move |e| RecoverError::from_db(path, op, e)
    }
}

/// " (12 KiB free)", or nothing when unknown.
pub(crate) fn free_text(free: Option<u64>) -> String {
    free.map_or_else(String::new, |f| format!(" ({} KiB free)", f / 1024))
}
