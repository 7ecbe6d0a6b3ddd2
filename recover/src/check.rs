//! [`check`]: one structured health report of a database file, for people and for machines.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use litekeep_lock::Filesystem;
use rusqlite::Connection;
use serde::Serialize;

use crate::catalog::count_at;
use crate::error::RecoverError;
use crate::finding::Finding;
use crate::open::open;
use crate::scan::scan;

/// At most this many problems of each kind are listed (all are counted).
const LIST_MAX: usize = 20;
/// How long a check waits for a writer's lock.
const BUSY: Duration = Duration::from_secs(5);

/// The health of one database file.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The file.
    pub path: PathBuf,
    /// Whether `quick_check` ran instead of `integrity_check`.
    pub quick: bool,
    /// What the integrity check says: `["ok"]`, or its first problems (or the error that
    /// stopped it).
    pub integrity: Vec<String>,
    /// Rows whose foreign key points at nothing, counted.
    pub foreign_key_violations: u64,
    /// The first of them: "symbols rowid 7 → files".
    pub foreign_key_examples: Vec<String>,
    /// `PRAGMA journal_mode`.
    pub journal_mode: String,
    /// Leftovers of interrupted table rebuilds (see [`crate::scan`]).
    pub leftovers: Vec<Finding>,
    /// The filesystem the file is on: "local" or the network filesystem's name.
    pub filesystem: String,
    /// Whether that is a network filesystem, where WAL and file locks cannot be trusted.
    pub network_filesystem: bool,
}

impl Health {
    /// Whether the integrity check said "ok". Example: [`Health::is_healthy`].
    pub fn integrity_ok(&self) -> bool {
        self.integrity.len() == 1 && self.integrity[0] == "ok"
    }

    /// Whether nothing at all is wrong: integrity ok, no foreign key violation, no leftover,
    /// not on a network filesystem.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = tmp.path().join("app.db");
    /// rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE t (x);").unwrap();
    /// let health = litekeep_recover::check(&db, true)?;
    /// assert!(health.integrity_ok() && health.is_healthy());
    /// assert!(health.to_json().contains("\"foreign_key_violations\": 0"));
    /// # Ok::<(), litekeep_recover::RecoverError>(())
    /// ```
    pub fn is_healthy(&self) -> bool {
        self.integrity_ok()
            && self.foreign_key_violations == 0
            && self.leftovers.is_empty()
            && !self.network_filesystem
    }

    /// The report as a JSON document (stable field names, as in this struct). Example:
    /// [`Health::is_healthy`].
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and vectors cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_healthy() {
            "healthy"
        } else {
            "PROBLEMS"
        };
        writeln!(f, "{}: {verdict}", self.path.display())?;
        let check = if self.quick {
            "quick_check"
        } else {
            "integrity_check"
        };
        if self.integrity_ok() {
            writeln!(f, "  {check}: ok")?;
        } else {
            writeln!(f, "  {check}: FAILED")?;
            for line in &self.integrity {
                writeln!(f, "    {line}")?;
            }
        }
        if self.foreign_key_violations == 0 {
            writeln!(f, "  foreign keys: ok")?;
        } else {
            writeln!(
                f,
                "  foreign keys: {} violations",
                self.foreign_key_violations
            )?;
            for line in &self.foreign_key_examples {
                writeln!(f, "    {line}")?;
            }
        }
        writeln!(f, "  journal mode: {}", self.journal_mode)?;
        if self.leftovers.is_empty() {
            writeln!(f, "  leftover tables: none")?;
        } else {
            writeln!(
                f,
                "  leftover tables: {} (run `litekeep recover`)",
                self.leftovers.len()
            )?;
            for l in &self.leftovers {
                writeln!(f, "    {l}")?;
            }
        }
        if self.network_filesystem {
            write!(
                f,
                "  filesystem: {} — a network filesystem: SQLite's WAL mode and file locks are not safe here",
                self.filesystem
            )
        } else {
            write!(f, "  filesystem: {}", self.filesystem)
        }
    }
}

