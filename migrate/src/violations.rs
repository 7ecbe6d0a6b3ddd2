//! Turning a failed statement into an error that names the table, the constraint and the rows.
//!
//! When a rebuild's copy fails on a constraint of the desired schema (NOT NULL over NULLs, a new
//! UNIQUE over duplicates, a CHECK, a STRICT type), the copy is retried row by row inside a
//! savepoint that is rolled back, to name up to five offending rowids. This runs only on the
//! error path; the whole transaction is rolled back afterwards.

use std::path::Path;

use rusqlite::{Connection, ErrorCode};

use crate::error::MigrateError;
use crate::options::Rename;
use crate::plan::{Plan, Step, StepKind, Violation};
use litekeep_recover::sql::quote_literal;

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
    if step.kind == StepKind::Create
        && let Some((table, columns, filter)) = unique_index_parts(sql)
    {
        return MigrateError::UniqueIndex {
            index: step.target.clone(),
            rowids: duplicate_rows(conn, &table, &columns, filter.as_deref()).unwrap_or_default(),
            table,
            constraint,
        };
    }
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

/// The TEMP table that holds the foreign-key violations found before the migration's steps.
const BEFORE: &str = "_litekeep_fk_before";

/// The tables whose foreign keys a plan is checked on: the touched ones and every table that
/// references one of them, by their names in the schema `conn` has now.
fn tables_to_check(conn: &Connection, touched: &[String]) -> rusqlite::Result<Vec<String>> {
    let mut tables: Vec<String> = touched.to_vec();
    let mut referrers = conn.prepare(
        "SELECT DISTINCT m.name FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS f \
         WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE",
    )?;
    for t in touched {
        let names = referrers.query_map([t], |r| r.get::<_, String>(0))?;
        for name in names {
            let name = name?;
            if !tables.iter().any(|x| x.eq_ignore_ascii_case(&name)) {
                tables.push(name);
            }
        }
    }
    Ok(tables)
}

/// The name `name` has after the plan's table renames.
fn renamed(plan: &Plan, name: &str) -> String {
    plan.renames
        .iter()
        .find_map(|r| match &r.rename {
            Rename::Table { from, to } if from.eq_ignore_ascii_case(name) => Some(to.clone()),
            _ => None,
        })
        .unwrap_or_else(|| name.to_owned())
}

/// The name the plan's table `name` has before its renames.
fn source_name(plan: &Plan, name: &str) -> String {
    plan.renames
        .iter()
        .find_map(|r| match &r.rename {
            Rename::Table { from, to } if to.eq_ignore_ascii_case(name) => Some(from.clone()),
            _ => None,
        })
        .unwrap_or_else(|| name.to_owned())
}

/// The tables of the plan, by their names before it runs.
fn sources(plan: &Plan) -> Vec<String> {
    plan.touched.iter().map(|t| source_name(plan, t)).collect()
}

