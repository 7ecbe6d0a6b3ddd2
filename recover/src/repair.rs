//! [`recover`]: repair every finding of a scan in one transaction under the exclusive lock on
//! the database's lock file, verify, and commit — or roll back and say why.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litekeep_lock::{FileLock, Mode, Wait};
use rusqlite::{Connection, ErrorCode};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::catalog::count_at;
use crate::compare;
use crate::error::RecoverError;
use crate::finding::{Action, Finding};
use crate::open::open;
use crate::options::Options;
use crate::refs::{Keep, StepError, put_in_place};
use crate::scan::scan_with;
use crate::sql::quote_ident;

/// What [`recover`] found and did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The database.
    pub path: PathBuf,
    /// Every finding, with the action taken (or, in a dry run or when nothing was applied,
    /// the action planned).
    pub findings: Vec<Finding>,
    /// Details of the repair: indexes and triggers recreated or not, fallbacks taken.
    pub notes: Vec<String>,
    /// Whether the file was changed.
    pub applied: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// How long it took.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Report {
    /// Whether there was nothing to repair. Example: [`recover`].
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings left as they were because no repair was provably lossless; each says why
    /// in its [`Action::Leave`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = tmp.path().join("app.db");
    /// // Both tables hold row 1, with other values: no lossless repair is provable.
    /// rusqlite::Connection::open(&db).unwrap().execute_batch(
    ///     "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT);
    ///      CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT);
    ///      INSERT INTO files VALUES (1, 'a.rs'); INSERT INTO new__files VALUES (1, 'b.rs');",
    /// ).unwrap();
    /// let report = litekeep_recover::recover(&db, &litekeep_recover::Options::default())?;
    /// assert!(!report.applied && report.left().count() == 1);
    /// # Ok::<(), litekeep_recover::RecoverError>(())
    /// ```
    pub fn left(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| !f.action.changes_anything())
    }
}

