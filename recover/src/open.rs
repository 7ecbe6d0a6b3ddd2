//! Opening a file for a scan, a repair or a check, and saying clearly when it is not a SQLite
//! database before SQLite gets to say something vaguer.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, MAIN_DB, OpenFlags};

use crate::error::RecoverError;

/// The first 16 bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The size of the database header.
const HEADER: u64 = 100;

/// Whether `path` starts like a SQLite database (used to pick database files out of a
/// directory). Unreadable and short files do not.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// let db = tmp.path().join("app.db");
/// rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE t (x);").unwrap();
/// std::fs::write(tmp.path().join("notes.txt"), "not a database").unwrap();
/// assert!(litekeep_recover::looks_like_database(&db));
/// assert!(!litekeep_recover::looks_like_database(&tmp.path().join("notes.txt")));
/// ```
pub fn looks_like_database(path: &Path) -> bool {
    let mut head = [0u8; 16];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == MAGIC)
}

/// Refuses what a neighbour may have planted at the names of the files SQLite keeps beside the
/// database at `db` (`-wal`, `-shm`, `-journal`): a symbolic link, a directory, a FIFO, a device
/// or a second name of another file, which SQLite would open and write through. Called before
/// every connection litekeep opens; see [`litekeep_lock::check_sidecar`] for what it cannot
/// promise.
///
/// # Errors
/// [`LockError::Refused`](litekeep_lock::LockError::Refused) naming the file and what is there.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let db = dir.join("app.db");
/// litekeep_recover::check_journal_files(&db).unwrap();
/// std::os::unix::fs::symlink("/etc/passwd", dir.join("app.db-wal")).unwrap();
/// assert!(litekeep_recover::check_journal_files(&db).is_err());
/// ```
pub fn check_journal_files(db: &Path) -> Result<(), litekeep_lock::LockError> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        litekeep_lock::check_sidecar(Path::new(&name))?;
    }
    Ok(())
}

/// Checks the header, then opens `path` read-only or read-write and makes SQLite read the
/// schema, so that a damaged or foreign file fails here with a clear error.
pub(crate) fn open(path: &Path, write: bool, busy: Duration) -> Result<Connection, RecoverError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RecoverError::NotFound {
            path: path.to_path_buf(),
        },
        _ => RecoverError::Io {
            path: path.to_path_buf(),
            op: "reading its metadata",
            source: e,
        },
    })?;
    if meta.is_dir() {
        return Err(RecoverError::NotADatabase {
            path: path.to_path_buf(),
            why: "it is a directory".to_owned(),
        });
    }
    let len = meta.len();
    // An empty file is an empty database to SQLite; anything else must start with the header.
    if len > 0 {
        if len < HEADER {
            return Err(RecoverError::NotADatabase {
                path: path.to_path_buf(),
                why: format!("{len} bytes is shorter than a database header; it may be truncated"),
            });
        }
        if !looks_like_database(path) {
            return Err(RecoverError::NotADatabase {
                path: path.to_path_buf(),
                why: "its header is not SQLite's; it may be encrypted or another kind of file"
                    .to_owned(),
            });
        }
    }
    check_journal_files(path)?;
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(RecoverError::db(path, "opening the database"))?;
    conn.busy_timeout(busy)
        .map_err(RecoverError::db(path, "setting busy_timeout"))?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(RecoverError::db(path, "reading the schema"))?;
    // SQLite quietly opens a write-protected file read-only.
    if write
        && conn
            .is_readonly(MAIN_DB)
            .map_err(RecoverError::db(path, "opening the database"))?
    {
        return Err(RecoverError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    Ok(conn)
}
