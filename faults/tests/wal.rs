//! WAL through the VFS: two connections of this process (snapshots, checkpoints, `mmap` reads
//! through `xFetch`), with writes held for a cut that never comes, and a second process writing
//! through the VFS while this one reads (the shared-memory methods pass through).

use std::path::Path;

use litekeep_faults::Config;
use litekeep_faults::harness::{self, Child, Exit, Scratch, integrity, open_faulty, say};
use rusqlite::Connection;

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    let db = harness::db();
    litekeep_faults::init_from_env().expect("LK_FAULTS");
    assert_eq!(role, "writer");
    let conn = open_faulty(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    for _ in 0..50 {
        conn.execute("INSERT INTO t (who) VALUES ('child')", [])
            .unwrap();
    }
    let c = litekeep_faults::counters();
    say(format!("DONE {} {}", c.write, c.sync));
}

fn count(conn: &Connection, who: &str) -> i64 {
    conn.query_row("SELECT count(*) FROM t WHERE who = ?1", [who], |r| r.get(0))
        .unwrap()
}

#[test]
fn two_connections_share_the_wal_through_the_vfs() {
    let _serial = litekeep_faults::exclusive();
    // Held writes must not disturb anything: they are on disk until a cut.
    litekeep_faults::configure(Config::new().crash_manual());
    let dir = Scratch::new("wal-two");
    let db = dir.join("t.db");
    let a = open_faulty(&db).unwrap();
    let mode: String = a
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    a.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
        .unwrap();
    a.execute("INSERT INTO t (who) VALUES ('a')", []).unwrap();

    let b = open_faulty(&db).unwrap();
    b.pragma_update(None, "mmap_size", 1 << 20).unwrap();
    assert_eq!(count(&b, "a"), 1);

    // b's read transaction keeps its snapshot while a writes.
    b.execute_batch("BEGIN").unwrap();
    assert_eq!(count(&b, "a"), 1);
    for _ in 0..10 {
        a.execute("INSERT INTO t (who) VALUES ('a')", []).unwrap();
    }
    assert_eq!(count(&b, "a"), 1);
    b.execute_batch("COMMIT").unwrap();
    assert_eq!(count(&b, "a"), 11);

    // A checkpoint by one connection, reads through mmap by the other.
    let (busy, _, _): (i64, i64, i64) = a
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0);
    assert_eq!(count(&b, "a"), 11);
    assert_eq!(integrity(&b), "ok");
    let c = litekeep_faults::counters();
    assert!(c.write > 0 && c.sync > 0 && c.truncate > 0, "{c:?}");
    drop((a, b));
}

#[test]
fn another_process_writes_through_the_vfs_while_this_one_reads() {
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new("wal-process");
    let db = dir.join("t.db");
    let conn = open_faulty(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
        .unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    // This connection stays open: the child's commits reach it through the shared WAL index.
    assert_eq!(count(&conn, "child"), 0);
    let out = run_child("writer", &db, Some("seed=1"));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let done = out.field("DONE ");
    assert!(done[0] >= 50 && done[1] >= 50, "child counters: {done:?}");
    assert_eq!(count(&conn, "child"), 50);
    conn.execute("INSERT INTO t (who) VALUES ('parent')", [])
        .unwrap();
    assert_eq!(integrity(&conn), "ok");
}

/// Runs this binary's `child_process_entry` with `role`, the database and `faults` (the
/// `LK_FAULTS` value, if any), to its end.
fn run_child(role: &str, db: &Path, faults: Option<&str>) -> Exit {
    let child = Child::build(role).db(db);
    match faults {
        Some(faults) => child.faults(faults),
        None => child,
    }
    .run()
}