/// Rows that violate a foreign key now, in the tables `plan` touches and those referencing
/// them, grouped by (table, parent), each row counted once: the plan's warnings. Read-only.
pub(crate) fn existing(conn: &Connection, plan: &Plan) -> rusqlite::Result<Vec<Violation>> {
    let mut out = Vec::new();
    let mut groups = conn.prepare(
        "SELECT parent, count(DISTINCT coalesce(rowid, 'none')) FROM pragma_foreign_key_check(?1) \
         GROUP BY lower(parent) ORDER BY parent",
    )?;
    let mut first = conn.prepare(&format!(
        "SELECT DISTINCT rowid FROM pragma_foreign_key_check(?1) \
         WHERE parent = ?2 COLLATE NOCASE AND rowid IS NOT NULL ORDER BY rowid LIMIT {MAX_ROWIDS}"
    ))?;
    for table in tables_to_check(conn, &sources(plan))? {
        if !exists(conn, &table)? {
            continue;
        }
        let found = match groups
            .query_map([&table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        {
            Ok(found) => found,
            // A foreign key to a non-unique parent cannot be checked (it is reported apart).
            Err(e) if mismatched_parent(&e).is_some() => continue,
            Err(e) => return Err(e),
        };
        for (parent, count) in found {
            let rowids = first
                .query_map((&table, &parent), |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            out.push(Violation {
                table: renamed(plan, &table),
                parent: renamed(plan, &parent),
                count: u64::try_from(count).unwrap_or(0),
                rowids,
            });
        }
    }
    Ok(out)
}

fn exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM main.sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
        [table],
        |r| r.get(0),
    )
}

/// Records, in a TEMP table of this connection, the foreign-key violations there are before the
/// plan's steps run (in its transaction), under the names the tables will have after it.
pub(crate) fn record_before(conn: &Connection, plan: &Plan) -> Result<(), MigrateError> {
    let path = std::path::PathBuf::from(conn.path().unwrap_or(""));
    let sqlite = |e| MigrateError::from_db(&path, "reading the foreign-key violations", e);
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {BEFORE} (tbl TEXT, rid INTEGER, parent TEXT); \
         DELETE FROM temp.{BEFORE};"
    ))
    .map_err(sqlite)?;
    let mut insert = conn
        .prepare(&format!(
            "INSERT INTO temp.{BEFORE} SELECT lower(?2), rowid, lower({}) FROM pragma_foreign_key_check(?1)",
            parent_after(plan)
        ))
        .map_err(sqlite)?;
    for table in tables_to_check(conn, &sources(plan)).map_err(sqlite)? {
        if !exists(conn, &table).map_err(sqlite)? {
            continue;
        }
        match insert.execute([&table, &renamed(plan, &table)]) {
            Ok(_) => {}
            Err(e) if mismatched_parent(&e).is_some() => {}
            Err(e) => return Err(sqlite(e)),
        }
    }
    Ok(())
}

/// SQL for the `parent` column of `foreign_key_check` as named after the plan's renames.
fn parent_after(plan: &Plan) -> String {
    let mut cases = String::new();
    for r in &plan.renames {
        if let Rename::Table { from, to } = &r.rename {
            cases.push_str(&format!(
                " WHEN {} THEN {}",
                quote_literal(&from.to_ascii_lowercase()),
                quote_literal(to)
            ));
        }
    }
    if cases.is_empty() {
        "parent".to_owned()
    } else {
        format!("CASE lower(parent){cases} ELSE parent END")
    }
}

/// (table, indexed expressions, WHERE clause) of a `CREATE UNIQUE INDEX` statement.
fn unique_index_parts(sql: &str) -> Option<(String, Vec<String>, Option<String>)> {
    use crate::tokens::{Kind, tokenize};
    let tokens = tokenize(sql);
    let code: Vec<_> = tokens.iter().filter(|t| !t.is_comment()).collect();
    if !code.iter().take(3).any(|t| t.is_word("unique")) {
        return None;
    }
    let on = code.iter().position(|t| t.is_word("on"))?;
    let table = code.get(on + 1)?.ident()?;
    let open = on + 2;
    if code.get(open)?.kind != Kind::Punct('(') {
        return None;
    }
    let mut depth = 0usize;
    let mut columns = Vec::new();
    let mut start = code.get(open + 1)?.start;
    let mut end = None;
    for (i, t) in code.iter().enumerate().skip(open + 1) {
        match t.kind {
            Kind::Punct('(') => depth += 1,
            Kind::Punct(')') if depth > 0 => depth -= 1,
            Kind::Punct(',' | ')') if depth == 0 => {
                columns.push(without_order(sql.get(start..t.start)?));
                if t.kind == Kind::Punct(')') {
                    end = Some(i);
                    break;
                }
                start = code.get(i + 1)?.start;
            }
            _ => {}
        }
    }
    let end = end?;
    let filter = code
        .get(end + 1)
        .filter(|t| t.is_word("where"))
        .and_then(|w| sql.get(w.end..))
        .map(|w| w.trim().trim_end_matches(';').to_owned());
    Some((table, columns, filter))
}

/// An indexed column without its `ASC`/`DESC`.
fn without_order(column: &str) -> String {
    let column = column.trim();
    for suffix in ["asc", "desc"] {
        let n = column.len();
        if n > suffix.len()
            && column[n - suffix.len()..].eq_ignore_ascii_case(suffix)
            && column[..n - suffix.len()].ends_with(|c: char| c.is_whitespace())
        {
            return column[..n - suffix.len()].trim_end().to_owned();
        }
    }
    column.to_owned()
}

