//! [`apply`] and [`migrate`]: run a plan in ONE transaction under the exclusive lock.
//!
//! Why the pragmas: `ALTER TABLE x RENAME TO temp_x` rewrites every other table's
//! `REFERENCES x`, and every view and trigger naming `x`, to `"temp_x"` — unless both
//! `legacy_alter_table=ON` and `foreign_keys=OFF` — and the rebuild's `DROP TABLE temp_x` would
//! then leave them dangling (`tests/sqlite_behaviour.rs` proves it on the bundled SQLite).
//! `foreign_keys` can only change outside a transaction, so both are set before `BEGIN
//! IMMEDIATE` and restored after, whatever happens. Before `COMMIT`, `foreign_key_check` on
//! the touched tables and a re-read of the schema that must equal the desired one; anything
//! else rolls back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litekeep_lock::{FileLock, Mode, Wait};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::diff::diff;
use crate::error::MigrateError;
use crate::options::Options;
use crate::plan::Plan;
use crate::schema::{Fingerprint, Schema};
use litekeep_recover::quote_ident;

/// What a migration did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// The plan (empty when the database was up to date).
    pub plan: Plan,
    /// Whether the plan was applied (false for a dry run or an up-to-date database).
    pub applied: bool,
    /// The fingerprint before.
    pub before: Fingerprint,
    /// The fingerprint after (equal to `before` when nothing was applied).
    pub after: Fingerprint,
    /// How long it took, lock wait included.
    pub elapsed: Duration,
}

impl Report {
    /// Nothing needed doing.
    pub fn up_to_date(&self) -> bool {
        self.plan.is_empty()
    }
}

