//! A full disk: writes past the growth budget get `SQLITE_FULL`, the database stays intact and
//! unchanged, and the same INSERT works once the budget is raised.

use litekeep_faults::harness::{Scratch, code, integrity, open_faulty, open_plain};
use litekeep_faults::{Config, configure, counters};
use rusqlite::{Connection, ffi};

fn rows(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

fn big_blob_under_a_small_budget(mode: &str) {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new(&format!("full-{mode}"));
    let db = dir.join("t.db");
    let conn = open_faulty(&db).unwrap();
    conn.pragma_update(None, "journal_mode", mode).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
         INSERT INTO t (v) VALUES (zeroblob(1000));",
    )
    .unwrap();

    configure(Config::new().disk_budget(64 * 1024));
    // Small changes fit: rewriting pages in place grows nothing.
    conn.execute("UPDATE t SET v = zeroblob(1200) WHERE id = 1", [])
        .unwrap();
    let err = conn
        .execute("INSERT INTO t (v) VALUES (zeroblob(1000000))", [])
        .unwrap_err();
    assert_eq!(code(&err), Some(ffi::SQLITE_FULL), "{mode}: {err}");
    let c = counters();
    assert!(c.disk_full >= 1 && c.faults >= c.disk_full, "{mode}: {c:?}");
    assert!(c.growth <= 64 * 1024, "{mode}: grew past the budget: {c:?}");
    assert_eq!(integrity(&conn), "ok", "{mode}");
    assert_eq!(rows(&conn), 1, "{mode}: the refused INSERT left a row");

    configure(Config::new().disk_budget(16 * 1024 * 1024));
    conn.execute("INSERT INTO t (v) VALUES (zeroblob(1000000))", [])
        .unwrap();
    assert_eq!(rows(&conn), 2);
    assert_eq!(counters().disk_full, 0);
    // Part of the blob went where the refused attempt had grown the files already.
    assert!(counters().growth > 0, "{:?}", counters());
    drop(conn);
    let check = open_plain(&db);
    assert_eq!(integrity(&check), "ok", "{mode}");
    assert_eq!(rows(&check), 2);
}

#[test]
fn a_big_blob_under_a_small_budget_gets_sqlite_full_in_delete_mode() {
    big_blob_under_a_small_budget("DELETE");
}

#[test]
fn a_big_blob_under_a_small_budget_gets_sqlite_full_in_wal_mode() {
    big_blob_under_a_small_budget("WAL");
}