/// Checks the database at `path`, read-only: `integrity_check` (`quick_check` when `quick`),
/// `foreign_key_check`, the journal mode, leftovers of interrupted rebuilds, and whether the file
/// sits on a network filesystem. A damaged file is a report that says so, never "ok"; a file
/// that is not a database at all is an error.
///
/// ```
/// use litekeep_recover::check;
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let db = dir.join("app.db");
/// rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE IF NOT EXISTS t (a)").unwrap();
/// let health = check(&db, false).unwrap();
/// assert!(health.integrity_ok());
/// println!("{health}");
/// assert!(health.to_json().contains("\"journal_mode\""));
/// ```
///
/// # Errors
/// [`RecoverError::NotFound`], [`RecoverError::NotADatabase`] (bad header, encrypted, too
/// short), or a SQLite error that prevents reading the schema at all.
pub fn check(path: impl AsRef<Path>, quick: bool) -> Result<Health, RecoverError> {
    let path = path.as_ref();
    let fs = File::open(path)
        .map(|f| Filesystem::of(&f))
        .unwrap_or(Filesystem::Local);
    let conn = match open(path, false, BUSY) {
        Ok(conn) => conn,
        // So damaged that not even the schema can be read: still a report, and it says so.
        Err(RecoverError::Corrupt { detail, .. }) => {
            return Ok(Health {
                path: path.to_path_buf(),
                quick,
                integrity: vec![format!("the schema cannot be read: {detail}")],
                foreign_key_violations: 0,
                foreign_key_examples: Vec::new(),
                journal_mode: "unknown".to_owned(),
                leftovers: Vec::new(),
                filesystem: fs_name(fs),
                network_filesystem: fs.is_network(),
            });
        }
        Err(e) => return Err(e),
    };
    let integrity = integrity(&conn, quick);
    let (foreign_key_violations, foreign_key_examples) = foreign_keys(&conn);
    let journal_mode = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(RecoverError::db(path, "reading the journal mode"))?;
    // A damaged file may not let the scan read its rows; the integrity report says why.
    let leftovers = scan(&conn).unwrap_or_default();
    Ok(Health {
        path: path.to_path_buf(),
        quick,
        integrity,
        foreign_key_violations,
        foreign_key_examples,
        journal_mode,
        leftovers,
        filesystem: fs_name(fs),
        network_filesystem: fs.is_network(),
    })
}

fn fs_name(fs: Filesystem) -> String {
    match fs {
        Filesystem::Network(name) => name.to_owned(),
        Filesystem::Local => "local".to_owned(),
    }
}

fn integrity(conn: &Connection, quick: bool) -> Vec<String> {
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&format!("PRAGMA {pragma}({LIST_MAX})"))?;
        stmt.query_map([], |r| r.get(0))?.collect()
    };
    match run() {
        Ok(lines) if !lines.is_empty() => lines,
        Ok(_) => vec![format!("{pragma} returned nothing")],
        Err(e) => vec![format!("{pragma} could not run: {e}")],
    }
}

fn foreign_keys(conn: &Connection) -> (u64, Vec<String>) {
    let run = || -> rusqlite::Result<(u64, Vec<String>)> {
        let count = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            count_at(r, 0)
        })?;
        let mut stmt = conn.prepare(&format!(
            "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT {LIST_MAX}"
        ))?;
        let examples = stmt
            .query_map([], |r| {
                let table: String = r.get(0)?;
                let rowid: Option<i64> = r.get(1)?;
                let parent: String = r.get(2)?;
                Ok(match rowid {
                    Some(id) => format!("{table} rowid {id} → {parent}"),
                    None => format!("{table} → {parent}"),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((count, examples))
    };
    // foreign_key_check fails outright when a foreign key names a table that does not exist.
    run().unwrap_or_else(|e| (1, vec![format!("foreign_key_check could not run: {e}")]))
}
