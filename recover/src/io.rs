//! What an I/O failure under SQLite was, as far as can be told after the fact: SQLite reports
//! "disk I/O error" whatever happened (a full disk while growing the `-wal` or `-shm` file, a
//! failed `fsync`, a failing device), so the error code's extended part and the free space on
//! the file's filesystem are read to say which, and what to do.

use std::path::Path;

use rusqlite::ErrorCode;

/// Below this much free space, an I/O error is taken to be a full disk.
const NEARLY_FULL: u64 = 1 << 20;

/// What an I/O failure was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoFailure {
    /// The filesystem holding the file is (nearly) full: `free` bytes were left.
    DiskFull {
        /// Free bytes for an unprivileged user, when they could be read.
        free: Option<u64>,
    },
    /// Another I/O error, in words ("syncing a file to the disk failed").
    Other {
        /// What SQLite was doing, from the extended code.
        what: &'static str,
    },
}

/// Classifies `error` about the database at `path`: `None` when it is not an I/O failure.
///
/// ```
/// use litekeep_recover::{IoFailure, io_failure};
/// let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
/// assert_eq!(io_failure(std::path::Path::new("/tmp/x.db"), &busy), None);
/// let fsync = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC), None);
/// assert!(matches!(io_failure(std::path::Path::new("/tmp/x.db"), &fsync), Some(IoFailure::Other { .. }) | Some(IoFailure::DiskFull { .. })));
/// ```
pub fn io_failure(path: &Path, error: &rusqlite::Error) -> Option<IoFailure> {
    let rusqlite::Error::SqliteFailure(e, _) = error else {
        return None;
    };
    match e.code {
        ErrorCode::DiskFull => {
            return Some(IoFailure::DiskFull {
                free: free_space(path),
            });
        }
        ErrorCode::SystemIoFailure => {}
        _ => return None,
    }
    let free = free_space(path);
    if free.is_some_and(|f| f < NEARLY_FULL) {
        return Some(IoFailure::DiskFull { free });
    }
    Some(IoFailure::Other {
        what: doing(e.extended_code),
    })
}

impl std::fmt::Display for IoFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoFailure::DiskFull { free: Some(free) } => {
                write!(f, "the disk is full ({} KiB free)", free / 1024)
            }
            IoFailure::DiskFull { free: None } => write!(f, "the disk is full"),
            IoFailure::Other { what } => write!(f, "an I/O error: {what} failed"),
        }
    }
}

/// Free bytes for an unprivileged user on the filesystem holding `path` (or its directory,
/// when the file does not exist yet); `None` where it cannot be read.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// let free = litekeep_recover::free_space(&tmp.path().join("not-yet.db"));
/// assert!(free.is_some());
/// ```
pub fn free_space(path: &Path) -> Option<u64> {
    let probe = if path.exists() {
        path
    } else {
        path.parent().filter(|p| !p.as_os_str().is_empty())?
    };
    let stat = rustix::fs::statvfs(probe).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Which file operation an I/O error of SQLite's was ("syncing the file to the disk").
///
/// ```
/// let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC), None);
/// assert_eq!(litekeep_recover::what_failed(&e), "syncing the file to the disk");
/// ```
pub fn what_failed(error: &rusqlite::Error) -> &'static str {
    match error {
        rusqlite::Error::SqliteFailure(e, _) => doing(e.extended_code),
        _ => "a file operation",
    }
}

/// What SQLite was doing, from an extended `SQLITE_IOERR_*` code.
fn doing(extended: i32) -> &'static str {
    use rusqlite::ffi as f;
    match extended {
        f::SQLITE_IOERR_READ | f::SQLITE_IOERR_SHORT_READ => "reading the file",
        f::SQLITE_IOERR_WRITE => "writing the file",
        f::SQLITE_IOERR_FSYNC | f::SQLITE_IOERR_DIR_FSYNC => "syncing the file to the disk",
        f::SQLITE_IOERR_TRUNCATE => "truncating the file",
        f::SQLITE_IOERR_FSTAT => "reading the file's size",
        f::SQLITE_IOERR_LOCK
        | f::SQLITE_IOERR_UNLOCK
        | f::SQLITE_IOERR_RDLOCK
        | f::SQLITE_IOERR_CHECKRESERVEDLOCK => "locking the file",
        f::SQLITE_IOERR_DELETE | f::SQLITE_IOERR_DELETE_NOENT => "deleting the journal",
        f::SQLITE_IOERR_SHMOPEN | f::SQLITE_IOERR_SHMSIZE | f::SQLITE_IOERR_SHMMAP => {
            "growing the WAL index (the -shm file)"
        }
        f::SQLITE_IOERR_NOMEM => "allocating memory",
        f::SQLITE_IOERR_ACCESS => "checking the journal",
        _ => "a file operation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_for_files_and_missing_files() {
        let dir = std::env::temp_dir();
        assert!(free_space(&dir).is_some());
        assert!(free_space(&dir.join("no-such-file.db")).is_some());
        assert_eq!(free_space(Path::new("/no/such/dir/x.db")), None);
    }

    #[test]
    fn io_codes_are_named() {
        let err = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let here = std::env::temp_dir().join("x.db");
        let other = io_failure(&here, &err(rusqlite::ffi::SQLITE_IOERR_SHMSIZE));
        // This machine's temp directory is not full, so it is named as what it was.
        assert_eq!(
            other,
            Some(IoFailure::Other {
                what: "growing the WAL index (the -shm file)"
            })
        );
        assert!(matches!(
            io_failure(&here, &err(rusqlite::ffi::SQLITE_FULL)),
            Some(IoFailure::DiskFull { free: Some(_) })
        ));
        assert_eq!(
            io_failure(&here, &err(rusqlite::ffi::SQLITE_CONSTRAINT)),
            None
        );
    }
}
