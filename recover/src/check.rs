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
    /// Foreign keys SQLite cannot check because their parent key is neither PRIMARY KEY nor
    /// UNIQUE ("foreign key mismatch"): writes to the child table fail while `foreign_keys` is
    /// on. A warning: the file itself is sound.
    pub foreign_key_mismatches: Vec<String>,
    /// Each virtual table and what its module's own check said (FTS5's and FTS3/4's
    /// `'integrity-check'`, against an external content table too; `rtreecheck()`).
    pub virtual_tables: Vec<VirtualTableHealth>,
    /// `PRAGMA journal_mode`.
    pub journal_mode: String,
    /// Leftovers of interrupted table rebuilds (see [`crate::scan`]).
    pub leftovers: Vec<Finding>,
    /// The filesystem the file is on: "local" or the network filesystem's name.
    pub filesystem: String,
    /// Whether that is a network filesystem, where WAL and file locks cannot be trusted.
    pub network_filesystem: bool,
}

/// What a virtual table's module check said.
#[derive(Debug, Clone, Serialize)]
pub struct VirtualTableHealth {
    /// The virtual table.
    pub name: String,
    /// Its module.
    pub module: String,
    /// `"ok"`, `"not checked: …"`, or the problem the check found.
    pub status: String,
    /// Whether the check found a problem.
    pub failed: bool,
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
            && self.virtual_tables.iter().all(|v| !v.failed)
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
        for m in &self.foreign_key_mismatches {
            writeln!(f, "  warning: {m}")?;
        }
        for v in &self.virtual_tables {
            let mark = if v.failed { "FAILED: " } else { "" };
            writeln!(
                f,
                "  virtual table {} ({}): {mark}{}",
                v.name, v.module, v.status
            )?;
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
                foreign_key_mismatches: Vec::new(),
                virtual_tables: Vec::new(),
                journal_mode: "unknown".to_owned(),
                leftovers: Vec::new(),
                filesystem: fs_name(fs),
                network_filesystem: fs.is_network(),
            });
        }
        Err(e) => return Err(e),
    };
    let integrity = integrity(&conn, quick);
    let (foreign_key_violations, foreign_key_examples, foreign_key_mismatches) =
        foreign_keys(&conn);
    let virtual_tables = virtual_tables(&conn, path, quick);
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
        foreign_key_mismatches,
        virtual_tables,
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

/// Violations counted, the first few, and the foreign keys that cannot be checked, table by
/// table (one foreign key to a non-unique parent makes SQLite refuse the whole-file check).
fn foreign_keys(conn: &Connection) -> (u64, Vec<String>, Vec<String>) {
    let tables = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT m.name FROM main.sqlite_schema AS m, pragma_foreign_key_list(m.name) \
             WHERE m.type = 'table' ORDER BY m.name",
        )?;
        stmt.query_map([], |r| r.get(0))?.collect()
    };
    let tables = match tables() {
        Ok(t) => t,
        Err(e) => {
            return (
                1,
                vec![format!("foreign_key_check could not run: {e}")],
                Vec::new(),
            );
        }
    };
    let (mut count, mut examples, mut mismatches) = (0u64, Vec::new(), Vec::new());
    for table in tables {
        match table_violations(conn, &table, LIST_MAX.saturating_sub(examples.len())) {
            Ok((n, mut first)) => {
                count += n;
                examples.append(&mut first);
            }
            Err(rusqlite::Error::SqliteFailure(_, Some(msg)))
                if msg.starts_with("foreign key mismatch") =>
            {
                mismatches.push(format!(
                    "{msg}: the parent key of a foreign key of {table} is neither PRIMARY KEY nor UNIQUE, so writes to {table} fail while foreign_keys is on; make it PRIMARY KEY or UNIQUE"
                ));
            }
            // foreign_key_check fails outright when a foreign key names a table that does not
            // exist.
            Err(e) => {
                count += 1;
                examples.push(format!("foreign_key_check of {table} could not run: {e}"));
            }
        }
    }
    (count, examples, mismatches)
}

