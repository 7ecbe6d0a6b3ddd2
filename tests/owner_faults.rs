//! The owner service (`Database::service`) under the failures that are not a SIGKILL: the
//! owner's file operations go through the `litekeep-faults` VFS (its default VFS), its clients
//! are other processes.
//!
//! - A batch's COMMIT fails: a write of the write-ahead log fails or finds the disk full, or
//!   its sync fails once, or twice. Three clients' requests are held in one batch (the first
//!   request arms the fault and holds the batch open while the others join it). Every call of
//!   the batch gets `commit_failed`, "not applied" when nothing can have been written (and
//!   nothing of it is in the file), "outcome unknown" when the frames may be in the log and
//!   running the batch again failed too; a failed sync that the batch's second run gets past is
//!   answered as a success. The owner serves on, and a request sent again is in the file
//!   exactly once.
//! - The power is cut in the owner (a seeded random write, sync or truncate of its files)
//!   while three clients call it: with `Durability::Full` every acknowledged call is in the
//!   file; with `Normal` the newest acknowledged calls may be missing (each client's missing
//!   ones are its last), never one twice, and the file is sound and opens.
//! - A client that runs its call itself (`here_when_free`, its write gate free) through the
//!   fault VFS: a failed write of its commit or a full disk sends the call to the owner, which
//!   applies it once; a failed sync is run again in the client, and a second one answers
//!   "outcome unknown", never shown in the file.
//! - The power is cut in such a client at seeded random points: the same promises as for the
//!   owner, by durability.
//!
//! CI runs a sample of cuts; `LK_CAMPAIGN=1` runs more. `LK_SEED=<n>` replays.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use litekeep::owner::{Failure, Options};
use litekeep::{Database, Durability, Service};
use litekeep_faults::harness::{self, Child, Ledger, Scratch, integrity, open_plain};
use litekeep_faults::{Config, Keep};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

const SCHEMA: &str =
    "CREATE TABLE calls (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n INTEGER NOT NULL);
                      CREATE INDEX calls_who_n ON calls (who, n);";
/// The child's durability: `full` or `normal`.
const DURABILITY_VAR: &str = "LK_OF_DURABILITY";
/// The owner's fault configuration, armed once it serves (text form).
const CUT_VAR: &str = "LK_OF_CUT";
/// A client's name.
const WHO_VAR: &str = "LK_OF_WHO";
/// A client that arms this fault configuration (text form) with its request.
const ARM_VAR: &str = "LK_OF_ARM";
/// A writer's number of calls and its ledger.
const COUNT_VAR: &str = "LK_OF_COUNT";
const LEDGER_VAR: &str = "LK_OF_LEDGER";
/// When set, a client runs its calls itself while the write gate is free (`here_when_free`).
const HERE_VAR: &str = "LK_OF_HERE";

/// How long the arming request holds its batch open for the others' requests to join it.
const HOLD: Duration = Duration::from_millis(2000);

/// What the clients ask.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Req {
    /// Inserts (who, n).
    Insert { who: String, n: u64 },
    /// Arms the owner's faults (once), holds the batch, then inserts (who, n).
    Arm {
        who: String,
        n: u64,
        faults: String,
        hold_ms: u64,
    },
    /// Clears the owner's faults.
    Disarm,
}

static ARMED: AtomicBool = AtomicBool::new(false);

fn handler(conn: &Connection, req: &Req) -> rusqlite::Result<i64> {
    let insert = |who: &str, n: u64| {
        conn.execute(
            "INSERT INTO calls (who, n) VALUES (?1, ?2)",
            (who, n as i64),
        )?;
        Ok(conn.last_insert_rowid())
    };
    match req {
        Req::Insert { who, n } => insert(who, *n),
        Req::Arm {
            who,
            n,
            faults,
            hold_ms,
        } => {
            // Once: a batch run again must not arm it again.
            if !ARMED.swap(true, Ordering::SeqCst) {
                litekeep_faults::configure(faults.parse().expect("a fault configuration"));
            }
            std::thread::sleep(Duration::from_millis(*hold_ms));
            insert(who, *n)
        }
        Req::Disarm => {
            let c = litekeep_faults::counters();
            harness::say(format!("INJECTED {}", c.faults + c.disk_full));
            litekeep_faults::configure(Config::new());
            Ok(0)
        }
    }
}

