//! `litekeep serve --engine duckdb` (feature `duckdb`) with the real binary and real
//! processes: the server owns the DuckDB file, which no other process could open, and serves
//! writes and reads at once; a request that fails in a batch of others leaves them applied;
//! "SELECT 1; COMMIT" cannot commit a batch half-way; DuckDB's types come back as the
//! protocol says; a held transaction never blocks reads and is rolled back when its client is
//! SIGKILLed; a server that left (idle) has let go of the file. And exactly once across server
//! SIGKILLs (right after commits, and from outside), servers replaced by the clients' next
//! calls, as tests/serve_faults.rs does for SQLite; a real full disk (a tmpfs): a clear
//! failure that applied nothing, reads going on, nothing acknowledged lost; and failed
//! `fsync`s, after which DuckDB serves nothing: the server steps down and the next one applies
//! the retried request once.

mod serve_support;

use std::time::Duration;

use litekeep::serve::{ClientError, EngineKind, Mode, Request, Value, codes};
use litekeep_faults::harness::{self, Child, Scratch};
use serve_support::*;

const DUCKDB: EngineKind = EngineKind::DuckDb;

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    if run_role(&role) {
        return;
    }
    let db = harness::db();
    match role.as_str() {
        "hold" => {
            let mut c = client(&db, DUCKDB);
            c.begin(Mode::Write).unwrap();
            write(&mut c, "UPDATE t SET v = 'held' WHERE x = 999", vec![]);
            harness::say("HOLDING");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn exactly_once_across_duckdb_server_sigkills_right_after_commits() {
    // Each DuckDB commit costs milliseconds here (its WAL's fsync): fewer writes than SQLite's.
    exactly_once_across_server_kills(DUCKDB, "serve-duck-once", 150);
}

#[test]
fn a_sigkilled_duckdb_server_is_replaced_by_the_next_call_of_a_client() {
    // A DuckDB server takes a good part of 100 ms to start on a loaded 2-core machine: killed
    // every 50-250 ms, as the SQLite test does, most would die before they serve. Seed 004's
    // scenario kills it every 1-2 s.
    replaced_by_the_next_call(DUCKDB, "serve-duck-replaced", 5, 300..1200);
}

#[test]
fn a_duckdb_file_is_served_and_no_other_process_could_open_it() {
    let dir = Scratch::new("serve-duck");
    let db = dir.join("index.duckdb");
    let _stop = StopServer(db.clone());
    let mut c = client(&db, DUCKDB);
    assert_eq!(c.server().unwrap().info["engine"], "duckdb");
    write(
        &mut c,
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, emb BLOB)",
        vec![],
    );
    let r = write(
        &mut c,
        "INSERT INTO docs VALUES (?, ?, ?), (2, 'b', NULL)",
        vec![
            Value::Integer(1),
            "a".into(),
            Value::Blob((0..=255).collect()),
        ],
    );
    assert_eq!((r.changes, r.last_rowid), (2, None));
    let named = Request {
        stmts: vec![litekeep::serve::Stmt {
            sql: "SELECT body, emb FROM docs WHERE id = $id".into(),
            params: litekeep::serve::Params::Named([("id".to_owned(), Value::Integer(1))].into()),
        }],
        ..Request::read("", vec![])
    };
    match c.call(&named).unwrap() {
        litekeep::serve::Response::Results { results } => assert_eq!(
            results[0].rows,
            [[Value::Text("a".into()), Value::Blob((0..=255).collect())]]
        ),
        other => panic!("{other:?}"),
    }
    // The server's DuckDB holds the file: this process cannot open it.
    match litekeep::duckdb_file::open(&db) {
        Err(litekeep::duckdb_file::DuckDbError::Locked { message, .. }) => {
            assert!(message.contains("Conflicting lock"), "{message}");
        }
        other => panic!("opened beside the server: {other:?}"),
    }
}

#[test]
fn duckdb_values_come_back_as_the_protocol_says() {
    let dir = Scratch::new("serve-duck-types");
    let db = dir.join("t.duckdb");
    let _stop = StopServer(db.clone());
    let mut c = client(&db, DUCKDB);
    let rows = read(
        &mut c,
        "SELECT true, 1.5, 12345678901234567890::HUGEINT, DATE '2024-01-02', \
         TIMESTAMP '2024-01-02 03:04:05.5', [1.5, 2.0]::FLOAT[], {'a': 1}, 'nan'::DOUBLE, ?::BLOB",
        vec![Value::Blob(vec![0, 1, 255])],
    );
    let row = &rows[0];
    assert_eq!(row[0], Value::Integer(1));
    assert_eq!(row[1], Value::Real(1.5));
    assert_eq!(row[2], Value::Text("12345678901234567890".into()));
    assert_eq!(row[3], Value::Text("2024-01-02".into()));
    assert_eq!(row[4], Value::Text("2024-01-02 03:04:05.500000".into()));
    assert_eq!(
        row[5],
        Value::List(vec![Value::Real(1.5), Value::Real(2.0)])
    );
    assert_eq!(row[6], Value::Map(vec![("a".into(), Value::Integer(1))]));
    assert!(
        matches!(row[7], Value::Real(f) if f.is_nan()),
        "{:?}",
        row[7]
    );
    assert_eq!(row[8], Value::Blob(vec![0, 1, 255]));
}

#[test]
fn a_failing_request_leaves_the_others_of_its_batch_applied() {
    let dir = Scratch::new("serve-duck-batch");
    let db = dir.join("b.duckdb");
    let _stop = StopServer(db.clone());
    let mut setup = client(&db, DUCKDB);
    write(
        &mut setup,
        "CREATE TABLE t (id INTEGER PRIMARY KEY)",
        vec![],
    );
    // Four clients at once (batches of several), every third request a duplicate key.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut c = client(&db, DUCKDB);
                let (mut ok, mut failed) = (0, 0);
                for n in 0..60i64 {
                    let id = if n % 3 == 2 { w * 1000 } else { w * 1000 + n };
                    let two = writes(&[
                        (
                            "INSERT INTO t VALUES (?)",
                            vec![Value::Integer(100_000 + w * 1000 + n)],
                        ),
                        ("INSERT INTO t VALUES (?)", vec![Value::Integer(id)]),
                    ]);
                    match c.call(&two).unwrap() {
                        litekeep::serve::Response::Results { .. } => ok += 1,
                        litekeep::serve::Response::Error { error } => {
                            assert_eq!(error.index, 1, "{error}");
                            assert_eq!(error.code.as_deref(), Some("Constraint"), "{error}");
                            failed += 1;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let mut ok = 0;
    for w in workers {
        let (o, f) = w.join().unwrap();
        assert_eq!(f, 20, "every third request failed, no other");
        ok += o;
    }
    // Each applied request wrote two rows; a failed one none (its first row rolled back).
    assert_eq!(count(&mut setup, "SELECT count(*) FROM t"), 2 * ok);
    assert_eq!(ok, 4 * 40);
}

#[test]
fn a_second_statement_in_one_text_is_refused_before_anything_runs() {
    let dir = Scratch::new("serve-duck-multi");
    let db = dir.join("m.duckdb");
    let _stop = StopServer(db.clone());
    let mut c = client(&db, DUCKDB);
    write(&mut c, "CREATE TABLE t (x INTEGER)", vec![]);
    for sql in [
        "INSERT INTO t VALUES (1); COMMIT",
        "INSERT INTO t VALUES (1); SELECT 1",
        "COMMIT",
        "FORCE CHECKPOINT",
    ] {
        let e = sql_error(c.call(&Request::write(sql, vec![])).unwrap());
        assert_eq!(e.index, 0, "{sql}: {e}");
        assert!(
            [Some("Parser"), Some(codes::TRANSACTION_STATEMENT)].contains(&e.code.as_deref()),
            "{sql}: {e}"
        );
    }
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 0, "nothing ran");
    let e = sql_error(
        c.call(&Request::read("INSERT INTO t VALUES (2)", vec![]))
            .unwrap(),
    );
    assert!(e.message.contains("read-only"), "a read cannot write: {e}");
}

#[test]
fn a_held_transaction_never_blocks_reads_and_dies_with_its_client() {
    let dir = Scratch::new("serve-duck-tx");
    let db = dir.join("tx.duckdb");
    let _stop = StopServer(db.clone());
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--engine",
            "duckdb",
            "--idle",
            "3s",
            "--tx-idle",
            "120s",
        ])
        .args(["--tx-timeout", "240s", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut reader = client(&db, DUCKDB);
    write(
        &mut reader,
        "CREATE TABLE t (x INTEGER PRIMARY KEY, v TEXT)",
        vec![],
    );
    write(&mut reader, "INSERT INTO t VALUES (999, 'before')", vec![]);
    let holder = Child::build("hold").db(&db).spawn();
    holder.expect_line("HOLDING");
    for _ in 0..50 {
        let rows = read(&mut reader, "SELECT v FROM t", vec![]);
        assert_eq!(
            rows,
            [[Value::Text("before".into())]],
            "reads see the last commit"
        );
    }
    // DuckDB refuses at once a write of the row the held transaction changed; after the
    // SIGKILL (its --tx-idle is 120 s) the transaction is gone and the write goes through.
    let update = "UPDATE t SET v = 'after' WHERE x = 999";
    match reader.execute(update, vec![]) {
        Err(ClientError::Sql { error, .. }) => {
            assert!(error.message.contains("onflict"), "{error}")
        }
        other => panic!("the held row was written beside it: {other:?}"),
    }
    assert!(holder.kill().killed());
    let mut again = 0;
    while let Err(e) = reader.execute(update, vec![]) {
        // The server's thread for the killed connection sees its end within moments.
        again += 1;
        assert!(again < 2000, "the transaction outlived its client: {e}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let rows = read(&mut reader, "SELECT v FROM t", vec![]);
    assert_eq!(rows, [[Value::Text("after".into())]]);
    // A transaction of this client: a failed statement rolls it back (DuckDB can do nothing
    // else), and the connection says so until it is ended.
    reader.begin(Mode::Write).unwrap();
    write(&mut reader, "INSERT INTO t VALUES (1, NULL)", vec![]);
    match reader.execute("INSERT INTO t VALUES (1, NULL)", vec![]) {
        Err(ClientError::Sql { error, .. }) => {
            assert!(error.message.contains("rolled back"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    reader.rollback().unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM t"), 1);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM t WHERE x = 1"), 0);
}

#[test]
fn a_server_that_left_has_let_go_of_the_file() {
    let dir = Scratch::new("serve-duck-idle");
    let db = dir.join("i.duckdb");
    let _stop = StopServer(db.clone());
    let mut c = client(&db, DUCKDB);
    write(&mut c, "CREATE TABLE t AS SELECT 42 AS x", vec![]);
    let pid = c.server().unwrap().pid;
    drop(c);
    assert!(
        wait_until(Duration::from_secs(20), || !alive(pid)),
        "it left"
    );
    let conn = litekeep::duckdb_file::open(&db).unwrap();
    let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, 42);
}

#[test]
fn a_full_disk_fails_duckdb_commits_clearly_loses_nothing_acknowledged_and_serves_on() {
    use litekeep_faults::harness::Tmpfs;
    let dir = Scratch::new("serve-duck-full");
    let disk = match Tmpfs::mount(&dir.join("disk"), 16 << 20) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: a real full disk needs a tmpfs: {why}");
            return;
        }
    };
    let db = disk.path().join("idx.duckdb");
    let stop = StopServer(db.clone());
    let mut c = client(&db, DUCKDB);
    write(
        &mut c,
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)",
        vec![],
    );
    // Another program fills the disk, all but 300 KiB.
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[b'x'; 65536]).is_ok() {}
    }
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len - 300 * 1024)
        .unwrap();
    let body = "y".repeat(2000);
    let mut acked = Vec::new();
    let failed = (1..20_000i64)
        .find_map(|id| {
            match c.execute(
                "INSERT INTO docs VALUES (?, ?)",
                vec![Value::Integer(id), body.as_str().into()],
            ) {
                Ok(_) => {
                    acked.push(id);
                    None
                }
                Err(e) => Some((id, e)),
            }
        })
        .expect("300 KiB took 20,000 rows of 2 KB");
    let (failed_id, error) = failed;
    match &error {
        ClientError::Failed { path, failure } => {
            assert_eq!(path, &db);
            assert_eq!(failure.kind, litekeep::owner::FailureKind::CommitFailed);
            assert_eq!(failure.applied, litekeep::owner::Applied::No, "{failure}");
            assert!(
                failure.message.contains("No space left on device")
                    && failure.message.contains("idx.duckdb"),
                "{failure}"
            );
        }
        other => panic!("a full disk answered {other:?}"),
    }
    assert!(
        !acked.is_empty(),
        "no write went in before the disk was full"
    );
    // Reads go on while the disk is full; so does the server.
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM docs"),
        acked.len() as i64
    );
    // Room again: the same request goes in once, and writes go on.
    std::fs::remove_file(&filler).unwrap();
    write(
        &mut c,
        "INSERT INTO docs VALUES (?, ?)",
        vec![Value::Integer(failed_id), "again".into()],
    );
    acked.push(failed_id);
    // A server SIGKILLed now: the next one (started by the next call) finds every acknowledged
    // row, once, and nothing else.
    let pid = owner_pid(&db).expect("a server owns the file");
    signal(pid, libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || !alive(pid)));
    let mut c = client(&db, DUCKDB);
    let ids: Vec<i64> = read(&mut c, "SELECT id FROM docs ORDER BY id", vec![])
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Integer(id)] => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    acked.sort_unstable();
    assert_eq!(ids, acked);
    drop(c);
    drop(stop);
    drop(disk);
}

