//! Transactions held across calls through `litekeep serve` (SQLite), with real processes: a
//! transaction spans calls and is seen by others only once committed; it is rolled back the
//! moment its client is SIGKILLed (not when its idle bound would have expired); it never
//! blocks other clients' reads; other clients' writes wait behind it, bounded by --tx-idle; a
//! failing statement rolls it back and the connection says so until the client ends it.

mod serve_support;

use std::path::Path;
use std::time::Duration;

use litekeep::serve::{ClientError, EngineKind, Mode, Request, Tx, Value, codes};
use litekeep_faults::harness::{self, Child, Scratch};
use serve_support::*;

const SQLITE: EngineKind = EngineKind::Sqlite;

/// Starts a server for `db` in the background with these transaction bounds.
fn serve(db: &Path, tx_idle: &str, tx_timeout: &str) {
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--engine",
            "sqlite",
            "--idle",
            "3s",
            "--tx-idle",
            tx_idle,
        ])
        .args(["--tx-timeout", tx_timeout, "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    let db = harness::db();
    match role.as_str() {
        // Begins a write transaction, inserts a row in it, says so, and waits to be killed.
        "hold" => {
            let mut c = client(&db, SQLITE);
            c.begin(Mode::Write).unwrap();
            write(&mut c, "INSERT INTO t VALUES ('uncommitted')", vec![]);
            harness::say("HOLDING");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

fn table(db: &Path) -> litekeep::serve::Client {
    let mut c = client(db, SQLITE);
    write(&mut c, "CREATE TABLE IF NOT EXISTS t (x TEXT)", vec![]);
    c
}

#[test]
fn a_transaction_spans_calls_and_others_see_it_only_committed() {
    let dir = Scratch::new("serve-tx-commit");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let mut other = table(&db);
    let mut c = client(&db, SQLITE);
    c.begin(Mode::Write).unwrap();
    assert!(c.in_transaction());
    write(&mut c, "INSERT INTO t VALUES ('a')", vec![]);
    write(&mut c, "INSERT INTO t VALUES ('b')", vec![]);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM t"),
        2,
        "it sees its own"
    );
    assert_eq!(
        count(&mut other, "SELECT count(*) FROM t"),
        0,
        "others do not"
    );
    c.commit().unwrap();
    assert!(!c.in_transaction());
    assert_eq!(count(&mut other, "SELECT count(*) FROM t"), 2);
    // Rolled back: nothing.
    c.begin(Mode::Write).unwrap();
    write(&mut c, "INSERT INTO t VALUES ('c')", vec![]);
    c.rollback().unwrap();
    assert_eq!(count(&mut other, "SELECT count(*) FROM t"), 2);
    // Without a transaction, commit is refused and changes nothing.
    match c.commit() {
        Err(ClientError::Sql { error, .. }) => {
            assert_eq!(
                error.code.as_deref(),
                Some(codes::NO_TRANSACTION),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A read transaction is a snapshot: a write committed meanwhile is not in it.
    c.begin(Mode::Read).unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 2);
    write(&mut other, "INSERT INTO t VALUES ('d')", vec![]);
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 2, "its snapshot");
    c.commit().unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 3);
}

#[test]
fn a_transaction_is_rolled_back_the_moment_its_client_is_sigkilled() {
    let dir = Scratch::new("serve-tx-kill");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    // Bounds far longer than the calls below may wait: only the disconnection can free it.
    serve(&db, "120s", "240s");
    let mut other = table(&db);
    let holder = Child::build("hold").db(&db).spawn();
    holder.expect_line("HOLDING");
    // While it holds the write lock, reads go on (WAL) and do not see its row.
    assert_eq!(count(&mut other, "SELECT count(*) FROM t"), 0);
    assert!(holder.kill().killed());
    // A write needs the lock the transaction held: it gets it well before the 120 s bound.
    let mut quick =
        litekeep::serve::Client::connect(&db, options(SQLITE).timeout(Duration::from_secs(60)))
            .unwrap();
    write(&mut quick, "INSERT INTO t VALUES ('after')", vec![]);
    let rows = read(&mut quick, "SELECT x FROM t", vec![]);
    assert_eq!(
        rows,
        [[Value::Text("after".into())]],
        "the held row is gone"
    );
}

#[test]
fn a_held_transaction_never_blocks_reads_and_holds_up_writes_only_until_its_bound() {
    let dir = Scratch::new("serve-tx-reads");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    serve(&db, "1s", "60s");
    let mut reader = table(&db);
    write(&mut reader, "INSERT INTO t VALUES ('before')", vec![]);
    let mut holder = client(&db, SQLITE);
    holder.begin(Mode::Write).unwrap();
    write(&mut holder, "INSERT INTO t VALUES ('held')", vec![]);
    for _ in 0..50 {
        assert_eq!(count(&mut reader, "SELECT count(*) FROM t"), 1);
    }
    // A write of another client waits behind the transaction, which goes idle and is rolled
    // back after 1 s; then the write goes through.
    let mut writer = client(&db, SQLITE);
    write(&mut writer, "INSERT INTO t VALUES ('waited')", vec![]);
    let texts: Vec<_> = read(&mut reader, "SELECT x FROM t ORDER BY rowid", vec![]);
    assert_eq!(
        texts,
        [
            [Value::Text("before".into())],
            [Value::Text("waited".into())]
        ]
    );
    // The holder learns that its transaction is gone, and nothing of its call is applied
    // until it ends it.
    match holder.execute("INSERT INTO t VALUES ('late')", vec![]) {
        Err(ClientError::Sql { error, .. }) => {
            assert_eq!(
                error.code.as_deref(),
                Some(codes::TRANSACTION_ABORTED),
                "{error}"
            );
            assert!(error.message.contains("--tx-idle"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    holder.rollback().unwrap();
    write(&mut holder, "INSERT INTO t VALUES ('alone')", vec![]);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM t"), 3);
}

#[test]
fn a_failing_statement_rolls_the_transaction_back_and_the_connection_says_so() {
    let dir = Scratch::new("serve-tx-fail");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let mut c = table(&db);
    write(&mut c, "CREATE UNIQUE INDEX tx ON t (x)", vec![]);
    c.begin(Mode::Write).unwrap();
    write(&mut c, "INSERT INTO t VALUES ('one')", vec![]);
    let e = match c.execute("INSERT INTO t VALUES ('one')", vec![]) {
        Err(ClientError::Sql { error, .. }) => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(e.code.as_deref(), Some("SQLITE_CONSTRAINT_UNIQUE"), "{e}");
    assert!(e.message.contains("the transaction was rolled back"), "{e}");
    // Every call fails until the transaction is ended; begin too.
    for request in [
        Request::write("INSERT INTO t VALUES ('two')", vec![]),
        Request::write("SELECT 1", vec![]).with_tx(Tx::Begin),
    ] {
        let e = sql_error(c.call(&request).unwrap());
        assert_eq!(e.code.as_deref(), Some(codes::TRANSACTION_ABORTED), "{e}");
    }
    match c.commit() {
        Err(ClientError::Sql { error, .. }) => {
            assert_eq!(error.code.as_deref(), Some(codes::TRANSACTION_ABORTED));
        }
        other => panic!("{other:?}"),
    }
    // The commit ended it: the connection works alone again; nothing of it was applied.
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 0);
    // A begin while one is open is refused and leaves it open.
    c.begin(Mode::Write).unwrap();
    write(&mut c, "INSERT INTO t VALUES ('kept')", vec![]);
    let e = sql_error(
        c.call(&Request::write("SELECT 1", vec![]).with_tx(Tx::Begin))
            .unwrap(),
    );
    assert_eq!(e.code.as_deref(), Some(codes::TRANSACTION_OPEN), "{e}");
    c.commit().unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 1);
}