fn durability() -> Durability {
    match std::env::var(DURABILITY_VAR).as_deref() {
        Ok("full") => Durability::Full,
        _ => Durability::Normal,
    }
}

fn join(db: &Database, owner: bool) -> Service<Req, i64> {
    let options = Options::new("owner-faults", "1.0")
        .timeout(Duration::from_secs(20))
        .candidate(owner)
        .max_batch_time(Duration::from_secs(5));
    db.service(handler)
        .options(options)
        .here_when_free(std::env::var(HERE_VAR).is_ok())
        .join()
        .expect("join the service")
}

/// `ok`, or the failure's kind and whether it was applied: `commit_failed no`.
fn describe(r: &Result<i64, litekeep::Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(litekeep::Error::Owner(e)) => match e.failure() {
            Some(Failure { kind, applied, .. }) => {
                let applied = if *applied == litekeep::owner::Applied::No {
                    "no"
                } else {
                    "unknown"
                };
                format!("{} {applied}", kind.as_str())
            }
            None => format!("error {e}"),
        },
        Err(e) => format!("error {e}"),
    }
}

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    match role.as_str() {
        "owner" => child_owner(),
        "client" => child_client(),
        "here-client" => child_here_client(),
        "writer" => child_writer(),
        "sync-fails" => child_sync_fails(),
        other => panic!("unknown role {other}"),
    }
}

/// Owns the service through the fault VFS (its default VFS), with the faults of [`CUT_VAR`]
/// armed once it serves; serves until stdin closes.
fn child_owner() {
    litekeep_faults::register_as_default().expect("register the fault VFS");
    let db = Database::builder(harness::db())
        .durability(durability())
        .open()
        .expect("open");
    let service = join(&db, true);
    assert!(service.is_owner());
    let cut = std::env::var(CUT_VAR).unwrap_or_default();
    litekeep_faults::configure(cut.parse().expect("a fault configuration"));
    harness::say("READY");
    harness::until_stdin_closes();
    drop(service);
    harness::say_counters("END");
}

/// A client: one call to warm up, then (once stdin closes) its request — the arming one with
/// [`ARM_VAR`] — and, when that failed, the same row again until it is in.
fn child_client() {
    let who = std::env::var(WHO_VAR).expect("who");
    let db = Database::builder(harness::db()).open().expect("open");
    let service = join(&db, false);
    service
        .call(Req::Insert {
            who: who.clone(),
            n: 0,
        })
        .expect("the warm-up call");
    harness::say("READY");
    harness::until_stdin_closes();
    let arm = std::env::var(ARM_VAR).ok();
    let first = match &arm {
        Some(faults) => Req::Arm {
            who: who.clone(),
            n: 1,
            faults: faults.clone(),
            hold_ms: HOLD.as_millis() as u64,
        },
        None => Req::Insert {
            who: who.clone(),
            n: 1,
        },
    };
    let outcome = describe(&service.call(first));
    harness::say(format!("FIRST {outcome}"));
    if outcome != "ok" && arm.is_some() {
        let disarmed = (0..100).any(|_| service.call(Req::Disarm).is_ok());
        assert!(disarmed, "the owner could not be disarmed");
    }
    send_until_in(&db, &service, &who, outcome);
}

/// A client that runs its calls itself (the owner idle, the gate free) through the fault VFS:
/// a warm-up call, then its faults ([`ARM_VAR`]) armed in this process, then (who, 1); when
/// that failed, read back and sent again until it is in, as [`child_client`].
fn child_here_client() {
    litekeep_faults::register_as_default().expect("register the fault VFS");
    let who = std::env::var(WHO_VAR).expect("who");
    let db = Database::builder(harness::db())
        .durability(durability())
        .open()
        .expect("open");
    let service = join(&db, false);
    let insert = |n| Req::Insert {
        who: who.clone(),
        n,
    };
    service.call(insert(0)).expect("the warm-up call");
    let faults = std::env::var(ARM_VAR).expect("faults");
    litekeep_faults::configure(faults.parse().expect("a fault configuration"));
    let outcome = describe(&service.call(insert(1)));
    let c = litekeep_faults::counters();
    litekeep_faults::configure(Config::new());
    harness::say(format!("INJECTED {}", c.faults + c.disk_full));
    harness::say(format!("FIRST {outcome}"));
    send_until_in(&db, &service, &who, outcome);
}

