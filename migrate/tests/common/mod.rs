//! What the migrate crate's end-to-end tests share: scratch database files, reading them back,
//! and the checks every migration must pass.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};

use litekeep_faults::harness;
use litekeep_migrate::{MigrateError, Options, migrate};
use rusqlite::Connection;
use rusqlite::types::Value;

pub fn temp_db(name: &str) -> PathBuf {
    let dir = harness::process_scratch("migrate-tests");
    let slug: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    let db = dir.join(format!("{slug}.db"));
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    db
}

/// A database file `name` holding `sql` (schema and rows).
pub fn make_db(name: &str, sql: &str) -> PathBuf {
    let db = temp_db(name);
    Connection::open(&db).unwrap().execute_batch(sql).unwrap();
    db
}

/// Every row `query` returns, each value as SQLite stores it.
pub fn rows(db: &Path, query: &str) -> Vec<Vec<Value>> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Names of the user objects of `kind` (`table`, `index`, …), sorted.
pub fn names(db: &Path, kind: &str) -> Vec<String> {
    rows(
        db,
        &format!(
            "SELECT name FROM sqlite_schema WHERE type = '{kind}' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_litekeep\\_%' ESCAPE '\\' \
             ORDER BY name"
        ),
    )
    .into_iter()
    .map(|r| match &r[0] {
        Value::Text(s) => s.clone(),
        other => panic!("name {other:?}"),
    })
    .collect()
}

/// The checks every migrated file must pass: `integrity_check` ok, no foreign key violation, no
/// `temp_*` table left behind, every view readable.
pub fn check_healthy(db: &Path) {
    check_healthy_conn(&Connection::open(db).unwrap());
}

/// [`check_healthy`] on an open connection.
pub fn check_healthy_conn(conn: &Connection) {
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0, "foreign key violations");
    let temps: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'temp\\_%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(temps, 0, "temp_ table left behind");
    let views: Vec<String> =
        harness::column(conn, "SELECT name FROM sqlite_schema WHERE type = 'view'").unwrap();
    for v in views {
        conn.query_row(&format!("SELECT count(*) FROM \"{v}\""), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or_else(|e| panic!("view {v} is broken: {e}"));
    }
}

/// Runs a migration that must be refused, and checks the file is byte-for-byte unchanged.
pub fn refused(db: &Path, desired: &str, opts: &Options) -> MigrateError {
    let bytes = std::fs::read(db).unwrap();
    let err = migrate(db, desired, opts).unwrap_err();
    assert_eq!(
        std::fs::read(db).unwrap(),
        bytes,
        "a refused migration changed the file: {err}"
    );
    err
}
