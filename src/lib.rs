//! litekeep keeps a SQLite database healthy when many processes open, write and migrate it at
//! once.
//!
//! This facade re-exports the member crates as they land: [`lock`] ([`litekeep_lock`]), the
//! cross-process lock every other piece takes, [`migrate`] ([`litekeep_migrate`]),
//! desired-schema migrations in one transaction, and [`recover`] ([`litekeep_recover`]), repair
//! of what interrupted migrations left behind plus health checks. The safe `Database::open` that ties lock,
//! recovery and migration together is not built yet (see the README's status table); nothing
//! here pretends otherwise.
//!
//! ```
//! use litekeep::lock::{FileLock, Wait};
//! # let dir = std::env::temp_dir().join(format!("lk-doc-facade-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let lock = FileLock::for_database(dir.join("app.db")).unwrap();
//! let _guard = lock.exclusive(Wait::None).unwrap();
//! ```

#![deny(missing_docs)]

pub use litekeep_lock as lock;
pub use litekeep_migrate as migrate;
pub use litekeep_recover as recover;

/// The README's examples, compiled and run as doc-tests so the front door cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
