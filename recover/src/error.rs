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
    #[error("the disk holding {} filled up during the repair; it was rolled back — free space and run it again", path.display())]
    DiskFull {
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
            Some(ErrorCode::DiskFull) => RecoverError::DiskFull { path },
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