/// Brings the database at `path` to the schema `desired_sql` (created if missing).
///
/// Fast path: when the database already has that schema, returns without taking the exclusive
/// lock. Otherwise takes the exclusive litekeep lock on `<path>.lock`, plans again under it and
/// applies the plan in one transaction (see [`apply`]).
///
/// # Errors
/// See [`MigrateError`]: malformed DDL, a file that is not a database, a read-only file, the lock
/// held past the timeout, data loss not allowed, constraint violations, a full disk. In every
/// case the database is unchanged.
///
/// ```
/// use litekeep_migrate::{migrate, Options};
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let db = dir.join("app.db");
/// # let _ = std::fs::remove_file(&db);
/// migrate(&db, "CREATE TABLE files (id INTEGER PRIMARY KEY, size INTEGER);", &Options::default()).unwrap();
/// let report = migrate(&db, "CREATE TABLE files (id INTEGER PRIMARY KEY, size TEXT);", &Options::default()).unwrap();
/// assert!(report.applied);
/// let again = migrate(&db, "CREATE TABLE files (id INTEGER PRIMARY KEY, size TEXT);", &Options::default()).unwrap();
/// assert!(again.up_to_date());
/// ```
pub fn migrate(
    path: impl AsRef<Path>,
    desired_sql: &str,
    options: &Options,
) -> Result<Report, MigrateError> {
    let start = Instant::now();
    let path = path.as_ref();
    let desired = Schema::from_sql(desired_sql)?;
    let flags = if options.dry_run {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    litekeep_recover::check_journal_files(path)?;
    let mut conn = Connection::open_with_flags(path, flags)
        .map_err(|e| MigrateError::from_db(path, "opening the database", e))?;
    let current = read_schema(&conn, path)?;
    if options.dry_run || crate::diff::up_to_date(&current, &desired, options)? {
        let plan = diff(&current, &desired, options)?;
        return Ok(finish(plan, false, start));
    }
    let lock = FileLock::for_database(path)?.with_label(&options.label);
    // Reentrant: a caller that already holds the exclusive lock (`litekeep::Database::open`
    // does, around recover + migrate) is counted, not refused.
    let _guard = lock.acquire_reentrant(Mode::Exclusive, Wait::Timeout(options.lock_timeout))?;
    // A leftover of an interrupted rebuild (by any tool) is repaired first, by `recover`; a
    // table the desired schema itself declares is not a leftover, whatever its name.
    if let Some(f) = litekeep_recover::scan(&conn)?.into_iter().find(|f| {
        f.action.changes_anything()
            && !desired
                .tables
                .keys()
                .any(|t| t.eq_ignore_ascii_case(&f.table))
    }) {
        return Err(MigrateError::Leftover {
            leftover: f.table,
            table: f.original,
        });
    }
    // Then the write gate: litekeep writers in flight finish, the next ones queue behind the
    // migration (lock order: schema lock, then gate; see `litekeep_lock::write_gate_path_for`).
    let _gate = write_gate(path, options)?;
    // Plan again under the lock: another process may have migrated meanwhile.
    let current = read_schema(&conn, path)?;
    let plan = diff(&current, &desired, options)?;
    let mut report = apply_locked(&mut conn, path, plan, options)?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Applies `plan` to the database `conn` is open on, under the exclusive lock on its lock file
/// (in-memory databases need none). Refuses a plan that drops data unless
/// [`Options::allow_data_loss`], and a plan made for another schema.
///
/// # Errors
/// As [`migrate`].
///
/// ```
/// use litekeep_migrate::{Options, Schema, apply, diff};
/// # let tmp = tempfile::tempdir().unwrap();
/// let mut conn = rusqlite::Connection::open(tmp.path().join("app.db")).unwrap();
/// conn.execute_batch("CREATE TABLE t (a INTEGER);").unwrap();
/// let current = Schema::read(&conn)?;
/// let desired = Schema::from_sql("CREATE TABLE t (a INTEGER, b TEXT);")?;
/// let plan = diff(&current, &desired, &Options::default())?;
/// assert!(apply(&mut conn, plan, &Options::default())?.applied);
/// # Ok::<(), litekeep_migrate::MigrateError>(())
/// ```
pub fn apply(conn: &mut Connection, plan: Plan, options: &Options) -> Result<Report, MigrateError> {
    let start = Instant::now();
    let path = PathBuf::from(conn.path().unwrap_or(""));
    if path.as_os_str().is_empty() {
        return apply_locked(conn, &path, plan, options);
    }
    let lock = FileLock::for_database(&path)?.with_label(&options.label);
    // Reentrant: a caller that already holds the exclusive lock (`litekeep::Database::open`
    // does, around recover + migrate) is counted, not refused.
    let _guard = lock.acquire_reentrant(Mode::Exclusive, Wait::Timeout(options.lock_timeout))?;
    let _gate = write_gate(&path, options)?;
    let mut report = apply_locked(conn, &path, plan, options)?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// The write gate of `path`, taken exclusively (refused at once, not waited for, when this
/// thread holds it already: a migration from inside a write transaction would wait on itself).
fn write_gate(path: &Path, options: &Options) -> Result<litekeep_lock::LockGuard, MigrateError> {
    let gate = FileLock::write_gate_for_database(path)?.with_label(&options.label);
    Ok(gate.exclusive(Wait::Timeout(options.lock_timeout))?)
}

fn finish(plan: Plan, applied: bool, start: Instant) -> Report {
    Report {
        before: plan.from,
        after: if applied { plan.to } else { plan.from },
        plan,
        applied,
        elapsed: start.elapsed(),
    }
}

fn read_schema(conn: &Connection, path: &Path) -> Result<Schema, MigrateError> {
    Schema::read(conn).map_err(|e| match e {
        MigrateError::Sqlite { source, .. } => {
            MigrateError::from_db(path, "reading the schema", source)
        }
        other => other,
    })
}

fn apply_locked(
    conn: &mut Connection,
    path: &Path,
    plan: Plan,
    options: &Options,
) -> Result<Report, MigrateError> {
    let start = Instant::now();
    if let Some(loss) = plan.data_loss.first().filter(|_| !options.allow_data_loss) {
        return Err(MigrateError::DataLoss {
            what: plan
                .data_loss
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            table: loss.table.clone(),
            column: loss.column.clone(),
        });
    }
    if plan.is_empty() || options.dry_run {
        return Ok(finish(plan, false, start));
    }
    // A rebuild that cannot fit is refused before it writes anything.
    if let Some((free, needed)) = crate::space::shortfall(conn, path, &plan) {
        return Err(MigrateError::DiskFull {
            path: path.to_owned(),
            free: Some(free),
            needed: Some(needed),
        });
    }
    let db = |context: &str| {
        let context = context.to_owned();
        move |e| MigrateError::from_db(path, &context, e)
    };
    conn.busy_timeout(options.lock_timeout)
        .map_err(db("setting busy_timeout"))?;
    let fk: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .map_err(db("reading PRAGMA foreign_keys"))?;
    let legacy: bool = conn
        .query_row("PRAGMA legacy_alter_table", [], |r| r.get(0))
        .map_err(db("reading PRAGMA legacy_alter_table"))?;
    // A copied column that is not there must be an error, not the string literal SQLite's
    // double-quoted-string misfeature would copy into every row.
    let dqs = conn
        .db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML)
        .map_err(db("reading the double-quoted-strings setting"))?;
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(db("reading PRAGMA synchronous"))?;
    // EXTRA: FULL, and in rollback-journal mode the directory is synced after the journal is
    // deleted. That deletion is the commit; without the sync a power cut right after `migrate`
    // returned could bring the journal back and roll the migration back
    // (`faults/tests/power_loss.rs` shows it; `tests/power_cut.rs` checks that it does not).
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; PRAGMA synchronous = EXTRA",
    )
    .map_err(db("setting migration pragmas"))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
        .map_err(db("turning off double-quoted strings"))?;
    let result = run_in_transaction(conn, path, &plan);
    let dqs_restored = conn
        .set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, dqs)
        .map_err(db("restoring double-quoted strings"));
    let restore = format!(
        "PRAGMA foreign_keys = {}; PRAGMA legacy_alter_table = {}; PRAGMA synchronous = {}",
        u8::from(fk),
        u8::from(legacy),
        synchronous
    );
    let restored = conn
        .execute_batch(&restore)
        .map_err(db("restoring pragmas"));
    if let Err(MigrateError::DiskFull { path, free, .. }) = result {
        // The disk filled up anyway (the estimate was short, or something else wrote): say how
        // much room the migration needs, read now that the rollback freed what it wrote.
        return Err(MigrateError::DiskFull {
            path,
            free,
            needed: crate::space::needed_by(conn, &plan),
        });
    }
    result?;
    restored?;
    dqs_restored?;
    Ok(finish(plan, true, start))
}