/// After a first call of (who, 1) that ended with `outcome`: until it is ok, reads back whether
/// the row is there (`READBACK n`; there, the outcome was unknown and it went in) and sends it
/// again; then says the failures of the sends (`AGAIN ...`).
fn send_until_in(db: &Database, service: &Service<Req, i64>, who: &str, mut outcome: String) {
    let mut failures = Vec::new();
    while outcome != "ok" {
        // What the failed call left: nothing, unless the outcome is unknown.
        let there: i64 = db
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM calls WHERE who = ?1 AND n = 1",
                    [who],
                    |r| r.get(0),
                )
            })
            .expect("read back");
        harness::say(format!("READBACK {there}"));
        if there > 0 {
            break;
        }
        assert!(failures.len() < 200, "never in: {failures:?}");
        std::thread::sleep(Duration::from_millis(20));
        outcome = describe(&service.call(Req::Insert {
            who: who.to_owned(),
            n: 1,
        }));
        if outcome != "ok" {
            failures.push(outcome.clone());
        }
    }
    harness::say(format!("AGAIN {}", failures.join(", ")));
}

/// A client that calls (who, 0), (who, 1), … [`COUNT_VAR`] times, appending each acknowledged
/// one to its ledger; stops at the first failure.
fn child_writer() {
    let who = std::env::var(WHO_VAR).expect("who");
    let count: u64 = std::env::var(COUNT_VAR).unwrap().parse().unwrap();
    let mut ledger = Ledger::append_to(&harness::env_path(LEDGER_VAR)).expect("ledger");
    // A writer that runs its calls itself may have its own power cut.
    let cut = std::env::var(CUT_VAR).ok();
    if cut.is_some() {
        litekeep_faults::register_as_default().expect("register the fault VFS");
    }
    let db = Database::builder(harness::db())
        .durability(durability())
        .open()
        .expect("open");
    let service = join(&db, false);
    if let Some(cut) = &cut {
        litekeep_faults::configure(cut.parse().expect("a fault configuration"));
    }
    harness::say("READY");
    for n in 0..count {
        match service.call(Req::Insert {
            who: who.clone(),
            n,
        }) {
            Ok(_) => ledger.append(format!("{who} {n}")).expect("ledger"),
            Err(e) => {
                harness::say(format!("ERR {e}"));
                return;
            }
        }
    }
    harness::say("DONE");
    if cut.is_some() {
        harness::say_counters("END");
    }
}

/// Commits row 1 in WAL mode with `synchronous = FULL` through the fault VFS, then row 2 with
/// the commit's sync failing; then waits to be killed, its connection never closed.
fn child_sync_fails() {
    let conn = harness::open_faulty(&harness::db()).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO t VALUES (1, 'committed');",
    )
    .unwrap();
    litekeep_faults::configure(Config::new().fail_once(litekeep_faults::Op::Sync, 1));
    let err = conn
        .execute("INSERT INTO t VALUES (2, 'its sync failed')", [])
        .unwrap_err();
    let seen: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    harness::say(format!("FAILED {seen} {err}"));
    harness::until_stdin_closes();
    std::mem::forget(conn);
    std::process::abort();
}

// ---------------------------------------------------------------------------------------------
// A failed commit.

