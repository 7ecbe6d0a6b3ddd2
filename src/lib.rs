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
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path();
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
//! behind, plus health checks; [`owner`] ([`litekeep_owner`]), one process owning the file and
//! serving the others' requests, on which [`Service`] routes every process's writes to one owner
//! that commits them in groups (with `Durability::Normal`, a client that finds nobody else
//! writing commits its own), exactly once across failover. With the `tokio` feature,
//! `Database::read_async` and `Database::write_async` run on tokio's blocking pool and never
//! block the executor. With the `duckdb` feature, `duckdb_file::open` opens DuckDB files after
//! checking the DuckDB library's version (build with `eval "$(scripts/duckdb-env)"` first).

#![deny(missing_docs)]

#[cfg(feature = "tokio")]
mod async_api;
mod builder;
mod calls;
mod checkpoint;
mod database;
mod deferred;
#[cfg(feature = "duckdb")]
pub mod duckdb_file;
mod durability;
mod error;
mod pool;
mod registry;
mod retry;
pub mod serve;
mod service;
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
pub use litekeep_migrate::Extension;
pub use litekeep_owner as owner;
pub use litekeep_recover as recover;
pub use rusqlite;
pub use service::{Handler, Service, ServiceBuilder, SqliteService};

/// The README's and the book's examples, compiled and run as doc-tests so the front door and
/// the guide cannot rot.
#[cfg(doctest)]
mod doc_examples {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/guide/lock.md")]
    struct GuideLock;
    #[doc = include_str!("../docs/guide/migrations.md")]
    struct GuideMigrations;
    #[doc = include_str!("../docs/guide/rolling-deploys.md")]
    struct GuideRollingDeploys;
    #[doc = include_str!("../docs/guide/recovery.md")]
    struct GuideRecovery;
    #[doc = include_str!("../docs/guide/database.md")]
    struct GuideDatabase;
    #[doc = include_str!("../docs/durability.md")]
    struct Durability;
    #[doc = include_str!("../docs/guide/owner.md")]
    struct GuideOwner;
    #[doc = include_str!("../docs/guide/serve.md")]
    struct GuideServe;
}
