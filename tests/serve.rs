//! `litekeep serve` with the SQLite engine, the real binary and real processes: in the
//! foreground and started on demand by a client; two servers started at once end with one;
//! the SQL body's rules (a request all or nothing, errors as data naming the statement, reads
//! that cannot write, named parameters, values byte for byte).

mod serve_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use litekeep::serve::{
    Client, ClientOptions, EngineKind, Mode, Params, Request, Response, Stmt, Value, codes,
};
use litekeep_faults::harness::{Child, Scratch};
use serve_support::*;

const SQLITE: EngineKind = EngineKind::Sqlite;

#[test]
fn a_foreground_server_serves_and_leaves_when_idle() {
    let dir = Scratch::new("serve-fg");
    let db = dir.join("app.db");
    let server = Child::program(
        "serve",
        bin(),
        [
            "serve",
            "--foreground",
            "--engine",
            "sqlite",
            "--idle",
            "1s",
            "--db",
        ]
        .iter()
        .map(Into::into)
        .chain([db.clone().into_os_string()]),
    )
    .spawn();
    let _stop = StopServer(db.clone());
    let mut c = Client::connect(&db, ClientOptions::new(SQLITE).start_server(None))
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let welcome = c.server().unwrap().clone();
    assert_eq!(welcome.pid, server.pid(), "the foreground process serves");
    assert_eq!(welcome.program, "litekeep-serve");
    assert_eq!(welcome.info["engine"], "sqlite");
    assert!(welcome.records_outcomes);
    write(&mut c, "CREATE TABLE t (x)", vec![]);
    write(&mut c, "INSERT INTO t VALUES (1)", vec![]);
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 1);
    // While a client is connected the server stays, however long.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 1);
    drop(c);
    let exit = server.wait();
    assert!(exit.success(), "{}", exit.describe());
    assert!(
        exit.stderr.contains("no client for 1s; stepped down"),
        "{}",
        exit.describe()
    );
    assert!(
        !dir.join("app.db.owner-1.sock").exists(),
        "it removed its socket"
    );
}

#[test]
fn a_client_starts_a_server_on_demand_in_its_own_session_with_a_log() {
    let dir = Scratch::new("serve-demand");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    assert_eq!(owner_pid(&db), None);
    let mut c = client(&db, SQLITE);
    let pid = c.server().unwrap().pid;
    assert_ne!(pid, std::process::id());
    // setsid(2): the server leads a session of its own, so the caller's terminal and
    // process group do not take it down.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], pid.to_string(), "session id is its pid: {stat}");
    let log = std::fs::read_to_string(dir.join("app.db.serve.log")).unwrap();
    assert!(log.contains(&format!("pid {pid}")), "{log}");
    write(&mut c, "CREATE TABLE t (x)", vec![]);
    drop(c);
    // Idle for 3 s with no client: it steps down and exits.
    assert!(
        wait_until(Duration::from_secs(20), || !alive(pid)),
        "the idle server left"
    );
    let log = std::fs::read_to_string(dir.join("app.db.serve.log")).unwrap();
    assert!(log.contains("stepped down"), "{log}");
    // The next client starts the next one.
    let mut c = client(&db, SQLITE);
    assert_ne!(c.server().unwrap().pid, pid);
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 0);
}

#[test]
fn servers_started_at_once_end_with_one() {
    let dir = Scratch::new("serve-race");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let starts: Vec<_> = (0..6)
        .map(|_| {
            Command::new(bin())
                .args([
                    "serve", "--engine", "sqlite", "--idle", "3s", "--json", "--db",
                ])
                .arg(&db)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut pids = Vec::new();
    let mut started = 0;
    for child in starts {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        pids.push(doc["pid"].as_u64().unwrap());
        started += usize::from(doc["started"] == true);
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "every start names the same server: {pids:?}");
    assert!(started <= 1, "at most one of them started it");
    assert_eq!(owner_pid(&db), Some(pids[0] as u32));
    // The losers said who serves and are leaving: soon one server process is left.
    let serving = || -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.windows(db.as_os_str().len())
                        .any(|w| w == db.as_os_str().as_encoded_bytes())
                })
            })
            .filter(|pid| alive(*pid))
            .collect()
    };
    wait_until(Duration::from_secs(20), || serving().len() == 1);
    assert_eq!(serving(), [pids[0] as u32], "one server process is left");
}

