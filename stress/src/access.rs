//! How a worker reaches the database, in the three modes the runner compares.
//!
//! - **litekeep**: one [`Database`] per process (`Database::open`: schema set up once under the
//!   lock, WAL once, one writer queue, `BEGIN IMMEDIATE`, bounded retry), writing through the
//!   write gate.
//! - **owner**: the same [`Database`], but the writers (indexers, embedders) send their writes
//!   to the owner service (`Database::service`): one of them, elected, runs everybody's
//!   requests in group commits and records each outcome for a retry after a failover.
//!   Migrations and reads go to the file directly, as in the litekeep mode.
//! - **naive**: what the seeds' code did, no worse: every operation opens a new connection,
//!   sets WAL and runs `CREATE TABLE IF NOT EXISTS` (seed 003); writes run in a deferred
//!   transaction that a read upgrades to a write (seed 002's plan ran them that way); a second
//!   connection of the same process runs the schema sync while the first holds its transaction
//!   open (seed 000); `busy_timeout` 5 s plus up to 5 retries with exponential backoff (seed
//!   002's plan).

use std::path::{Path, PathBuf};
use std::time::Duration;

use litekeep::{Database, Service};
use rusqlite::{Connection, TransactionBehavior};

use crate::requests::{Write, Written, apply};
use crate::schema;

/// Which way to reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The seeds' patterns.
    Naive,
    /// `litekeep::Database`, writes through the write gate.
    Litekeep,
    /// `litekeep::Database`, writes through the owner service.
    Owner,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "naive" => Ok(Mode::Naive),
            "litekeep" => Ok(Mode::Litekeep),
            "owner" => Ok(Mode::Owner),
            other => Err(format!(
                "unknown mode `{other}`: use naive, litekeep or owner"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Naive => "naive",
            Mode::Litekeep => "litekeep",
            Mode::Owner => "owner",
        })
    }
}

/// A worker's way in.
pub enum Access {
    /// The process's one handle.
    Litekeep(Database),
    /// The process's one handle, and its membership of the owner service (writers only).
    Owner(Database, Option<Service<Write, Written>>),
    /// Nothing kept between operations.
    Naive(PathBuf),
}

/// Seed 002's retry: up to this many extra attempts.
const NAIVE_RETRIES: u32 = 5;

impl Access {
    /// Opens the database the mode's way. `with_schema`: ask for schema version 1 (the first
    /// wave of workers races to set the file up); later processes open it as it is, since the
    /// migrator may have moved it to version 2. `writer`: the worker writes (in the owner mode
    /// it joins the service, and may become its owner).
    pub fn open(
        mode: Mode,
        path: &Path,
        with_schema: bool,
        writer: bool,
        writing: crate::writing::Writing,
    ) -> Result<Access, String> {
        let database = || {
            let builder = writing.apply(Database::builder(path).label("litekeep-stress"));
            let builder = if with_schema {
                builder.schema(schema::V1)
            } else {
                builder
            };
            builder.open().map_err(|e| e.to_string())
        };
        match mode {
            Mode::Litekeep => database().map(Access::Litekeep),
            Mode::Owner => {
                let db = database()?;
                let service = if writer {
                    let joined = db
                        .service(apply)
                        .version(env!("CARGO_PKG_VERSION"))
                        .join()
                        .map_err(|e| e.to_string())?;
                    Some(joined)
                } else {
                    None
                };
                Ok(Access::Owner(db, service))
            }
            Mode::Naive => {
                // The naive worker's start is just another operation's connection.
                naive_connection(path).map_err(|e| e.to_string())?;
                Ok(Access::Naive(path.to_path_buf()))
            }
        }
    }

    /// Runs `write` (the handler [`apply`], in a write transaction); the error message on
    /// failure.
    pub fn write(&self, write: &Write) -> Result<Written, String> {
        match self {
            Access::Litekeep(db) => db.write(|tx| apply(tx, write)).map_err(|e| e.to_string()),
            Access::Owner(_, Some(service)) => {
                service.call(write.clone()).map_err(|e| e.to_string())
            }
            Access::Owner(_, None) => {
                Err("this worker did not join the owner service: it does not write".into())
            }
            Access::Naive(path) => naive_retry(|| {
                let mut conn = naive_connection(path)?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
                let value = apply(&tx, write)?;
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
            Access::Litekeep(db) | Access::Owner(db, _) => db.read(f).map_err(|e| e.to_string()),
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
