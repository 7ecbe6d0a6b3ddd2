//! Failing the Nth operation, in this process (each test holds `litekeep_faults::exclusive()`):
//! the statement gets the operation's extended code, the database is intact and unchanged, and
//! the same statement succeeds once the fault is cleared.

use std::path::Path;

use litekeep_faults::harness::{Scratch, code, integrity, open_faulty, open_plain};
use litekeep_faults::{Config, Op, configure, counters};
use rusqlite::{Connection, ffi};

fn setup(db: &Path, mode: &str) -> Connection {
    let conn = open_faulty(db).unwrap();
    let got: String = conn
        .pragma_update_and_check(None, "journal_mode", mode, |r| r.get(0))
        .unwrap();
    assert_eq!(got.to_uppercase(), mode);
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
         INSERT INTO t (v) VALUES (zeroblob(5000));",
    )
    .unwrap();
    conn
}

fn rows(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

const INSERT: &str = "INSERT INTO t (v) VALUES (zeroblob(6000))";

/// Fails the nth `op` of an INSERT, for every n the INSERT reaches.
fn every_failure_of(op: Op, mode: &str) {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new(&format!("fail-{op}-{mode}"));
    let db = dir.join("t.db");
    let conn = setup(&db, mode);
    configure(Config::new());
    conn.execute(INSERT, []).unwrap();
    let per_insert = counters().get(op);
    assert!(per_insert > 0, "{mode}: an INSERT made no {op}");
    let mut failed = 0;
    for n in 1..=per_insert {
        let before = rows(&conn);
        configure(Config::new().fail_once(op, n));
        let result = conn.execute(INSERT, []);
        let injected = counters().faults;
        configure(Config::new());
        let context = format!("{mode}: {op} #{n} of {per_insert}");
        if injected == 0 {
            // The INSERT went another way this time and never reached an nth op.
            result.unwrap_or_else(|e| panic!("{context}: failed without a fault: {e}"));
            continue;
        }
        failed += 1;
        let err = result.expect_err(&context);
        assert_eq!(code(&err), Some(op.error_code()), "{context}: {err}");
        assert_eq!(integrity(&conn), "ok", "{context}");
        assert_eq!(
            rows(&conn),
            before,
            "{context}: the failed INSERT left a row"
        );
        conn.execute(INSERT, [])
            .unwrap_or_else(|e| panic!("{context}: retry after the fault cleared: {e}"));
        assert_eq!(rows(&conn), before + 1, "{context}");
    }
    assert!(failed > 0, "{mode}: no {op} fault was injected");
    eprintln!("{mode}: {failed} of {per_insert} {op}s of an INSERT failed it cleanly");
    drop(conn);
    let check = open_plain(&db);
    assert_eq!(integrity(&check), "ok");
}

#[test]
fn a_failed_write_fails_the_insert_and_leaves_the_database_intact() {
    every_failure_of(Op::Write, "DELETE");
    every_failure_of(Op::Write, "WAL");
}

#[test]
fn a_failed_sync_fails_the_insert_and_leaves_the_database_intact() {
    every_failure_of(Op::Sync, "DELETE");
    every_failure_of(Op::Sync, "WAL");
}

#[test]
fn a_failed_truncate_fails_the_commit_in_truncate_mode() {
    every_failure_of(Op::Truncate, "TRUNCATE");
}

#[test]
fn a_failed_read_fails_the_query() {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new("fail-read");
    let db = dir.join("t.db");
    drop(setup(&db, "DELETE"));
    let conn = open_faulty(&db).unwrap();
    configure(Config::new().fail_once(Op::Read, 1));
    let err = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    assert_eq!(code(&err), Some(ffi::SQLITE_IOERR_READ), "{err}");
    assert_eq!(counters().faults, 1);
    assert_eq!(rows(&conn), 1);
}

#[test]
fn a_failed_open_or_lock_gives_its_code() {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new("fail-open-lock");
    let db = dir.join("t.db");
    drop(setup(&db, "DELETE"));

    configure(Config::new().fail_once(Op::Open, 1));
    let err = open_faulty(&db)
        .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
        .unwrap_err();
    assert_eq!(code(&err), Some(ffi::SQLITE_CANTOPEN), "{err}");

    let conn = open_faulty(&db).unwrap();
    configure(Config::new().fail_once(Op::Lock, 1));
    let err = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    assert_eq!(code(&err), Some(ffi::SQLITE_IOERR_LOCK), "{err}");
    assert_eq!(rows(&conn), 1);
}

#[test]
fn a_persistent_failure_fails_every_try_until_cleared() {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new("fail-persistent");
    let db = dir.join("t.db");
    let conn = setup(&db, "WAL");
    configure(Config::new().fail_from(Op::Write, 1));
    for attempt in 1..=3 {
        let err = conn.execute(INSERT, []).unwrap_err();
        assert_eq!(
            code(&err),
            Some(ffi::SQLITE_IOERR_WRITE),
            "try {attempt}: {err}"
        );
    }
    assert!(counters().faults >= 3);
    assert_eq!(rows(&conn), 1);
    configure(Config::new());
    conn.execute(INSERT, []).unwrap();
    assert_eq!(rows(&conn), 2);
    assert_eq!(integrity(&conn), "ok");
}

#[test]
fn faults_configured_from_the_text_form_behave_the_same() {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new("fail-text");
    let db = dir.join("t.db");
    let conn = setup(&db, "DELETE");
    configure("fail=sync:1".parse().unwrap());
    let err = conn.execute(INSERT, []).unwrap_err();
    assert_eq!(code(&err), Some(ffi::SQLITE_IOERR_FSYNC), "{err}");
    assert_eq!(counters().sync, 1);
    assert_eq!(counters().faults, 1);
}

/// `thread=NAME`: only the named thread's operations are counted and failed; the same INSERT
/// on another thread passes.
#[test]
fn a_fault_on_one_thread_leaves_the_others_alone() {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new("fail-on-thread");
    let db = dir.join("t.db");
    drop(setup(&db, "WAL"));
    configure(Config::new().on_thread("lk-named").fail_from(Op::Write, 1));
    let here = open_faulty(&db).unwrap();
    here.execute(INSERT, [])
        .expect("an INSERT on this test's thread is not the named thread's");
    assert_eq!(counters().write, 0, "another thread's writes were counted");
    let there = std::thread::Builder::new()
        .name("lk-named".into())
        .spawn({
            let db = db.clone();
            move || {
                let conn = open_faulty(&db).unwrap();
                conn.execute(INSERT, []).map_err(|e| code(&e))
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let counted = counters();
    configure(Config::new());
    assert_eq!(there, Err(Some(Op::Write.error_code())));
    assert!(counted.write > 0 && counted.faults > 0, "{counted:?}");
    assert_eq!(integrity(&here), "ok");
    assert_eq!(rows(&here), 2);
}
