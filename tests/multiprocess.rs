//! `Database` across real processes (this test binary re-executed as children; no threads
//! pretending to be processes):
//!
//! - 16 processes × 8 threads open the same fresh file at the same instant: no error, the schema
//!   is set up exactly once (one `_litekeep_history` entry), WAL is on;
//! - 4 processes × 4 threads write for a few seconds: no error reaches a caller, every
//!   acknowledged row (each child keeps a ledger) is there, `integrity_check` ok;
//! - a migration from one process while two others write: the writers see no error, nothing is
//!   lost;
//! - a handle that holds the shared lock makes another process's migration wait, and time out
//!   naming the holder; once the handle is gone, the migration runs;
//! - 8 gated writer processes lose nothing through SIGKILLs, a killed gate holder and
//!   migrations; 64 gated writer processes starting at once lose nothing and none runs out of
//!   its budget; a foreign write transaction is waited out, and named past the budget.
//!
//! Children are `litekeep_faults::harness` children (this test binary re-executed with a
//! role); they stop when their stdin closes (or at a deadline given in the environment). Which
//! writers the gate test kills, and when, comes from the harness's seeded generator: the seed is
//! printed, and `LK_SEED=<n>` replays a run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use litekeep::Database;
use litekeep_faults::harness::{self, BOUND, Child, Ledger, Scratch, integrity, open_plain};

const LEDGER_VAR: &str = "LK_FACADE_LEDGER";
const START_VAR: &str = "LK_FACADE_START_MS";
/// A writer stops after this many commits (default: when its stdin closes).
const MAX_VAR: &str = "LK_FACADE_MAX";
/// A writer starts writing once this file exists (default: at once).
const GO_VAR: &str = "LK_FACADE_GO";
/// A writer's `busy_timeout` in milliseconds (default: litekeep's).
const BUDGET_VAR: &str = "LK_FACADE_BUDGET_MS";

const SCHEMA: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n INTEGER NOT NULL);
CREATE INDEX events_who ON events(who);
";
const SCHEMA_V2: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n TEXT NOT NULL);
CREATE INDEX events_who ON events(who);
";

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes. Without a role it returns at once.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    let db = harness::db();
    let result = match role.as_str() {
        "open-race" => open_race(&db),
        "writer" => writer(&db, 4),
        // One thread per process, through the write gate.
        "one-writer" => writer(&db, 1),
        "gate-holder" => gate_holder(&db),
        "foreign-holder" => foreign_holder(&db),
        other => Err(format!("unknown role {other}")),
    };
    match result {
        Ok(msg) => harness::say(format!("OK {msg}")),
        Err(e) => harness::say(format!("ERROR {}", e.replace('\n', " "))),
    }
}

fn wait_for_start() {
    let start: u128 = std::env::var(START_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        if now >= start {
            return;
        }
        thread::sleep(Duration::from_micros(200));
    }
}