fn run_in_transaction(conn: &mut Connection, path: &Path, plan: &Plan) -> Result<(), MigrateError> {
    let db = |context: String| move |e| MigrateError::from_db(path, &context, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("beginning the migration transaction".into()))?;
    let current = read_schema(&tx, path)?;
    if current.fingerprint() != plan.from {
        return Err(MigrateError::Changed {
            path: path.to_owned(),
        });
    }
    for step in &plan.steps {
        for sql in &step.sql {
            if let Err(e) = tx.execute_batch(sql) {
                return Err(crate::violations::explain(&tx, path, step, sql, e));
            }
        }
    }
    crate::violations::check_foreign_keys(&tx, &plan.touched)?;
    let after = read_schema(&tx, path)?;
    let difference = after.describe_difference(&plan.desired);
    if !difference.is_empty() {
        return Err(MigrateError::Verify { difference });
    }
    record_history(&tx, plan).map_err(db("recording the migration in _litekeep_history".into()))?;
    tx.commit().map_err(db("committing the migration".into()))
}

/// The table every applied migration is recorded in.
const HISTORY: &str = "_litekeep_history";

fn record_history(conn: &Connection, plan: &Plan) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _litekeep_history (
            id INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            fingerprint_before TEXT NOT NULL,
            fingerprint_after TEXT NOT NULL,
            statements TEXT NOT NULL,
            fingerprint_declared TEXT
        )",
    )?;
    // Files from before the column existed get it (NULL in their old rows).
    if !has_declared_column(conn)? {
        conn.execute_batch("ALTER TABLE _litekeep_history ADD COLUMN fingerprint_declared TEXT")?;
    }
    conn.execute(
        &format!(
            "INSERT INTO {} (fingerprint_before, fingerprint_after, statements, fingerprint_declared) \
             VALUES (?1, ?2, ?3, ?4)",
            quote_ident(HISTORY)
        ),
        (
            plan.from.to_string(),
            plan.to.to_string(),
            plan.sql(),
            plan.declared.to_string(),
        ),
    )?;
    Ok(())
}

fn has_declared_column(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = 'fingerprint_declared'",
        [HISTORY],
        |r| r.get(0),
    )
}

/// Whether the database `conn` is open on has moved past the schema with fingerprint
/// `declared`: `_litekeep_history` shows a migration away from it (the file was at it, or a
/// migration to it was followed by another). Rolling deploys use this so that an older program
/// never migrates a file back to its older schema (see `litekeep::Builder::open`).
///
/// # Errors
/// [`MigrateError::Sqlite`] when the history cannot be read.
///
/// ```
/// use litekeep_migrate::{Options, Schema, migrate, superseded};
/// # let tmp = tempfile::tempdir().unwrap();
/// let db = tmp.path().join("app.db");
/// let v1 = "CREATE TABLE t (a INTEGER);";
/// migrate(&db, v1, &Options::default())?;
/// migrate(&db, "CREATE TABLE t (a INTEGER, b TEXT);", &Options::default())?;
/// let conn = rusqlite::Connection::open(&db).unwrap();
/// assert!(superseded(&conn, Schema::from_sql(v1)?.fingerprint())?);
/// # Ok::<(), litekeep_migrate::MigrateError>(())
/// ```
pub fn superseded(conn: &Connection, declared: Fingerprint) -> Result<bool, MigrateError> {
    let read = || -> rusqlite::Result<bool> {
        let exists: bool = conn.query_row(
            "SELECT count(*) > 0 FROM main.sqlite_schema WHERE type = 'table' AND name = ?1",
            [HISTORY],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(false);
        }
        let fp = declared.to_string();
        let target = if has_declared_column(conn)? {
            "fingerprint_after = ?1 OR fingerprint_declared = ?1"
        } else {
            "fingerprint_after = ?1"
        };
        conn.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM _litekeep_history WHERE fingerprint_before = ?1) \
                 OR EXISTS (SELECT 1 FROM _litekeep_history h WHERE ({target}) \
                            AND EXISTS (SELECT 1 FROM _litekeep_history l WHERE l.id > h.id))"
            ),
            [&fp],
            |r| r.get(0),
        )
    };
    let path = std::path::PathBuf::from(conn.path().unwrap_or(""));
    read().map_err(|e| MigrateError::from_db(&path, "reading _litekeep_history", e))
}