#[test]
fn blobs_texts_and_floats_round_trip_exactly() {
    let dir = Scratch::new("serve-values");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let mut c = client(&db, SQLITE);
    write(&mut c, "CREATE TABLE v (id INTEGER PRIMARY KEY, x)", vec![]);
    let mut rng = fastrand::Rng::with_seed(7);
    let embedding: Vec<u8> = (0..384 * 4).map(|_| rng.u8(..)).collect();
    let values = [
        Value::Blob((0..=255).collect()),
        Value::Blob(embedding),
        Value::Blob(vec![]),
        Value::Text("héllo \u{0} wörld".into()),
        Value::Integer(i64::MIN),
        Value::Real(f64::INFINITY),
        Value::Real(-0.1),
        Value::Null,
    ];
    for v in &values {
        write(&mut c, "INSERT INTO v (x) VALUES (?)", vec![v.clone()]);
    }
    let rows = read(&mut c, "SELECT x FROM v ORDER BY id", vec![]);
    let got: Vec<Value> = rows.into_iter().map(|mut r| r.remove(0)).collect();
    assert_eq!(got, values);
}

#[test]
fn a_request_is_all_or_nothing_and_its_error_names_the_statement() {
    let dir = Scratch::new("serve-errors");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let mut c = client(&db, SQLITE);
    write(&mut c, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![]);
    let failing = writes(&[
        ("INSERT INTO t VALUES (1)", vec![]),
        ("INSERT INTO t VALUES (2)", vec![]),
        ("INSERT INTO t VALUES (1)", vec![]),
    ]);
    let e = sql_error(c.call(&failing).unwrap());
    assert_eq!((e.index, e.sql.as_str()), (2, "INSERT INTO t VALUES (1)"));
    assert_eq!(e.code.as_deref(), Some("SQLITE_CONSTRAINT_PRIMARYKEY"));
    assert!(e.message.contains("UNIQUE constraint failed"), "{e}");
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM t"),
        0,
        "nothing applied"
    );
    // A read cannot write.
    let e = sql_error(
        c.call(&Request::read("INSERT INTO t VALUES (3)", vec![]))
            .unwrap(),
    );
    assert_eq!(e.code.as_deref(), Some("SQLITE_READONLY"), "{e}");
    // Transactions are the body's, never a statement.
    let e = sql_error(c.call(&Request::write("BEGIN", vec![])).unwrap());
    assert_eq!(e.code.as_deref(), Some(codes::TRANSACTION_STATEMENT), "{e}");
    // Two statements in one text.
    let e = sql_error(
        c.call(&Request::write("SELECT 1; SELECT 2", vec![]))
            .unwrap(),
    );
    assert_eq!(e.index, 0, "{e}");
    // Parameters: count and names are checked.
    let e = sql_error(
        c.call(&Request::write("INSERT INTO t VALUES (?)", vec![]))
            .unwrap(),
    );
    assert_eq!(e.code.as_deref(), Some(codes::PARAMS), "{e}");
    let named = Request {
        stmts: vec![Stmt {
            sql: "INSERT INTO t VALUES (:id)".into(),
            params: Params::Named([("id".to_owned(), Value::Integer(7))].into()),
        }],
        mode: Mode::Write,
        tx: None,
        in_tx: false,
    };
    match c.call(&named).unwrap() {
        Response::Results { results } => {
            assert_eq!((results[0].changes, results[0].last_rowid), (1, Some(7)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 1);
}

#[test]
fn a_request_breaking_a_deferred_foreign_key_fails_alone_and_its_batch_commits() {
    let dir = Scratch::new("serve-deferred");
    let db = dir.join("d.db");
    let _stop = StopServer(db.clone());
    let mut setup = client(&db, SQLITE);
    write(
        &mut setup,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
        vec![],
    );
    write(
        &mut setup,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL \
         REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        vec![],
    );
    // Four clients at once (batches of several), every third request an orphan: checked only
    // at COMMIT, which it would fail for every request batched with it.
    let workers: Vec<_> = (0..4i64)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut c = client(&db, SQLITE);
                let (mut ok, mut failed) = (0, 0);
                for n in 0..60i64 {
                    let id = w * 1000 + n;
                    let parent = if n % 3 == 2 { -1 } else { id };
                    let request = writes(&[
                        ("INSERT INTO parent VALUES (?)", vec![Value::Integer(id)]),
                        (
                            "INSERT INTO child VALUES (?, ?)",
                            vec![Value::Integer(id), Value::Integer(parent)],
                        ),
                    ]);
                    match c.call(&request).unwrap() {
                        Response::Results { .. } => ok += 1,
                        Response::Error { error } => {
                            assert_eq!(
                                error.code.as_deref(),
                                Some("SQLITE_CONSTRAINT_FOREIGNKEY"),
                                "{error}"
                            );
                            assert!(error.message.contains("FOREIGN KEY"), "{error}");
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
    assert_eq!(ok, 4 * 40);
    // An orphan's request rolled back whole: its parent row too.
    assert_eq!(count(&mut setup, "SELECT count(*) FROM parent"), ok);
    assert_eq!(count(&mut setup, "SELECT count(*) FROM child"), ok);
}