/// 8 threads open the database at the same instant and write one row each.
fn open_race(db: &Path) -> Result<String, String> {
    wait_for_start();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.to_path_buf();
            thread::spawn(move || -> Result<(), String> {
                let handle = Database::builder(&db)
                    .schema(SCHEMA)
                    .open()
                    .map_err(|e| e.to_string())?;
                let who = format!("{}-{t}", std::process::id());
                handle
                    .write(|tx| tx.execute("INSERT INTO events (who, n) VALUES (?1, 0)", [&who]))
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a thread panicked".to_owned())??;
    }
    Ok(String::new())
}

/// `threads` threads write single-row transactions until stdin closes (or [`MAX_VAR`] commits
/// each); each acknowledged row goes to the ledger. Says `OK <commits> slowest <µs> µs`.
fn writer(db: &Path, threads: usize) -> Result<String, String> {
    let ledger_path = std::env::var_os(LEDGER_VAR).ok_or("LK_FACADE_LEDGER not set")?;
    let ledger = Ledger::create(Path::new(&ledger_path)).map_err(|e| e.to_string())?;
    let ledger = Arc::new(Mutex::new(ledger));
    let mut builder = Database::builder(db)
        .schema(SCHEMA)
        .write_gate(threads == 1);
    if let Some(ms) = std::env::var(BUDGET_VAR).ok().and_then(|v| v.parse().ok()) {
        builder = builder.busy_timeout(Duration::from_millis(ms));
    }
    let handle = builder.open().map_err(|e| e.to_string())?;
    let stop = harness::stop_on_stdin_close();
    harness::say("READY");
    harness::wait_for_go(GO_VAR);
    let max: u64 = std::env::var(MAX_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (handle, ledger, stop) = (handle.clone(), ledger.clone(), stop.clone());
            thread::spawn(move || -> Result<(u64, Duration), String> {
                let who = format!("{}-{t}", std::process::id());
                let (mut n, mut slowest) = (0u64, Duration::ZERO);
                while !stop.load(Ordering::SeqCst) && n < max {
                    n += 1;
                    let began = Instant::now();
                    let id = handle
                        .write(|tx| {
                            tx.execute(
                                "INSERT INTO events (who, n) VALUES (?1, ?2)",
                                (&who, n as i64),
                            )?;
                            Ok(tx.last_insert_rowid())
                        })
                        .map_err(|e| e.to_string())?;
                    slowest = slowest.max(began.elapsed());
                    // One write(2) per line: a SIGKILL never leaves half a line behind.
                    let mut l = ledger.lock().map_err(|_| "ledger poisoned")?;
                    l.append(format!("{id} {who} {n}"))
                        .map_err(|e| e.to_string())?;
                }
                Ok((n, slowest))
            })
        })
        .collect();
    let (mut total, mut slowest) = (0, Duration::ZERO);
    for w in workers {
        let (n, slow) = w.join().map_err(|_| "a writer panicked".to_owned())??;
        (total, slowest) = (total + n, slowest.max(slow));
    }
    Ok(format!("{total} slowest {} µs", slowest.as_micros()))
}

