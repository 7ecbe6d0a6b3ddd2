//! litekeep keeps a SQLite database healthy when many processes open, write and migrate it at
//! once.
//!
//! [`Database::open`] is the one safe way in: from any number of processes and threads, the
//! schema is set up once (under the cross-process lock, double-checked), WAL is switched on once,
//! leftovers of interrupted migrations are repaired, and every process gets one handle with one
//! writer connection behind a queue and a pool of readers.
//!
//! ```
//! use litekeep::Database;
//! # let dir = std::env::temp_dir().join(format!("lk-doc-lib-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let db = Database::builder(dir.join("index.db"))
//!     .schema("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);")
//!     .open()?;
//! db.write(|tx| tx.execute("INSERT OR IGNORE INTO files (path) VALUES ('src/lib.rs')", []))?;
//! let n: i64 = db.read(|c| c.query_row("SELECT count(*) FROM files", [], |r| r.get(0)))?;
//! assert_eq!(n, 1);
//! // Opening it again in this process, by any path spelling, returns the same handle.
//! let again = Database::open(dir.join(".").join("index.db"))?;
//! # Ok::<(), litekeep::Error>(())
//! ```
//!
//! The member crates are re-exported: [`lock`] ([`litekeep_lock`]), the cross-process lock
//! every other piece takes; [`migrate`] ([`litekeep_migrate`]), desired-schema migrations in one
//! transaction; [`recover`] ([`litekeep_recover`]), repair of what interrupted migrations left
//! behind, plus health checks. With the `tokio` feature, `Database::read_async` and
//! `Database::write_async` run on tokio's blocking pool and never block the executor. With the
//! `duckdb` feature, `duckdb_file::open` opens DuckDB files after checking the DuckDB library's
//! version (build with `eval "$(scripts/duckdb-env)"` first).

#![deny(missing_docs)]

#[cfg(feature = "tokio")]
mod async_api;
mod builder;
mod database;
#[cfg(feature = "duckdb")]
pub mod duckdb_file;
mod durability;
mod error;
mod pool;
mod registry;
mod retry;
mod wal;

pub use builder::Builder;
pub use database::Database;
/// The `duckdb` crate this build links (feature `duckdb`), for its `Connection`, `params!` and
/// types.
#[cfg(feature = "duckdb")]
pub use duckdb;
pub use durability::Durability;
pub use error::Error;
pub use litekeep_lock as lock;
pub use litekeep_migrate as migrate;
pub use litekeep_recover as recover;
pub use rusqlite;

/// The README's examples, compiled and run as doc-tests so the front door cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
