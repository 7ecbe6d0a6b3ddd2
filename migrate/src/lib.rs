//! Desired-schema migrations for SQLite: describe the schema you want as plain DDL, and
//! litekeep-migrate diffs it against the database and brings the database there in ONE
//! transaction, under the cross-process litekeep lock.
//!
//! ```
//! use litekeep_migrate::{migrate, Options};
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path();
//! # let db = dir.join("index.db");
//! # let _ = std::fs::remove_file(&db);
//! let v1 = "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);";
//! let v2 = "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, mtime INTEGER);
//!           CREATE INDEX files_path ON files(path);";
//! migrate(&db, v1, &Options::default()).unwrap();
//! let report = migrate(&db, v2, &Options::default()).unwrap();
//! println!("{}", report.plan); // rebuild table files (~size +mtime), create index files_path
//! assert!(migrate(&db, v2, &Options::default()).unwrap().up_to_date());
//! ```
//!
//! - The desired schema is parsed by SQLite itself (loaded into an in-memory database); both
//!   sides are read with the same pragmas. There is no hand-written SQL parser.
//! - Native `ALTER TABLE` where it provably gives the desired table (tried on a scratch copy
//!   first); otherwise the rename-copy-drop rebuild `ALTER TABLE x RENAME TO temp_x; CREATE
//!   TABLE x …; INSERT INTO x (…) SELECT … FROM temp_x; DROP TABLE temp_x`, rowids kept, then
//!   the indexes and triggers of `x` re-created.
//! - All of it in one `BEGIN IMMEDIATE` transaction under the exclusive lock on `<db>.lock`, with
//!   `foreign_keys=OFF` and `legacy_alter_table=ON` (see [`apply`] for why), verified by
//!   `foreign_key_check` and a re-read of the schema before `COMMIT`.
//! - Dropping a table or column is refused unless [`Options::allow_data_loss`]; rows that break
//!   a new constraint are named by rowid and nothing changes.
//! - Renames are hints ([`Options::rename`]) or `-- @renamed from=old` comments in the desired
//!   schema itself, in sqldef's syntax ([`Annotation`]); either way [`Plan::renames`] says where
//!   each came from. Annotations are read by a comment-aware tokenizer; SQLite still parses
//!   the DDL.
//! - Additive mode ([`Options::keep_undeclared`]) keeps what the database has and the desired
//!   schema lacks ([`Plan::kept`]), for rolling deploys where an older program must not take
//!   away what a newer one added; [`superseded`] tells from `_litekeep_history` whether a file
//!   has moved past a schema. [`diff`] compares two schemas without touching a database, and
//!   [`export_sql`] prints a database's schema as DDL this crate accepts.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod annotations;
mod apply;
mod diff;
mod error;
mod introspect;
mod keep;
mod native;
mod options;
mod plan;
mod rebuild;
mod renames;
mod schema;
mod space;
mod tokens;
mod violations;

pub use annotations::Annotation;
pub use apply::{Report, apply, migrate, superseded};
pub use diff::{TEMP_PREFIX, diff, up_to_date};
pub use error::MigrateError;
pub use introspect::{export_sql, is_internal};
pub use litekeep_recover::{normalize, quote_ident};
pub use options::{Options, Rename};
pub use plan::{DataLoss, Kept, ObjectKind, Origin, Plan, PlannedRename, Step, StepKind};
pub use schema::{Column, Fingerprint, Object, Schema, Table};
