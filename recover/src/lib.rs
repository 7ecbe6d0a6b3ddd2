//! Repair of tables left behind by interrupted migrations, plus integrity checks.
//!
//! A table rebuild — the only way SQLite can change most of a table's definition — runs as
//! create/copy/drop/rename statements. Run outside one transaction (seed 001's driver, Prisma,
//! `drizzle-kit push`, non-atomic Django migrations, sqlite-utils 3.x), a crash between two of
//! them leaves a temporary table behind: `temp_files`, `new__files`, `_alembic_tmp_files`… and
//! maybe no `files` at all. This crate finds those leftovers by every tool's naming
//! ([`parse_temp_name`]), compares their rows with the original in SQL, and repairs what can be
//! repaired without losing a row:
//!
//! | case | state | repair |
//! |---|---|---|
//! | 1 | original missing, leftover holds the rows | rename the leftover back |
//! | 2 | original empty, leftover holds rows | copy them in (rowids kept), drop the leftover |
//! | 3 | both hold rows, some only in the leftover | copy those whose key is free, drop the leftover; if a key holds other values: report, change nothing |
//! | 4 | leftover empty, or each of its rows is in the original | drop the leftover |
//!
//! In every case the foreign keys, views and triggers that named the leftover (SQLite rewrites
//! them when it renames a table with `legacy_alter_table=OFF`) point at the original again.
//!
//! - [`scan`] lists the findings without changing anything.
//! - [`recover`] repairs them in one transaction under the exclusive `litekeep-lock` on the
//!   database's lock file; it verifies before committing and is idempotent.
//! - [`check`] reports integrity, foreign keys, journal mode, leftovers and network
//!   filesystems; [`check_many`] does it for many files in parallel.
//!
//! ```
//! use litekeep_recover::{recover, Options};
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path();
//! let db = dir.join("index.db");
//! # let _ = std::fs::remove_file(&db);
//! // Seed 001: the driver renamed `files` to `temp_files`, created the new `files`, and died.
//! rusqlite::Connection::open(&db).unwrap().execute_batch("
//!     CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT);
//!     INSERT INTO files (path) VALUES ('a.rs'), ('b.rs');
//!     ALTER TABLE files RENAME TO temp_files;
//!     CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT, size INTEGER);
//! ").unwrap();
//! let report = recover(&db, &Options::default()).unwrap();
//! for finding in &report.findings {
//!     println!("{finding}"); // temp_files (original empty, 2 rows) … copy its 2 rows into files and drop it
//! }
//! let conn = rusqlite::Connection::open(&db).unwrap();
//! let n: i64 = conn.query_row("SELECT count(*) FROM files", [], |r| r.get(0)).unwrap();
//! assert_eq!(n, 2);
//! ```

#![deny(missing_docs)]

mod catalog;
mod check;
mod compare;
mod error;
mod finding;
mod io;
mod many;
mod names;
mod open;
mod options;
mod refs;
mod repair;
mod scan;
pub mod sql;

pub use check::{Health, check};
pub use error::RecoverError;
pub use finding::{Action, Case, Finding};
pub use io::{IoFailure, free_space, io_failure, what_failed};
pub use many::{check_many, find_databases};
pub use names::{LITEKEEP_PREFIX, TempName, Tool, parse_temp_name};
pub use open::{check_journal_files, looks_like_database};
pub use options::Options;
pub use repair::{Report, recover};
pub use scan::{scan, scan_with};
pub use sql::{identifiers, mentions, normalize, quote_ident};