#[test]
fn a_failed_fsync_steps_the_duckdb_server_down_and_the_retry_at_the_next_one_applies_it_once() {
    let dir = Scratch::new("serve-duck-fsync");
    let db = dir.join("idx.duckdb");
    let stop = StopServer(db.clone());
    // A server whose every fsync and fdatasync fails with EIO from its 20th commit on (a
    // seccomp filter put on all its threads at once).
    let server = Child::build("server")
        .db(&db)
        .env(ENGINE_VAR, "duckdb")
        .env("LK_FAIL_SYNC_AFTER", "20")
        .spawn();
    let first = server.expect_line("SERVING ");
    let mut c = client(&db, DUCKDB);
    write(
        &mut c,
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)",
        vec![],
    );
    // Every insert is acknowledged: the one whose commit met the failed fsync is sent again,
    // as a retry, to the next server (started by the client), which runs it or answers it from
    // its record. Never twice: the primary key would refuse a second copy.
    for id in 1..=40i64 {
        write(
            &mut c,
            "INSERT INTO docs VALUES (?, ?)",
            vec![Value::Integer(id), "body".into()],
        );
    }
    assert_eq!(server.expect_line("SYNCS FAIL"), "SYNCS FAIL");
    let ended = server.expect_line("ENDED ");
    assert!(
        ended.starts_with("ENDED DatabaseFailed(") && ended.contains("fsync"),
        "{ended}"
    );
    let exit = server.wait();
    assert!(exit.success(), "{}", exit.describe());
    let next = owner_pid(&db).expect("the client started the next server");
    assert_ne!(format!("SERVING {next}"), first);
    let ids: Vec<i64> = read(&mut c, "SELECT id FROM docs ORDER BY id", vec![])
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Integer(id)] => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>());
    drop(c);
    drop(stop);
}
