//! Registered as the process's default VFS, the fault VFS sees what plain `Connection::open`
//! does (the litekeep library opens that way). Alone in its binary: it changes the default for
//! the whole process.

use litekeep_faults::harness::{Scratch, code};
use litekeep_faults::{Config, Op, configure, counters};
use rusqlite::{Connection, ffi};

#[test]
fn plain_connection_open_goes_through_the_default_vfs() {
    let _serial = litekeep_faults::exclusive();
    litekeep_faults::register_as_default().unwrap();
    litekeep_faults::register().unwrap(); // leaves it the default
    let dir = Scratch::new("default");
    let db = dir.join("t.db");

    let conn = Connection::open(&db).unwrap();
    let vfs: String = conn
        .query_row("PRAGMA main.vfsname", [], |r| r.get(0))
        .unwrap_or_default();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let c = counters();
    assert!(
        c.open >= 1 && c.write >= 1 && c.sync >= 1,
        "{c:?} (vfsname {vfs})"
    );

    configure(Config::new().fail_once(Op::Open, 1));
    let err = Connection::open(&db)
        .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
        .unwrap_err();
    assert_eq!(code(&err), Some(ffi::SQLITE_CANTOPEN), "{err}");
    assert_eq!(counters().faults, 1);
    drop(conn);
}