/// Rows of `table` whose foreign key points at nothing (each row once), and the first `max`.
fn table_violations(
    conn: &Connection,
    table: &str,
    max: usize,
) -> rusqlite::Result<(u64, Vec<String>)> {
    let count = conn.query_row(
        "SELECT count(*) FROM (SELECT DISTINCT rowid, parent FROM pragma_foreign_key_check(?1))",
        [table],
        |r| count_at(r, 0),
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT rowid, parent FROM pragma_foreign_key_check(?1) LIMIT {max}"
    ))?;
    let examples = stmt
        .query_map([table], |r| {
            let rowid: Option<i64> = r.get(0)?;
            let parent: String = r.get(1)?;
            Ok(match rowid {
                Some(id) => format!("{table} rowid {id} → {parent}"),
                None => format!("{table} → {parent}"),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok((count, examples))
}

/// Each virtual table's module check. FTS's `'integrity-check'` is an `INSERT` command: it
/// writes nothing, but SQLite runs it only on a connection that may write, so it runs on a
/// second, read-write connection inside a transaction that is rolled back (it holds the write
/// lock while it reads the index). A quick check leaves it to `quick_check`.
fn virtual_tables(conn: &Connection, path: &Path, quick: bool) -> Vec<VirtualTableHealth> {
    let Ok(found) = crate::vtab::read(conn) else {
        return Vec::new();
    };
    let mut writer: Option<rusqlite::Result<Connection>> = None;
    found
        .into_iter()
        .map(|v| {
            let status = if !v.loaded {
                Err(format!("not checked: module {} is not loaded", v.module))
            } else if matches!(v.module.as_str(), "rtree" | "rtree_i32") {
                rtree_check(conn, &v.name).map_err(|e| e.to_string())
            } else if !matches!(v.module.as_str(), "fts3" | "fts4" | "fts5") {
                Err(format!("not checked: module {} has no check", v.module))
            } else if quick {
                Err("not checked: a quick check leaves it to quick_check".to_owned())
            } else {
                let w = writer.get_or_insert_with(|| {
                    let w = Connection::open_with_flags(
                        path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
                    )?;
                    w.busy_timeout(BUSY)?;
                    Ok(w)
                });
                match w {
                    Ok(w) => fts_check(w, &v).map_err(|e| e.to_string()),
                    Err(e) => Err(format!(
                        "not checked: cannot open the file for FTS's check ({e})"
                    )),
                }
            };
            let (status, failed) = match status {
                Ok(()) => ("ok".to_owned(), false),
                Err(s) if s.starts_with("not checked") => (s, false),
                Err(s) => (s, true),
            };
            VirtualTableHealth {
                name: v.name,
                module: v.module,
                status,
                failed,
            }
        })
        .collect()
}

fn rtree_check(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    let said: String = conn.query_row("SELECT rtreecheck(?1)", [name], |r| r.get(0))?;
    if said == "ok" {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT_VTAB),
            Some(said),
        ))
    }
}

/// FTS's `'integrity-check'`; for FTS5 over an external content table, against that table too
/// (rank 1).
fn fts_check(conn: &Connection, v: &crate::vtab::VirtualTableInfo) -> rusqlite::Result<()> {
    let name = crate::sql::quote_ident(&v.name);
    let sql = if v.module == "fts5" && v.content.is_some() {
        format!("INSERT INTO {name} ({name}, rank) VALUES ('integrity-check', 1)")
    } else {
        format!("INSERT INTO {name} ({name}) VALUES ('integrity-check')")
    };
    conn.execute_batch("BEGIN")?;
    let result = conn.execute(&sql, []).map(drop);
    let rolled_back = conn.execute_batch("ROLLBACK");
    result.and(rolled_back)
}