/// Why a commit whose sync failed is "outcome unknown": SQLite reports the error and the row is
/// not visible, but the transaction's frames are in the log; once every process of the database
/// is gone (here a SIGKILL), the next one to open it recovers them, row and all.
#[test]
fn a_commit_whose_sync_failed_can_come_back_once_its_processes_are_gone() {
    let dir = Scratch::new("owner-faults-ghost");
    let db = dir.join("t.db");
    let child = Child::build("sync-fails").db(&db).spawn();
    let failed = child.expect_line("FAILED ");
    assert!(failed.starts_with("FAILED 1 "), "{failed}");
    assert!(child.kill().killed());
    let conn = open_plain(&db);
    assert_eq!(integrity(&conn), "ok");
    let bodies: Vec<String> = conn
        .prepare("SELECT body FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(bodies, ["committed", "its sync failed"]);
}

/// What the clients of one failed batch said.
struct Batch {
    /// Each client's `FIRST` outcome.
    first: Vec<String>,
    /// Each `READBACK` (rows of the failed request found before sending it again).
    readbacks: Vec<String>,
    /// Each client's failures while sending again.
    again: Vec<String>,
    /// Faults the owner's VFS injected since it was armed.
    injected: u64,
}

/// Three clients' requests in one batch whose commit meets `faults` at an owner with
/// `durability`; then the file holds each client's two rows exactly once.
fn failed_batch(name: &str, durability: &str, faults: &str) -> Batch {
    let dir = Scratch::new(&format!("owner-faults-{name}"));
    let db = dir.join("app.db");
    drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
    let owner = Child::build("owner")
        .db(&db)
        .env(DURABILITY_VAR, durability)
        .spawn();
    owner.expect_line("READY");
    let mut clients: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|who| {
            let spawn = Child::build("client").db(&db).env(WHO_VAR, who);
            let spawn = if *who == "a" {
                spawn.env(ARM_VAR, faults)
            } else {
                spawn
            };
            spawn.spawn()
        })
        .collect();
    for c in &clients {
        c.expect_line("READY");
    }
    // The arming request first; the others while it holds the batch open.
    clients[0].close_stdin();
    std::thread::sleep(HOLD / 6);
    for c in &mut clients[1..] {
        c.close_stdin();
    }
    let mut batch = Batch {
        first: Vec::new(),
        readbacks: Vec::new(),
        again: Vec::new(),
        injected: 0,
    };
    for c in clients {
        let exit = c.wait();
        exit.assert_success();
        batch
            .first
            .push(exit.find("FIRST ").unwrap_or("none").to_owned());
        batch
            .readbacks
            .extend(exit.all("READBACK ").map(str::to_owned));
        batch.again.extend(
            exit.all("AGAIN ")
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
        );
    }
    let exit = owner.wait();
    exit.assert_success();
    let end = exit.counters("END");
    // Counted until the faults were cleared, or (never cleared) until the owner stopped.
    batch.injected = exit
        .find("INJECTED ")
        .map_or(end.faults + end.disk_full, |n| n.parse().unwrap());
    let conn = open_plain(&db);
    assert_eq!(integrity(&conn), "ok");
    for who in ["a", "b", "c"] {
        for n in 0..2 {
            let there: i64 = conn
                .query_row(
                    "SELECT count(*) FROM calls WHERE who = ?1 AND n = ?2",
                    (who, n),
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(there, 1, "{name}: ({who}, {n}) is there {there} times");
        }
    }
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 6, "{name}: only the six rows");
    batch
}

#[test]
fn a_failed_write_of_the_commit_fails_every_call_of_the_batch_and_a_resend_applies_once() {
    let b = failed_batch("write", "normal", "fail=write:1");
    assert_eq!(b.first, ["commit_failed no"; 3], "every call of the batch");
    assert_eq!(b.readbacks, ["0"; 3], "nothing of the batch is in the file");
    assert!(b.injected >= 1);
}

#[test]
fn a_full_disk_at_the_commit_fails_every_call_of_the_batch_and_a_resend_applies_once() {
    let b = failed_batch("full", "normal", "full=0");
    assert_eq!(b.first, ["commit_failed no"; 3], "every call of the batch");
    assert_eq!(b.readbacks, ["0"; 3], "nothing of the batch is in the file");
    // The requests sent again before the disk had room failed the same way.
    for again in &b.again {
        assert!(
            again.split(", ").all(|f| f == "commit_failed no"),
            "{again}"
        );
    }
    assert!(b.injected >= 1);
}

#[test]
fn a_failed_sync_of_the_commit_is_run_again_and_every_call_answered_once() {
    let b = failed_batch("sync-once", "full", "fail=sync:1");
    assert_eq!(b.first, ["ok"; 3], "the batch's second run committed");
    assert_eq!(b.injected, 1, "the commit's sync failed once");
}