/// Scans `path` and repairs every leftover of an interrupted table rebuild that can be repaired
/// without losing a row: all of it in one `BEGIN IMMEDIATE` transaction, under the exclusive
/// lock on the database's lock file (see `litekeep_lock::lock_path_for`), with `foreign_keys`
/// off for the duration. Before committing it checks that every row of every leftover is in
/// the table kept, that no repaired leftover remains, and that no view broke and no foreign key
/// violation appeared; otherwise it rolls back. Idempotent: a second run finds nothing.
/// Findings whose evidence is ambiguous are reported ([`Report::left`]) and left untouched.
///
/// ```
/// use litekeep_recover::{recover, Options};
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let db = dir.join("app.db");
/// # let _ = std::fs::remove_file(&db);
/// // A Django rebuild that died after dropping the original:
/// rusqlite::Connection::open(&db).unwrap().execute_batch("
///     CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT);
///     INSERT INTO new__files (path) VALUES ('a.rs');
/// ").unwrap();
/// let report = recover(&db, &Options::default()).unwrap();
/// assert!(report.applied);
/// let again = recover(&db, &Options::default()).unwrap();
/// assert!(again.is_clean());
/// ```
///
/// # Errors
/// [`RecoverError`]: the file is missing, not a database, damaged or read-only; the lock is held
/// past [`Options::lock_timeout`] (the error names the holder); SQLite refused a step. In every
/// case the file is unchanged.
pub fn recover(path: impl AsRef<Path>, options: &Options) -> Result<Report, RecoverError> {
    let start = Instant::now();
    let path = path.as_ref();
    // A file that cannot be written can still be scanned: it is an error only if it needs a
    // repair.
    let (conn, writable) = match open(path, !options.dry_run, options.lock_timeout) {
        Err(RecoverError::ReadOnly { .. }) => (open(path, false, options.lock_timeout)?, false),
        other => (other?, !options.dry_run),
    };
    let findings = scan_with(&conn, options)?;
    let mut report = Report {
        path: path.to_path_buf(),
        findings,
        notes: Vec::new(),
        applied: false,
        dry_run: options.dry_run,
        elapsed: Duration::ZERO,
    };
    if options.dry_run || !report.findings.iter().any(|f| f.action.changes_anything()) {
        report.elapsed = start.elapsed();
        return Ok(report);
    }
    if !writable {
        return Err(RecoverError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    let lock = FileLock::for_database(path)?.with_label(&options.label);
    // Reentrant: a caller that already holds the exclusive lock (`litekeep::Database::open`
    // does, around recover + migrate) is counted, not refused.
    let _guard = lock.acquire_reentrant(Mode::Exclusive, Wait::Timeout(options.lock_timeout))?;
    // Then the write gate, so litekeep writers in flight finish and the next ones queue behind
    // the repair (lock order: schema lock, then gate).
    let gate = FileLock::write_gate_for_database(path)?.with_label(&options.label);
    let _gate = gate.exclusive(Wait::Timeout(options.lock_timeout))?;
    refuse_damaged(&conn, path)?;
    let fk_was: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .map_err(RecoverError::db(path, "reading foreign_keys"))?;
    // EXTRA (this connection is recover's own): in rollback-journal mode the commit is the
    // journal's deletion, which only EXTRA makes durable by syncing the directory; without it
    // a power cut right after `recover` returned could bring the journal back and undo the
    // repair.
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA synchronous = EXTRA")
        .map_err(RecoverError::db(path, "turning foreign_keys off"))?;
    let result = repair_all(&conn, path, options, &mut report);
    let restore = conn.execute_batch(&format!("PRAGMA foreign_keys = {}", u8::from(fk_was)));
    result?;
    restore.map_err(RecoverError::db(path, "restoring foreign_keys"))?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// The SQLite error code in a `quick_check` row, when it names an I/O or full-disk failure.
fn io_code_in(row: &str) -> Option<i32> {
    let code: i32 = row
        .split("error code=")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    matches!(
        code & 0xff,
        rusqlite::ffi::SQLITE_IOERR | rusqlite::ffi::SQLITE_FULL | rusqlite::ffi::SQLITE_NOMEM
    )
    .then_some(code)
}

fn refuse_damaged(conn: &Connection, path: &Path) -> Result<(), RecoverError> {
    let first: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(RecoverError::db(path, "running quick_check"))?;
    if first == "ok" {
        return Ok(());
    }
    // A page that could not be read shows up as a row "… unable to get the page. error
    // code=266": that is an I/O error (266 = SQLITE_IOERR_READ), not damage in the file (found
    // by the I/O-error tests).
    if let Some(code) = io_code_in(&first) {
        return Err(RecoverError::from_db(
            path,
            "checking the file (quick_check)",
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(first)),
        ));
    }
    {
        Err(RecoverError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("quick_check: {first}"),
        })
    }
}

fn repair_all(
    conn: &Connection,
    path: &Path,
    options: &Options,
    report: &mut Report,
) -> Result<(), RecoverError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(RecoverError::db(path, "starting the repair transaction"))?;
    let result = (|| {
        // Scan again under the lock: another process may have repaired or changed it.
        report.findings = scan_with(conn, options)?;
        let before = Health::of(conn).map_err(RecoverError::db(path, "checking references"))?;
        for finding in &mut report.findings {
            if !finding.action.changes_anything() {
                continue;
            }
            let (action, notes) = repair(conn, finding).map_err(|e| step_error(path, e))?;
            finding.action = action;
            report.notes.extend(notes);
        }
        verify(conn, path, options, report, &before)
    })();
    // A failure of the database itself (I/O, a full disk) can roll the transaction back under
    // us; then nothing of it may be committed, whatever the steps reported.
    let result = result.and_then(|()| {
        if conn.is_autocommit() {
            Err(RecoverError::Verify {
                path: path.to_path_buf(),
                detail: "the repair transaction ended early (an I/O error rolled it back)".into(),
            })
        } else {
            Ok(())
        }
    });
    match result {
        Ok(()) => {
            report.applied = report.findings.iter().any(|f| f.action.changes_anything());
            // Every repair fell back to leaving things as they were: roll back, so that not
            // even the header's change counter moves.
            let end = if report.applied { "COMMIT" } else { "ROLLBACK" };
            conn.execute_batch(end)
                .map_err(RecoverError::db(path, "committing the repair"))?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Repairs one finding; returns the action actually taken and notes.
fn repair(conn: &Connection, f: &Finding) -> Result<(Action, Vec<String>), StepError> {
    let (temp, original) = (f.table.as_str(), f.original.as_str());
    match &f.action {
        Action::Leave { .. } => Ok((f.action.clone(), Vec::new())),
        Action::RenameBack => Ok((
            Action::RenameBack,
            put_in_place(conn, temp, original, Keep::Temp)?,
        )),
        Action::DropTemp => {
            ensure_all_present(conn, temp, original)?;
            Ok((
                Action::DropTemp,
                put_in_place(conn, temp, original, Keep::Original)?,
            ))
        }
        Action::Repoint => {
            let sql = format!(
                "CREATE TABLE {} AS SELECT * FROM {} WHERE 0",
                quote_ident(temp),
                quote_ident(original)
            );
            conn.execute_batch(&sql).map_err(StepError::sql(sql))?;
            Ok((
                Action::Repoint,
                put_in_place(conn, temp, original, Keep::Original)?,
            ))
        }
        Action::RestoreRows { .. } | Action::InsertMissing { .. } => {
            let restoring = matches!(f.action, Action::RestoreRows { .. });
            conn.execute_batch("SAVEPOINT lk_copy")
                .map_err(StepError::sql("SAVEPOINT"))?;
            // The copy and the check that it kept every value, together: when either fails,
            // the copy is undone and a repair that loses nothing is chosen instead.
            let copied = copy(conn, temp, original)
                .and_then(|rows| ensure_all_present(conn, temp, original).map(|()| rows));
            let why = match copied {
                Ok(rows) => {
                    conn.execute_batch("RELEASE lk_copy")
                        .map_err(StepError::sql("RELEASE"))?;
                    let notes = put_in_place(conn, temp, original, Keep::Original)?;
                    let rows = rows as u64;
                    let action = if restoring {
                        Action::RestoreRows { rows }
                    } else {
                        Action::InsertMissing { rows }
                    };
                    return Ok((action, notes));
                }
                Err(StepError::Sql { source: e, .. }) if is_constraint(&e) => {
                    format!("breaks a constraint ({e})")
                }
                // Values that the original's column types convert (5 → '5', a big integer →
                // REAL) no longer compare equal: the copy cannot be proven lossless.
                Err(StepError::Check(detail)) => format!("cannot be proven lossless ({detail})"),
                Err(e) => return Err(e),
            };
            conn.execute_batch("ROLLBACK TO lk_copy; RELEASE lk_copy")
                .map_err(StepError::sql("ROLLBACK TO"))?;
            if restoring {
                // The original is empty: putting the leftover back loses nothing.
                let mut notes = vec![format!(
                    "{temp}: copying its rows into {original} {why}; renamed it back instead"
                )];
                notes.extend(put_in_place(conn, temp, original, Keep::Temp)?);
                Ok((Action::RenameBack, notes))
            } else {
                let reason =
                    format!("copying its rows into {original} {why}; compare them by hand");
                Ok((Action::Leave { reason }, Vec::new()))
            }
        }
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

fn copy(conn: &Connection, temp: &str, original: &str) -> Result<usize, StepError> {
    let cat = Catalog::read(conn).map_err(StepError::sql("reading the schema"))?;
    let (Some(t), Some(o)) = (cat.table(temp), cat.table(original)) else {
        return Err(StepError::Check(format!("{temp} or {original} is gone")));
    };
    let pairing = compare::pairing(t, o)
        .ok_or_else(|| StepError::Check(format!("{temp} shares no key with {original}")))?;
    compare::copy_missing(conn, temp, o, &pairing).map_err(StepError::sql(format!(
        "copying rows of {temp} into {original}"
    )))
}

/// The last line of defence before a leftover is dropped: every one of its rows must be in the
/// original, same key and same values.
fn ensure_all_present(conn: &Connection, temp: &str, original: &str) -> Result<(), StepError> {
    let what = format!("checking that every row of {temp} is in {original}");
    let cat = Catalog::read(conn).map_err(StepError::sql(what.clone()))?;
    let (Some(t), Some(o)) = (cat.table(temp), cat.table(original)) else {
        return Err(StepError::Check(format!("{temp} or {original} is gone")));
    };
    let pairing = compare::pairing(t, o)
        .ok_or_else(|| StepError::Check(format!("{temp} shares no key with {original}")))?;
    let total = conn
        .query_row(
            &format!("SELECT count(*) FROM {}", quote_ident(temp)),
            [],
            |r| count_at(r, 0),
        )
        .map_err(StepError::sql(what.clone()))?;
    let overlap =
        compare::overlap(conn, temp, original, &pairing).map_err(StepError::sql(what.clone()))?;
    let extra =
        compare::temp_only_values(conn, temp, &pairing).map_err(StepError::sql(what.clone()))?;
    if overlap.present == total && !extra {
        Ok(())
    } else {
        Err(StepError::Check(format!(
            "{} of the {total} rows of {temp} are not in {original}{}",
            total - overlap.present,
            if extra {
                ", and it holds values in columns the original lacks"
            } else {
                ""
            }
        )))
    }
}

/// What must not get worse: views that work, foreign key violations.
struct Health {
    broken_views: Vec<String>,
    fk_violations: Option<u64>,
}

impl Health {
    fn of(conn: &Connection) -> rusqlite::Result<Health> {
        let cat = Catalog::read(conn)?;
        let broken_views = cat
            .objects
            .iter()
            .filter(|o| o.kind == "view")
            .filter(|o| {
                conn.prepare(&format!("SELECT * FROM {} LIMIT 0", quote_ident(&o.name)))
                    .is_err()
            })
            .map(|o| o.name.clone())
            .collect();
        // A foreign key to a missing table makes the check fail; that is "unknown", not "0".
        let fk_violations = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                count_at(r, 0)
            })
            .ok();
        Ok(Health {
            broken_views,
            fk_violations,
        })
    }
}

fn verify(
    conn: &Connection,
    path: &Path,
    options: &Options,
    report: &Report,
    before: &Health,
) -> Result<(), RecoverError> {
    let fail = |detail: String| RecoverError::Verify {
        path: path.to_path_buf(),
        detail,
    };
    let after = Health::of(conn).map_err(RecoverError::db(path, "verifying the repair"))?;
    if let Some(v) = after
        .broken_views
        .iter()
        .find(|v| !before.broken_views.contains(v))
    {
        return Err(fail(format!("view {v} no longer works")));
    }
    match (before.fk_violations, after.fk_violations) {
        // Still unknown only if it was unknown before (a foreign key to a table that is
        // missing for reasons of its own).
        (Some(_), None) => return Err(fail("foreign_key_check fails".to_owned())),
        (Some(b), Some(a)) if a > b => {
            return Err(fail(format!("{} new foreign key violations", a - b)));
        }
        _ => {}
    }
    let again = scan_with(conn, options)?;
    for f in &report.findings {
        if f.action.changes_anything()
            && again.iter().any(|g| g.table.eq_ignore_ascii_case(&f.table))
        {
            return Err(fail(format!("{} is still there", f.table)));
        }
    }
    Ok(())
}

fn step_error(path: &Path, e: StepError) -> RecoverError {
    let (op, e) = match e {
        StepError::Check(detail) => {
            return RecoverError::Verify {
                path: path.to_path_buf(),
                detail,
            };
        }
        StepError::Sql { op, source } => (op, source),
    };
    let msg = e.to_string();
    let schema_trouble = e.sqlite_error_code() == Some(ErrorCode::Unknown)
        && (msg.contains("error in") || msg.contains("no such"));
    if schema_trouble {
        RecoverError::Schema {
            path: path.to_path_buf(),
            op,
            detail: msg,
        }
    } else {
        RecoverError::from_db(path, &op, e)
    }
}