/// Holds the write gate (and SQLite's write lock) inside a write transaction until killed.
fn gate_holder(db: &Path) -> Result<String, String> {
    let handle = Database::builder(db)
        .schema(SCHEMA)
        .label("gate holder")
        .write_gate(true)
        .open()
        .map_err(|e| e.to_string())?;
    handle
        .write(|tx| {
            tx.execute("INSERT INTO events (who, n) VALUES ('holder', 0)", [])?;
            harness::say("HOLDING");
            thread::sleep(BOUND);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok("not killed".to_owned())
}

/// A program that does not use litekeep: plain rusqlite holds a write transaction for 2 s.
fn foreign_holder(db: &Path) -> Result<String, String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO events (who, n) VALUES ('foreign', 0);")
        .map_err(|e| e.to_string())?;
    harness::say("HOLDING");
    thread::sleep(Duration::from_secs(2));
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
    Ok("committed".to_owned())
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// A `writer` child (4 threads) on `db` with its `ledger`.
fn writer_child(db: &Path, ledger: &Path) -> Child {
    Child::build("writer")
        .db(db)
        .env(LEDGER_VAR, ledger)
        .spawn()
}

/// Every ledger line names a row that is there.
fn check_ledgers(conn: &rusqlite::Connection, ledgers: &[PathBuf]) -> usize {
    let mut acked = 0;
    let mut ids = BTreeSet::new();
    for ledger in ledgers {
        for line in Ledger::read(ledger) {
            let mut parts = line.split(' ');
            let id: i64 = parts.next().unwrap().parse().unwrap();
            let who = parts.next().unwrap();
            let n: String = parts.next().unwrap().to_owned();
            let found: Option<(String, String)> = conn
                .query_row(
                    "SELECT who, CAST(n AS TEXT) FROM events WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok();
            assert_eq!(
                found,
                Some((who.to_owned(), n)),
                "acknowledged row {id} lost"
            );
            assert!(ids.insert(id), "row {id} acknowledged twice");
            acked += 1;
        }
    }
    acked
}

#[test]
fn sixteen_processes_eight_threads_open_a_fresh_file_at_once() {
    let dir = Scratch::new("facade-race");
    let db = dir.join("fresh.db");
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 2000;
    let kids: Vec<Child> = (0..16)
        .map(|_| {
            Child::build("open-race")
                .db(&db)
                .env(START_VAR, start.to_string())
                .spawn()
        })
        .collect();
    for kid in kids {
        let line = kid.finish();
        assert!(line.starts_with("OK"), "a child failed: {line}");
    }
    let conn = open_plain(&db);
    let inits: i64 = conn
        .query_row("SELECT count(*) FROM _litekeep_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(inits, 1, "the schema was set up {inits} times");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 16 * 8);
    let want = litekeep::migrate::Schema::from_sql(SCHEMA)
        .unwrap()
        .fingerprint();
    assert_eq!(
        litekeep::migrate::Schema::read(&conn)
            .unwrap()
            .fingerprint(),
        want
    );
    assert_eq!(integrity(&conn), "ok");
}

#[test]
fn four_processes_of_four_writers_lose_nothing() {
    let dir = Scratch::new("facade-writers");
    let db = dir.join("w.db");
    let ledgers: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("ledger{i}"))).collect();
    let kids: Vec<Child> = ledgers.iter().map(|l| writer_child(&db, l)).collect();
    for kid in &kids {
        assert_eq!(kid.line(), "READY");
    }
    thread::sleep(Duration::from_secs(3));
    let mut total = 0u64;
    for kid in kids {
        let line = kid.finish();
        let n = line
            .strip_prefix("OK ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("a writer failed: {line}"));
        total += n.parse::<u64>().unwrap();
    }
    let conn = open_plain(&db);
    let acked = check_ledgers(&conn, &ledgers);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, acked, "rows that nobody acknowledged");
    assert!(acked > 100, "only {acked} writes in 3 s");
    assert!(total >= acked as u64);
    assert_eq!(integrity(&conn), "ok");
    eprintln!("4 processes x 4 threads: {acked} acknowledged writes in ~3 s");
}

#[test]
fn a_migration_while_other_processes_write_loses_nothing() {
    let dir = Scratch::new("facade-online");
    let db = dir.join("m.db");
    let handle = Database::builder(&db).schema(SCHEMA).open().unwrap();
    let ledgers: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("ledger{i}"))).collect();
    let kids: Vec<Child> = ledgers.iter().map(|l| writer_child(&db, l)).collect();
    for kid in &kids {
        assert_eq!(kid.line(), "READY");
    }
    let started = Instant::now();
    for (i, schema) in [SCHEMA_V2, SCHEMA, SCHEMA_V2, SCHEMA]
        .into_iter()
        .enumerate()
    {
        thread::sleep(Duration::from_millis(200));
        let report = handle
            .migrate(schema, &litekeep::migrate::Options::default())
            .unwrap_or_else(|e| panic!("migration {i}: {e}"));
        assert!(report.applied, "migration {i} did nothing");
    }
    thread::sleep(Duration::from_millis(200));
    for kid in kids {
        let line = kid.finish();
        assert!(line.starts_with("OK"), "a writer saw an error: {line}");
    }
    let conn = open_plain(&db);
    let acked = check_ledgers(&conn, &ledgers);
    assert!(acked > 0);
    assert_eq!(integrity(&conn), "ok");
    eprintln!(
        "4 migrations in {:?} beside 2 writer processes: {acked} acknowledged writes, all present",
        started.elapsed()
    );
    drop(handle);
}

