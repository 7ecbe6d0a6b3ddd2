//! Turning a failed statement into an error that names the table, the constraint and the rows.
//!
//! When a rebuild's copy fails on a constraint of the desired schema (NOT NULL over NULLs, a new
//! UNIQUE over duplicates, a CHECK, a STRICT type), the copy is retried row by row inside a
//! savepoint that is rolled back, to name up to five offending rowids. This runs only on the
//! error path; the whole transaction is rolled back afterwards.

use std::path::Path;

use rusqlite::{Connection, ErrorCode};

use crate::error::MigrateError;
use crate::plan::{Step, StepKind};

const MAX_ROWIDS: usize = 5;

/// The error for statement `sql` of `step` failing with `e`.
pub fn explain(
    conn: &Connection,
    path: &Path,
    step: &Step,
    sql: &str,
    e: rusqlite::Error,
) -> MigrateError {
    if e.sqlite_error_code() != Some(ErrorCode::ConstraintViolation) {
        return MigrateError::from_db(path, &format!("running `{sql}`"), e);
    }
    let constraint = match &e {
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        other => other.to_string(),
    };
    let rowids = if step.kind == StepKind::RebuildTable && sql.starts_with("INSERT INTO") {
        offending_rows(conn, sql).unwrap_or_default()
    } else {
        Vec::new()
    };
    MigrateError::Constraint {
        table: step.target.clone(),
        constraint,
        rowids,
    }
}

/// Re-runs the copy `INSERT INTO x (…) SELECT … FROM temp_x` one source row at a time and
/// returns the first rowids that fail.
fn offending_rows(conn: &Connection, copy: &str) -> rusqlite::Result<Vec<i64>> {
    let Some((_, source)) = copy.rsplit_once(" FROM ") else {
        return Ok(Vec::new());
    };
    conn.execute_batch("SAVEPOINT litekeep_probe")?;
    let result = probe(conn, copy, source);
    conn.execute_batch("ROLLBACK TO litekeep_probe; RELEASE litekeep_probe")?;
    result
}

fn probe(conn: &Connection, copy: &str, source: &str) -> rusqlite::Result<Vec<i64>> {
    let mut ids = conn.prepare(&format!("SELECT rowid FROM {source} ORDER BY rowid"))?;
    let mut one = conn.prepare(&format!("{copy} WHERE rowid = ?1"))?;
    let mut bad = Vec::new();
    let mut rows = ids.query([])?;
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        if let Err(e) = one.execute([rowid]) {
            if e.sqlite_error_code() != Some(ErrorCode::ConstraintViolation) {
                return Err(e);
            }
            bad.push(rowid);
            if bad.len() == MAX_ROWIDS {
                break;
            }
        }
    }
    Ok(bad)
}

/// `foreign_key_check` on the touched tables and every table that references one of them.
pub fn check_foreign_keys(conn: &Connection, touched: &[String]) -> Result<(), MigrateError> {
    let path = std::path::PathBuf::from(conn.path().unwrap_or(""));
    let sqlite = |e| MigrateError::from_db(&path, "checking foreign keys", e);
    let mut tables: Vec<String> = touched.to_vec();
    let mut referrers = conn
        .prepare(
            "SELECT DISTINCT m.name FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS f \
             WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE",
        )
        .map_err(sqlite)?;
    for t in touched {
        let names = referrers
            .query_map([t], |r| r.get::<_, String>(0))
            .map_err(sqlite)?;
        for name in names {
            let name = name.map_err(sqlite)?;
            if !tables.iter().any(|x| x.eq_ignore_ascii_case(&name)) {
                tables.push(name);
            }
        }
    }
    let mut check = conn
        .prepare("SELECT rowid, parent FROM pragma_foreign_key_check(?1)")
        .map_err(sqlite)?;
    for table in &tables {
        let mut parent = String::new();
        let mut rowids = Vec::new();
        let mut rows = check.query([table]).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            parent = row.get(1).map_err(sqlite)?;
            if let Some(id) = row.get::<_, Option<i64>>(0).map_err(sqlite)? {
                rowids.push(id);
            }
            if rowids.len() == MAX_ROWIDS {
                break;
            }
        }
        if !parent.is_empty() {
            return Err(MigrateError::Constraint {
                table: table.clone(),
                constraint: format!("FOREIGN KEY to {parent}"),
                rowids,
            });
        }
    }
    Ok(())
}
