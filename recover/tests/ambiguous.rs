//! States where no repair is provably lossless are reported and left byte for byte as they
//! were; a dry run never touches the file.

mod common;

use std::path::Path;

use common::{fresh, scratch};
use litekeep_recover::{Action, Case, Options, recover, scan};
use rusqlite::Connection;

fn setup(path: &Path, sql: &str) -> Vec<u8> {
    fresh(path, 20);
    Connection::open(path)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; {sql}"
        ))
        .unwrap();
    std::fs::read(path).unwrap()
}

fn assert_left(path: &Path, before: &[u8], reason_has: &str) {
    let report = recover(path, &Options::default()).unwrap();
    assert!(!report.applied, "{:?}", report.findings);
    let left: Vec<_> = report.left().collect();
    assert_eq!(left.len(), 1, "{:?}", report.findings);
    let Action::Leave { reason } = &left[0].action else {
        unreachable!()
    };
    assert!(reason.contains(reason_has), "{reason}");
    assert!(left[0].to_string().contains("left as it is"), "{}", left[0]);
    assert_eq!(std::fs::read(path).unwrap(), before, "the file changed");
}

#[test]
fn both_tables_holding_different_rows_under_one_key_are_left_alone() {
    let dir = scratch("conflict");
    let db = dir.join("app.db");
    // The leftover has the original's rows, but row 3 and row 7 say something else now.
    let before = setup(
        &db,
        "CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);
         INSERT INTO new__files SELECT * FROM files;
         UPDATE new__files SET path = 'edited' WHERE id IN (3, 7);",
    );
    let found = scan(&Connection::open(&db).unwrap()).unwrap();
    assert_eq!(found[0].case, Case::BothHoldRows);
    assert_left(
        &db,
        &before,
        "2 of its rows have keys files holds with other values (keys 3; 7)",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_leftover_with_values_the_original_cannot_hold_is_left_alone() {
    let dir = scratch("extra");
    let db = dir.join("app.db");
    let before = setup(
        &db,
        "CREATE TABLE _alembic_tmp_files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, note TEXT);
         INSERT INTO _alembic_tmp_files SELECT id, path, size, 'kept ' || id FROM files;",
    );
    assert_left(&db, &before, "columns files lacks (note)");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ordinary_table_named_like_a_leftover_is_not_renamed_without_evidence() {
    let dir = scratch("weak");
    let db = dir.join("app.db");
    // `temp_cache` is somebody's table; there is no `cache` and nothing names one.
    let before = setup(
        &db,
        "CREATE TABLE temp_cache (k TEXT PRIMARY KEY, v BLOB); INSERT INTO temp_cache VALUES ('a', x'00');",
    );
    assert_left(&db, &before, "confirm");
    // Confirmed, it is repaired.
    let report = recover(&db, &Options::default().confirm("temp_cache")).unwrap();
    assert!(report.applied);
    let conn = Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unrelated_table_with_a_leftover_like_name_is_not_a_finding() {
    let dir = scratch("unrelated");
    let db = dir.join("app.db");
    // `new_files` exists beside `files` but shares none of its columns: just a table.
    let before = setup(
        &db,
        "CREATE TABLE new_files (url TEXT, fetched_at INTEGER); INSERT INTO new_files VALUES ('u', 1);",
    );
    let report = recover(&db, &Options::default()).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(std::fs::read(&db).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dry_run_reports_and_changes_nothing() {
    let dir = scratch("dry");
    let db = dir.join("app.db");
    let before = setup(
        &db,
        "ALTER TABLE files RENAME TO temp_files;
         CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, lang TEXT);",
    );
    let report = recover(&db, &Options::default().dry_run(true)).unwrap();
    assert!(report.dry_run && !report.applied);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].action, Action::RestoreRows { rows: 20 });
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert!(
        !litekeep_lock::lock_path_for(&db).exists(),
        "a dry run took the lock"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