#[test]
fn a_handle_holding_the_shared_lock_makes_migrations_elsewhere_wait() {
    let dir = Scratch::new("facade-held");
    let db = dir.join("h.db");
    let schema_file = dir.join("v2.sql");
    std::fs::write(&schema_file, SCHEMA_V2).unwrap();
    let handle = Database::builder(&db)
        .schema(SCHEMA)
        .hold_shared_lock(true)
        .label("holding test")
        .open()
        .unwrap();
    let migrate = |timeout: &str| {
        Command::new(env!("CARGO_BIN_EXE_litekeep"))
            .args(["migrate", "--db"])
            .arg(&db)
            .arg("--schema")
            .arg(&schema_file)
            .args(["--lock-timeout", timeout])
            .output()
            .unwrap()
    };
    let out = migrate("300ms");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())) && stderr.contains("holding test"),
        "{stderr}"
    );
    drop(handle);
    let out = migrate("10s");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn eight_gated_writers_lose_nothing_through_sigkills_a_killed_gate_holder_and_migrations() {
    let dir = Scratch::new("facade-gate");
    let db = dir.join("g.db");
    let handle = Database::builder(&db)
        .schema(SCHEMA)
        .write_gate(true)
        .open()
        .unwrap();
    let ledgers: Vec<PathBuf> = (0..8).map(|i| dir.join(format!("ledger{i}"))).collect();
    // The writers write until they are told to stop, so that every kill below hits one that
    // is writing, however fast this machine runs.
    let spawn = |ledger: &PathBuf| {
        Child::build("one-writer")
            .db(&db)
            .env(LEDGER_VAR, ledger)
            .spawn()
    };
    // A writer holding the gate in the middle of a transaction, SIGKILLed while the others
    // wait for it: the kernel frees the gate at once, and nobody runs out of its 10 s budget.
    let holder = Child::build("gate-holder").db(&db).spawn();
    assert_eq!(holder.line(), "HOLDING");
    let mut kids: Vec<Option<Child>> = ledgers.iter().map(|l| Some(spawn(l))).collect();
    for kid in kids.iter().flatten() {
        assert_eq!(kid.line(), "READY");
    }
    thread::sleep(Duration::from_millis(300));
    holder.kill();
    // Writers killed at random moments (most of a writer's time is spent inside the gate).
    let mut rng = harness::rng("gated writers");
    let mut killed = Vec::new();
    for round in 0..3 {
        thread::sleep(Duration::from_millis(50 + rng.u64(..200)));
        let victim = rng.usize(..kids.len());
        if let Some(kid) = kids[victim].take() {
            assert!(
                kid.kill().killed(),
                "writer {victim} had ended before its SIGKILL"
            );
            killed.push(victim);
        }
        // A migration in the middle: it waits for the writers in flight, they wait for it.
        let schema = if round % 2 == 0 { SCHEMA_V2 } else { SCHEMA };
        let report = handle
            .migrate(schema, &litekeep::migrate::Options::default())
            .unwrap_or_else(|e| panic!("migration {round}: {e}"));
        assert!(report.applied);
    }
    let mut survivors = 0;
    for kid in kids.into_iter().flatten() {
        let line = kid.finish();
        let commits: usize = line
            .strip_prefix("OK ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a writer did not finish cleanly: {line}"));
        assert!(commits > 0, "a writer committed nothing: {line}");
        survivors += commits;
    }
    let conn = open_plain(&db);
    let acked = check_ledgers(&conn, &ledgers);
    assert!(
        acked >= survivors,
        "{acked} acknowledged, {survivors} by the survivors alone"
    );
    assert_eq!(integrity(&conn), "ok");
    // The killed holder's transaction never committed.
    let holder_rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE who = 'holder'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(holder_rows, 0);
    eprintln!(
        "8 gated writers, {} SIGKILLed, 3 migrations: {acked} acknowledged, all present",
        killed.len()
    );
    drop(handle);
}

