//! How a worker reaches the database, in the two modes the runner compares.
//!
//! - **litekeep**: one [`Database`] per process (`Database::open`: schema set up once under the
//!   lock, WAL once, one writer queue, `BEGIN IMMEDIATE`, bounded retry).
//! - **naive**: what the seeds' code did, no worse: every operation opens a new connection,
//!   sets WAL and runs `CREATE TABLE IF NOT EXISTS` (seed 003); writes run in a deferred
//!   transaction that a read upgrades to a write (seed 002's plan ran them that way); a second
//!   connection of the same process runs the schema sync while the first holds its transaction
//!   open (seed 000); `busy_timeout` 5 s plus up to 5 retries with exponential backoff (seed
//!   002's plan).

use std::path::{Path, PathBuf};
use std::time::Duration;

use litekeep::Database;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::schema;

/// Which way to reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The seeds' patterns.
    Naive,
    /// `litekeep::Database`.
    Litekeep,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "naive" => Ok(Mode::Naive),
            "litekeep" => Ok(Mode::Litekeep),
            other => Err(format!("unknown mode `{other}`: use naive or litekeep")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Naive => "naive",
            Mode::Litekeep => "litekeep",
        })
    }
}

/// A worker's way in.
pub enum Access {
    /// The process's one handle.
    Litekeep(Database),
    /// Nothing kept between operations.
    Naive(PathBuf),
}

/// Seed 002's retry: up to this many extra attempts.
const NAIVE_RETRIES: u32 = 5;

impl Access {
    /// Opens the database the mode's way. `with_schema`: ask for schema version 1 (the first
    /// wave of workers races to set the file up); later processes open it as it is, since the
    /// migrator may have moved it to version 2.
    pub fn open(
        mode: Mode,
        path: &Path,
        with_schema: bool,
        writing: crate::writing::Writing,
    ) -> Result<Access, String> {
        match mode {
            Mode::Litekeep => {
                let builder = writing.apply(Database::builder(path).label("litekeep-stress"));
                let builder = if with_schema {
                    builder.schema(schema::V1)
                } else {
                    builder
                };
                builder
                    .open()
                    .map(Access::Litekeep)
                    .map_err(|e| e.to_string())
            }
            Mode::Naive => {
                // The naive worker's start is just another operation's connection.
                naive_connection(path).map_err(|e| e.to_string())?;
                Ok(Access::Naive(path.to_path_buf()))
            }
        }
    }

    /// Runs `f` in a write transaction; the error message on failure.
    pub fn write<T>(
        &self,
        mut f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        match self {
            Access::Litekeep(db) => db.write(f).map_err(|e| e.to_string()),
            Access::Naive(path) => naive_retry(|| {
                let mut conn = naive_connection(path)?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
                let value = f(&tx)?;
                // Seed 000: another connection of this process syncs the schema meanwhile.
                let second = naive_connection(path)?;
                drop(second);
                tx.commit()?;
                Ok(value)
            }),
        }
    }

    /// Runs `f` on a connection for reading.
    pub fn read<T>(
        &self,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        match self {
            Access::Litekeep(db) => db.read(f).map_err(|e| e.to_string()),
            Access::Naive(path) => naive_retry(|| {
                let conn = naive_connection(path)?;
                f(&conn)
            }),
        }
    }
}

/// Seed 003: a new connection that sets WAL and creates the tables, every time.
pub fn naive_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // SQLite's own default, which the seeds' drivers (Python's sqlite3, better-sqlite3) keep;
    // rusqlite's bundled build turns foreign keys on, which would make naive code stricter
    // than the seeds' was.
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    conn.execute_batch(&schema::create_if_not_exists())?;
    Ok(conn)
}

/// Seed 002: retry busy/locked with exponential backoff.
fn naive_retry<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> Result<T, String> {
    let mut pause = Duration::from_millis(10);
    let mut attempt = 0;
    loop {
        match op() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let busy = matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                );
                if !busy || attempt >= NAIVE_RETRIES {
                    return Err(e.to_string());
                }
                attempt += 1;
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
    }
}