/// The first rowids of rows of `table` that share the values of `columns` with another row
/// (rows with a NULL among them never clash), among those `filter` (a partial index) selects.
fn duplicate_rows(
    conn: &Connection,
    table: &str,
    columns: &[String],
    filter: Option<&str>,
) -> rusqlite::Result<Vec<i64>> {
    let mut conditions: Vec<String> = columns
        .iter()
        .map(|c| format!("({c}) IS NOT NULL"))
        .collect();
    conditions.extend(filter.map(|f| format!("({f})")));
    let sql = format!(
        "SELECT rowid FROM (SELECT rowid, count(*) OVER (PARTITION BY {}) AS n FROM {} WHERE {})          WHERE n > 1 ORDER BY rowid LIMIT {MAX_ROWIDS}",
        columns.join(", "),
        litekeep_recover::quote_ident(table),
        conditions.join(" AND ")
    );
    let mut stmt = conn.prepare(&sql)?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// `foreign_key_check` on the touched tables and every table that references one of them,
/// against what [`record_before`] found: only violations the migration adds are refused, each
/// row named once.
pub fn check_foreign_keys(conn: &Connection, plan: &Plan) -> Result<(), MigrateError> {
    let path = std::path::PathBuf::from(conn.path().unwrap_or(""));
    let sqlite = |e| MigrateError::from_db(&path, "checking foreign keys", e);
    let mut added = conn
        .prepare(&format!(
            "SELECT rowid, parent FROM (SELECT DISTINCT rowid, lower(parent) AS parent \
               FROM pragma_foreign_key_check(?1) WHERE rowid IS NOT NULL \
             EXCEPT SELECT rid, parent FROM temp.{BEFORE} WHERE tbl = lower(?1)) \
             ORDER BY rowid LIMIT {MAX_ROWIDS}"
        ))
        .map_err(sqlite)?;
    // Rows of a WITHOUT ROWID table have no rowid to tell them apart: counted instead.
    let mut keyless = conn
        .prepare(&format!(
            "SELECT a.parent FROM (SELECT lower(parent) AS parent, count(*) AS n \
               FROM pragma_foreign_key_check(?1) WHERE rowid IS NULL GROUP BY 1) AS a \
             WHERE a.n > (SELECT count(*) FROM temp.{BEFORE} AS b \
                          WHERE b.tbl = lower(?1) AND b.rid IS NULL AND b.parent = a.parent) \
             LIMIT 1"
        ))
        .map_err(sqlite)?;
    for table in tables_to_check(conn, &plan.touched).map_err(sqlite)? {
        if !exists(conn, &table).map_err(sqlite)? {
            continue;
        }
        let rows = added
            .query_map([&table], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>);
        let rows = match rows {
            Ok(rows) => rows,
            // SQLite cannot check a foreign key to a non-unique parent; the plan warns of it.
            Err(e) if mismatched_parent(&e).is_some() => continue,
            Err(e) => return Err(sqlite(e)),
        };
        let parent = match rows.first() {
            Some((_, parent)) => Some(parent.clone()),
            None => keyless
                .query_row([&table], |r| r.get::<_, String>(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(sqlite)?,
        };
        if let Some(parent) = parent {
            return Err(MigrateError::Constraint {
                table: table.clone(),
                constraint: format!(
                    "FOREIGN KEY to {parent}; rows that violated it before the migration are not counted"
                ),
                rowids: rows.into_iter().map(|(id, _)| id).collect(),
            });
        }
    }
    Ok(())
}

/// The parent table a "foreign key mismatch - "child" referencing "parent"" error names: SQLite's
/// word for a foreign key whose parent key is neither PRIMARY KEY nor UNIQUE.
pub(crate) fn mismatched_parent(e: &rusqlite::Error) -> Option<String> {
    let rusqlite::Error::SqliteFailure(_, Some(msg)) = e else {
        return None;
    };
    let rest = msg.strip_prefix("foreign key mismatch - ")?;
    let (_, parent) = rest.rsplit_once(" referencing ")?;
    Some(parent.trim_matches('"').to_owned())
}