/// 64 writer processes (twice the bell's 32 futex bits, so waiters share the bit a ring wakes)
/// start writing at the same instant through the gate, 200 single-row commits each, with a
/// budget (`busy_timeout`) of 1 s: none runs out of it, every acknowledged row is there,
/// `integrity_check` is ok. The gate's slowest write here is 30–35 ms (70–85 ms with four
/// busy loops beside it); without the gate, in SQLite's sleeping busy handler, a writer waited
/// 1.2–1.5 s, and with this budget one failed `Busy` in each of three runs.
#[test]
fn sixty_four_gated_writer_processes_at_once_lose_nothing_and_none_runs_out_of_time() {
    let dir = Scratch::new("facade-many");
    let db = dir.join("m.db");
    drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
    let go = dir.join("go");
    let ledgers: Vec<PathBuf> = (0..64).map(|i| dir.join(format!("ledger{i}"))).collect();
    let kids: Vec<Child> = ledgers
        .iter()
        .map(|ledger| {
            Child::build("one-writer")
                .db(&db)
                .env(LEDGER_VAR, ledger)
                .env(MAX_VAR, "200")
                .env(GO_VAR, &go)
                .env(BUDGET_VAR, "1000")
                .spawn()
        })
        .collect();
    for kid in &kids {
        assert_eq!(kid.line(), "READY");
    }
    std::fs::write(&go, "").unwrap();
    let mut slowest = Duration::ZERO;
    for kid in kids {
        let line = kid.line();
        let Some(slow) = line
            .strip_prefix("OK 200 slowest ")
            .and_then(|rest| rest.strip_suffix(" µs"))
        else {
            panic!("a writer did not finish cleanly: {line}");
        };
        slowest = slowest.max(Duration::from_micros(slow.parse().unwrap()));
        kid.wait();
    }
    let conn = open_plain(&db);
    assert_eq!(check_ledgers(&conn, &ledgers), 64 * 200);
    assert_eq!(integrity(&conn), "ok");
    eprintln!(
        "64 gated writer processes, 200 commits each, all present; slowest write {slowest:?}"
    );
}

/// A process that does not use litekeep holding a write transaction for 2 s: plain rusqlite
/// (`foreign-holder`), or the `sqlite3` shell itself.
fn foreign_writer(kind: &str, db: &Path) -> Child {
    let child = match kind {
        "rusqlite" => Child::build("foreign-holder").db(db).spawn(),
        _ => {
            let script = format!(
                "BEGIN IMMEDIATE;\nINSERT INTO events (who, n) VALUES ('sqlite3', 0);\n\
                 .print {MARK}HOLDING\n.shell sleep 2\nCOMMIT;\n.print {MARK}OK committed\n",
                MARK = harness::MARK
            );
            let shell = format!("printf '%s' \"$0\" | sqlite3 -bail '{}'", db.display());
            Child::program("sqlite3", "sh", ["-c", &shell, &script]).spawn()
        }
    };
    assert_eq!(
        child.line(),
        "HOLDING",
        "{kind} did not take the write lock (is the sqlite3 shell installed?)"
    );
    child
}

#[test]
fn a_foreign_write_transaction_is_waited_out_within_busy_timeout_and_named_past_it() {
    for kind in ["rusqlite", "sqlite3 shell"] {
        let dir = Scratch::new("facade-foreign");
        let db = dir.join("f.db");
        drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
        // Within the budget (10 s): the write waits the 2 s out and succeeds.
        let foreign = foreign_writer(kind, &db);
        let handle = Database::open(&db).unwrap();
        let started = Instant::now();
        handle
            .write(|tx| tx.execute("INSERT INTO events (who, n) VALUES ('patient', 1)", []))
            .unwrap_or_else(|e| panic!("{kind}: waited for the foreign writer: {e}"));
        let waited = started.elapsed();
        assert!(foreign.finish().starts_with("OK committed"), "{kind}");
        drop(handle);
        // Past the budget (300 ms): Busy, naming the file.
        let foreign = foreign_writer(kind, &db);
        let path = dir.join("./f.db");
        let short = Database::builder(&path)
            .busy_timeout(Duration::from_millis(300))
            .open()
            .unwrap();
        let err = short
            .write(|tx| tx.execute("INSERT INTO events (who, n) VALUES ('impatient', 1)", []))
            .unwrap_err();
        assert!(matches!(err, litekeep::Error::Busy { .. }), "{kind}: {err}");
        assert!(err.to_string().contains("f.db"), "{kind}: {err}");
        assert!(foreign.finish().starts_with("OK committed"), "{kind}");
        drop(short);
        let rows: Vec<String> = harness::column(
            &rusqlite::Connection::open(&db).unwrap(),
            "SELECT who FROM events ORDER BY id",
        )
        .unwrap();
        let foreign_name = if kind == "rusqlite" {
            "foreign"
        } else {
            "sqlite3"
        };
        assert_eq!(rows, [foreign_name, "patient", foreign_name], "{kind}");
        eprintln!("{kind}: waited {waited:?} for a foreign 2 s write transaction");
    }
}
