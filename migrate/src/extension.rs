//! [`Extension`]: SQLite extensions a migration loads on every connection it opens — the
//! database's, the scratch database that parses the desired schema, the scratch copy that tries
//! native `ALTER`s — so that the modules of virtual tables (`vec0` of sqlite-vec, say) exist
//! wherever a `CREATE VIRTUAL TABLE` runs.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;

use crate::error::MigrateError;

/// A function run on each new connection: registers a module, loads a statically linked
/// extension's init function, or anything else a connection needs before it sees the schema.
pub type ConnectionInit = Arc<dyn Fn(&Connection) -> rusqlite::Result<()> + Send + Sync>;

/// One extension to load on every connection a migration opens.
///
/// ```
/// use litekeep_migrate::{Extension, Options};
/// let file = Extension::file("/usr/lib/sqlite3/vec0.so", None);
/// let init = Extension::init(|conn| conn.execute_batch("PRAGMA cache_size = -4096"));
/// let opts = Options::default().extension(file).extension(init);
/// assert_eq!(opts.extensions.len(), 2);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Extension {
    /// A loadable extension file (`sqlite3_load_extension`): its path, and its entry point
    /// (`None`: SQLite derives it from the file name).
    File {
        /// The shared library.
        path: PathBuf,
        /// The entry point, when it is not the one SQLite derives.
        entry_point: Option<String>,
    },
    /// A function run on the connection (for an extension linked into the program).
    Init(ConnectionInit),
}

impl Extension {
    /// A loadable extension file.
    pub fn file(path: impl Into<PathBuf>, entry_point: Option<&str>) -> Extension {
        Extension::File {
            path: path.into(),
            entry_point: entry_point.map(str::to_owned),
        }
    }

    /// A function run on each new connection.
    pub fn init(f: impl Fn(&Connection) -> rusqlite::Result<()> + Send + Sync + 'static) -> Self {
        Extension::Init(Arc::new(f))
    }

    /// Loads this extension on `conn`.
    ///
    /// # Errors
    /// [`MigrateError::Extension`] naming the file (or the init function) and SQLite's reason.
    pub fn load(&self, conn: &Connection) -> Result<(), MigrateError> {
        self.load_raw(conn)
            .map_err(|source| MigrateError::Extension {
                extension: self.to_string(),
                source,
            })
    }

    /// [`Extension::load`] with SQLite's error as it is, for callers whose errors are
    /// rusqlite's (a pool of connections, say).
    ///
    /// # Errors
    /// SQLite's error loading the file, or the init function's.
    pub fn load_raw(&self, conn: &Connection) -> rusqlite::Result<()> {
        match self {
            Extension::File { path, entry_point } => load_file(conn, path, entry_point.as_deref()),
            Extension::Init(f) => f(conn),
        }
    }
}

/// Loads the file with loading switched on only for the call (`LoadExtensionGuard` switches it
/// off again, so SQL run later cannot call `load_extension()` itself).
fn load_file(
    conn: &Connection,
    path: &std::path::Path,
    entry: Option<&str>,
) -> rusqlite::Result<()> {
    // SAFETY: loading is switched on for this one call, and no SQL runs while the guard lives.
    let _guard = unsafe { rusqlite::LoadExtensionGuard::new(conn)? };
    // SAFETY: the caller named this file as an extension to load; running its init code is
    // what loading an extension means, exactly as `sqlite3 .load` would.
    unsafe { conn.load_extension(path, entry) }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extension::File {
                path,
                entry_point: Some(e),
            } => write!(f, "extension {} (entry point {e})", path.display()),
            Extension::File { path, .. } => write!(f, "extension {}", path.display()),
            Extension::Init(_) => f.write_str("the connection init function"),
        }
    }
}

impl fmt::Debug for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Loads every extension of `extensions` on `conn`, in order.
pub(crate) fn load_all(conn: &Connection, extensions: &[Extension]) -> Result<(), MigrateError> {
    extensions.iter().try_for_each(|e| e.load(conn))
}