#[test]
fn a_commit_whose_sync_fails_twice_answers_outcome_unknown_and_a_resend_applies_once() {
    let b = failed_batch("sync-twice", "full", "fail=sync:1;fail=sync:2");
    assert_eq!(
        b.first, ["commit_failed unknown"; 3],
        "every call of the batch"
    );
    // The owner went on: the unknown batch never showed, and the resends are in once.
    assert_eq!(b.readbacks, ["0"; 3]);
    assert!(b.injected >= 2);
}

// ---------------------------------------------------------------------------------------------
// A failed commit in a client that runs its call itself.

/// What a client that ran its call itself said when its commit met `faults`: its first
/// outcome, its read-backs, the faults its VFS injected. Then its two rows are in the file
/// exactly once.
fn failed_here(name: &str, durability: &str, faults: &str) -> (String, Vec<String>, u64, u64) {
    let dir = Scratch::new(&format!("owner-faults-here-{name}"));
    let db = dir.join("app.db");
    drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
    let mut owner = Child::build("owner")
        .db(&db)
        .env(DURABILITY_VAR, durability)
        .spawn();
    owner.expect_line("READY");
    let exit = Child::build("here-client")
        .db(&db)
        .env(DURABILITY_VAR, durability)
        .env(WHO_VAR, "a")
        .env(ARM_VAR, faults)
        .env(HERE_VAR, "1")
        .run();
    exit.assert_success();
    owner.close_stdin();
    let owner = owner.wait();
    owner.assert_success();
    let owner_wrote = owner.counters("END").mutations();
    let conn = open_plain(&db);
    assert_eq!(integrity(&conn), "ok");
    for n in 0..2 {
        let there: i64 = conn
            .query_row(
                "SELECT count(*) FROM calls WHERE who = 'a' AND n = ?1",
                [n],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(there, 1, "{name}: (a, {n}) is there {there} times");
    }
    let injected = exit.find("INJECTED ").unwrap().parse().unwrap();
    (
        exit.find("FIRST ").unwrap_or("none").to_owned(),
        exit.all("READBACK ").map(str::to_owned).collect(),
        injected,
        owner_wrote,
    )
}

#[test]
fn a_failed_write_of_a_commit_run_in_the_client_sends_the_call_to_the_owner() {
    let (first, readbacks, injected, owner_wrote) = failed_here("write", "normal", "fail=write:1");
    assert!(injected >= 1, "the client's own commit met the fault");
    assert!(owner_wrote > 0, "the owner ran the call");
    assert_eq!(first, "ok", "nothing was written here: the owner ran it");
    assert!(readbacks.is_empty());
}

#[test]
fn a_full_disk_at_a_commit_run_in_the_client_sends_the_call_to_the_owner() {
    let (first, readbacks, injected, owner_wrote) = failed_here("full", "normal", "full=0");
    assert!(injected >= 1, "the client's own commit met the full disk");
    assert!(owner_wrote > 0, "the owner ran the call");
    assert_eq!(first, "ok", "nothing was written here: the owner ran it");
    assert!(readbacks.is_empty());
}

#[test]
fn a_failed_sync_of_a_commit_run_in_the_client_is_run_again_there() {
    let (first, _, injected, owner_wrote) = failed_here("sync-once", "full", "fail=sync:1");
    assert_eq!(injected, 1, "the commit's sync failed once");
    assert_eq!(
        owner_wrote, 0,
        "run again in the client, not sent to the owner"
    );
    assert_eq!(first, "ok", "the second run committed");
}

#[test]
fn a_commit_run_in_the_client_whose_sync_fails_twice_answers_outcome_unknown() {
    let (first, readbacks, injected, _) =
        failed_here("sync-twice", "full", "fail=sync:1;fail=sync:2");
    assert!(injected >= 2);
    assert_eq!(first, "commit_failed unknown");
    assert_eq!(
        readbacks,
        ["0"],
        "it never showed, and the resend is in once"
    );
}

// ---------------------------------------------------------------------------------------------
// A power cut of the owner.

/// One run: an owner with `cut` armed, three writers of `count` calls each. Gives whether the
/// power was cut, and the owner's counters when it was not.
fn run_writers(
    db: &Path,
    dir: &Path,
    durability: &str,
    cut: &Config,
    count: u64,
) -> (bool, harness::Exit) {
    for who in ["a", "b", "c"] {
        let _ = std::fs::remove_file(dir.join(format!("ledger-{who}")));
    }
    let owner = Child::build("owner")
        .db(db)
        .env(DURABILITY_VAR, durability)
        .env(CUT_VAR, cut.to_string())
        .spawn();
    owner.expect_line("READY");
    let writers: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|who| {
            Child::build("writer")
                .db(db)
                .env(WHO_VAR, who)
                .env(COUNT_VAR, count.to_string())
                .env(LEDGER_VAR, dir.join(format!("ledger-{who}")))
                .spawn()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done = 0;
    while done < writers.len() && harness::running(owner.pid()) {
        assert!(Instant::now() < deadline, "the writers did not finish");
        if writers
            .iter()
            .any(|w| w.try_line(Duration::from_millis(5)).as_deref() == Some("DONE"))
        {
            done += 1;
        }
    }
    if harness::running(owner.pid()) {
        // Every writer finished before the cut point: no cut.
        for w in writers {
            w.wait().assert_success();
        }
        return (false, owner.wait());
    }
    // The power went: every process of the machine with it.
    for w in writers {
        w.kill();
    }
    let exit = owner.wait();
    assert!(
        exit.crashed(),
        "the owner ended otherwise: {}",
        exit.describe()
    );
    (true, exit)
}

/// Checks the file a cut left against the writers' ledgers: sound, no call twice, and with
/// `all_acked` every acknowledged call there; otherwise each writer's missing acknowledged
/// calls are its last ones. Gives (acknowledged, missing).
fn check_cut(db: &Path, dir: &Path, all_acked: bool) -> Result<(usize, usize), String> {
    let conn = open_plain(db);
    let verdict = integrity(&conn);
    if verdict != "ok" {
        return Err(format!("integrity_check: {verdict}"));
    }
    let doubled: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT 1 FROM calls GROUP BY who, n HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if doubled > 0 {
        return Err(format!("{doubled} calls are in the file twice"));
    }
    let (mut acked_all, mut missing_all) = (0, 0);
    for who in ["a", "b", "c"] {
        let acked: Vec<i64> = Ledger::read(&dir.join(format!("ledger-{who}")))
            .iter()
            .map(|l| l.split_once(' ').unwrap().1.parse().unwrap())
            .collect();
        let present: Vec<i64> = conn
            .prepare("SELECT n FROM calls WHERE who = ?1 ORDER BY n")
            .and_then(|mut s| s.query_map([who], |r| r.get(0))?.collect())
            .map_err(|e| e.to_string())?;
        // A writer's calls commit in its order, and the log is replayed up to its first bad
        // frame: what is there is 0..p, p at most one past the acknowledged (one in flight).
        if present.iter().enumerate().any(|(i, &n)| n != i as i64) {
            return Err(format!("{who}: not a prefix of its calls: {present:?}"));
        }
        if present.len() > acked.len() + 1 {
            return Err(format!(
                "{who}: {} calls in the file, {} acknowledged",
                present.len(),
                acked.len()
            ));
        }
        let missing = acked.len().saturating_sub(present.len());
        if all_acked && missing > 0 {
            return Err(format!(
                "{who}: {missing} of {} acknowledged calls lost",
                acked.len()
            ));
        }
        acked_all += acked.len();
        missing_all += missing;
    }
    drop(conn);
    Database::builder(db)
        .schema(SCHEMA)
        .open()
        .map_err(|e| format!("Database::open after the cut: {e}"))?;
    Ok((acked_all, missing_all))
}

/// How one run of a power-cut campaign goes: (db, dir, durability, faults, count) → whether
/// the power was cut, and the exit of the process whose power it was (its `END` counters
/// when it was not).
type CutRun = fn(&Path, &Path, &str, &Config, u64) -> (bool, harness::Exit);

/// Cuts the power of `who` (the process `run` arms) at seeded random points of a counting
/// run's writes, syncs and truncates; gives the failures and (cuts, acknowledged, missing).
fn cut_at_random(who: &str, durability: &str, run: CutRun) -> (Vec<String>, usize, usize, usize) {
    let dir = Scratch::new(&format!("owner-cut-{who}-{durability}"));
    let db = dir.join("app.db");
    let template = dir.join("template.db");
    drop(Database::builder(&template).schema(SCHEMA).open().unwrap());
    let count = match durability {
        "full" => harness::choose(150, 400),
        _ => harness::choose(600, 1500),
    };
    harness::copy_db(&template, &db);
    let (cut, counting) = run(&db, &dir, durability, &Config::new(), count);
    assert!(!cut);
    let mutations = counting.counters("END").mutations();
    assert!(mutations > 0, "the {who} wrote nothing itself");
    eprintln!(
        "{durability}: {count} calls per writer make {mutations} writes, syncs and truncates at the {who}"
    );
    let mut rng = harness::rng(&format!("{who} power cut, {durability}"));
    let (mut failures, mut cuts, mut acked, mut missing) = (Vec::new(), 0, 0, 0);
    for i in 0..harness::choose(12, 60) {
        let keep = if i % 5 == 4 { Keep::None } else { Keep::Random };
        let faults = Config::new()
            .crash_random(mutations)
            .seed(rng.u64(..u64::from(u32::MAX)))
            .keep(keep)
            .tear(keep == Keep::Random);
        harness::copy_db(&template, &db);
        let (was_cut, exit) = run(&db, &dir, durability, &faults, count);
        if !was_cut {
            continue;
        }
        cuts += 1;
        match check_cut(&db, &dir, durability == "full") {
            Ok((a, m)) => {
                acked += a;
                missing += m;
            }
            Err(e) => failures.push(format!("{faults}: {e}\n  {who}: {}", exit.describe())),
        }
    }
    eprintln!(
        "{durability}: {cuts} cuts of the {who}, {acked} acknowledged calls, {missing} of them missing after the cut"
    );
    (failures, cuts, acked, missing)
}

#[test]
fn every_acknowledged_call_survives_a_power_cut_of_the_owner_with_full_durability() {
    let (failures, cuts, acked, _) = cut_at_random("owner", "full", run_writers);
    assert!(
        cuts > 0 && acked > 0,
        "no cut landed while calls were acknowledged"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_power_cut_of_the_owner_with_normal_durability_takes_only_the_newest_and_doubles_none() {
    let (failures, cuts, acked, _) = cut_at_random("owner", "normal", run_writers);
    assert!(
        cuts > 0 && acked > 0,
        "no cut landed while calls were acknowledged"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// A power cut of a client that runs its calls itself.

/// One run: an idle owner, and one writer of `count` calls that runs them itself (its write
/// gate is always free) with `cut` armed in its own fault VFS. Gives whether the power was cut,
/// and the writer's exit.
fn run_here_writer(
    db: &Path,
    dir: &Path,
    durability: &str,
    cut: &Config,
    count: u64,
) -> (bool, harness::Exit) {
    let _ = std::fs::remove_file(dir.join("ledger-a"));
    let mut owner = Child::build("owner")
        .db(db)
        .env(DURABILITY_VAR, durability)
        .spawn();
    owner.expect_line("READY");
    let writer = Child::build("writer")
        .db(db)
        .env(DURABILITY_VAR, durability)
        .env(HERE_VAR, "1")
        .env(CUT_VAR, cut.to_string())
        .env(WHO_VAR, "a")
        .env(COUNT_VAR, count.to_string())
        .env(LEDGER_VAR, dir.join("ledger-a"))
        .spawn();
    let exit = writer.wait();
    if exit.crashed() {
        // The power went: every process of the machine with it.
        owner.kill();
        return (true, exit);
    }
    exit.assert_success();
    owner.close_stdin();
    let end = owner.wait();
    end.assert_success();
    // The owner ran nothing: every call ran in the writer.
    assert_eq!(end.counters("END").mutations(), 0, "the owner wrote");
    (false, exit)
}

#[test]
fn every_call_a_client_ran_itself_survives_its_power_cut_with_full_durability() {
    let (failures, cuts, acked, _) = cut_at_random("client", "full", run_here_writer);
    assert!(
        cuts > 0 && acked > 0,
        "no cut landed while calls were acknowledged"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_power_cut_of_a_client_running_its_calls_with_normal_durability_takes_only_the_newest() {
    let (failures, cuts, acked, _) = cut_at_random("client", "normal", run_here_writer);
    assert!(
        cuts > 0 && acked > 0,
        "no cut landed while calls were acknowledged"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
