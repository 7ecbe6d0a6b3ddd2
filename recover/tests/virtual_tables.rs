//! Virtual tables in recovery and checks: a shadow table is never a leftover, whatever its name
//! (`temp_notes_data` of an FTS5 table called `temp_notes` looks like litekeep's own leftover of
//! a table `notes_data`), also when the module that owns it is not loaded; `check` runs each
//! module's own check (FTS5's `'integrity-check'`, against an external content table too;
//! `rtreecheck()`) and names a foreign key SQLite cannot check.

use litekeep_recover::{Options, check, recover, scan};
use rusqlite::Connection;

/// A database made by `sql` in a temporary directory, removed when the directory is dropped.
fn file(name: &str, sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("lk-recover-{name}-"))
        .tempdir()
        .unwrap();
    let db = dir.path().join("app.db");
    Connection::open(&db).unwrap().execute_batch(sql).unwrap();
    (dir, db)
}

#[test]
fn shadow_tables_named_like_leftovers_are_never_repaired() {
    // FTS5 tables called `temp_notes` and `new` (shadow tables `temp_notes_data`, `new_data`,
    // …), beside ordinary tables `notes`, `notes_data` and `data`.
    let (_dir, db) = file(
        "shadow_names",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE notes_data (x); CREATE TABLE data (y);
         CREATE VIRTUAL TABLE temp_notes USING fts5(body);
         CREATE VIRTUAL TABLE new USING fts5(body);
         INSERT INTO temp_notes VALUES ('one'), ('two');
         INSERT INTO new VALUES ('three');",
    );
    let bytes = std::fs::read(&db).unwrap();
    let conn = Connection::open(&db).unwrap();
    let found = scan(&conn).unwrap();
    assert!(found.is_empty(), "{found:?}");
    drop(conn);
    let report = recover(&db, &Options::default()).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "recover changed the file"
    );
    let health = check(&db, false).unwrap();
    assert!(health.is_healthy(), "{health}");
    assert_eq!(health.virtual_tables.len(), 2, "{health}");
    assert!(
        health.virtual_tables.iter().all(|v| v.status == "ok"),
        "{health}"
    );
}

#[test]
fn shadow_tables_of_a_module_that_is_not_loaded_are_not_leftovers() {
    // Another program's file: `new` is a vec0 table (this SQLite has no vec0), with its shadow
    // table `new_chunks` — which, without the module, looks like a leftover of `chunks`.
    let (_dir, db) = file(
        "unloaded_module",
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY, d);
         INSERT INTO chunks VALUES (1, 'x');
         CREATE TABLE new_chunks (id INTEGER PRIMARY KEY, d);
         INSERT INTO new_chunks VALUES (7, 'shadow');
         PRAGMA writable_schema = ON;
         INSERT INTO sqlite_schema VALUES ('table', 'new', 'new', 0, 'CREATE VIRTUAL TABLE new USING vec0(e float[4])');
         PRAGMA writable_schema = OFF;",
    );
    let conn = Connection::open(&db).unwrap();
    let found = scan(&conn).unwrap();
    assert!(found.is_empty(), "{found:?}");
    drop(conn);
    let health = check(&db, false).unwrap();
    assert!(health.leftovers.is_empty(), "{health}");
    let vec0 = &health.virtual_tables[0];
    assert!(
        !vec0.failed && vec0.status.contains("not loaded"),
        "{health}"
    );
    // Without the module the control case is a leftover: the same file with `new` gone.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA writable_schema = ON; DELETE FROM sqlite_schema WHERE name = 'new'; PRAGMA writable_schema = OFF;",
    )
    .unwrap();
    drop(conn);
    let conn = Connection::open(&db).unwrap();
    assert_eq!(
        scan(&conn).unwrap().len(),
        1,
        "the control case found nothing"
    );
}

#[test]
fn check_runs_fts5_and_rtree_checks_and_finds_a_stale_external_index() {
    let (_dir, db) = file(
        "fts_check",
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT);
         CREATE VIRTUAL TABLE docs_fts USING fts5(body, content='docs', content_rowid='id');
         CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx);
         INSERT INTO docs VALUES (1, 'hello world'), (2, 'foo bar');
         INSERT INTO docs_fts (docs_fts) VALUES ('rebuild');
         INSERT INTO boxes VALUES (1, 0, 1);",
    );
    let health = check(&db, false).unwrap();
    assert!(health.is_healthy(), "{health}");
    // Written without the triggers that keep the index up: the index no longer matches.
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE docs SET body = 'changed' WHERE id = 1", [])
        .unwrap();
    let bytes = std::fs::read(&db).unwrap();
    let health = check(&db, false).unwrap();
    assert!(!health.is_healthy(), "{health}");
    let fts = health
        .virtual_tables
        .iter()
        .find(|v| v.name == "docs_fts")
        .unwrap();
    assert!(fts.failed, "{health}");
    assert!(health.to_string().contains("FAILED"), "{health}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "check changed the file");
    Connection::open(&db)
        .unwrap()
        .execute("INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')", [])
        .unwrap();
    assert!(check(&db, false).unwrap().is_healthy());
}

#[test]
fn check_names_a_foreign_key_to_a_non_unique_parent_as_a_warning() {
    let (_dir, db) = file(
        "fk_mismatch",
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE u (id int); CREATE TABLE p (x int REFERENCES u(id));
         CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE b (a_id REFERENCES a(id));
         INSERT INTO b VALUES (5), (5);",
    );
    let health = check(&db, false).unwrap();
    assert_eq!(health.foreign_key_mismatches.len(), 1, "{health}");
    assert!(health.foreign_key_mismatches[0].contains("neither PRIMARY KEY nor UNIQUE"));
    // The other table is still checked: its two orphans are counted.
    assert_eq!(health.foreign_key_violations, 2, "{health}");
    assert!(
        health.to_string().contains("warning: foreign key mismatch"),
        "{health}"
    );
}
