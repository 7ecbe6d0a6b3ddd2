//! The owner service (`Database::service`) across real processes:
//!
//! - 8 writer processes × 2,000 ledgered requests through the owner, with SIGKILLs of writers
//!   and of whichever process owns (found from the owner lock's holder), and owners that kill
//!   themselves right after a commit, before answering (the retry at the next owner must get
//!   the recorded outcome): every acknowledged write is in the file exactly once, no request
//!   is applied twice, `integrity_check` is ok;
//!   the same with clients that run their calls themselves while the write gate is free;
//! - a handler that fails or panics on one request rolls back that request alone, at the owner
//!   and in a client that runs the call itself; such a client runs a call itself while the gate
//!   is free and sends it to the owner while the gate is held.
//!
//! Which processes are killed, and when, comes from the harness's seeded generator: the seed
//! is printed, and `LK_SEED=<n>` replays a run's choices.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use litekeep::{Database, Service};
use litekeep_faults::harness::{self, Child, Ledger, Scratch, integrity, open_plain};

const SCHEMA: &str =
    "CREATE TABLE ledger (id INTEGER PRIMARY KEY, client TEXT NOT NULL, n INTEGER NOT NULL);";
/// The writer's name in the ledger (unique per process).
const NAME_VAR: &str = "LK_OWNER_NAME";
/// How many acknowledged requests the writer makes, then exits.
const COUNT_VAR: &str = "LK_OWNER_COUNT";
/// The writer's ledger.
const LEDGER_VAR: &str = "LK_OWNER_LEDGER";
/// When set, the writer stays (owning, maybe) after its last call until its stdin closes.
const LINGER_VAR: &str = "LK_OWNER_LINGER";
/// When set, the writer goes on past its count until its stdin closes.
const UNTIL_STOPPED_VAR: &str = "LK_OWNER_UNTIL_STOPPED";
/// The writer's program version (default 1.0).
const VERSION_VAR: &str = "LK_OWNER_VERSION";
/// The chance (per thousand) that the owner SIGKILLs itself right after a commit.
const CRASH_VAR: &str = "LK_OWNER_CRASH_PERMILLE";
/// When set, a client runs a call itself when the write gate is free (`here_when_free`).
const HERE_VAR: &str = "LK_OWNER_HERE";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"))
}

/// How many requests this process's handler ran (here or as the owner).
static RAN: AtomicU64 = AtomicU64::new(0);

fn join(db: &Database) -> Service<(String, u64), i64> {
    let crash: u32 = std::env::var(CRASH_VAR).map_or(0, |v| v.parse().unwrap());
    db.service(|conn, (client, n): &(String, u64)| {
        RAN.fetch_add(1, Ordering::SeqCst);
        if client.ends_with("!fail") {
            return Err(rusqlite::Error::InvalidQuery);
        }
        if client.ends_with("!panic") {
            panic!("asked to panic");
        }
        if client.ends_with("!where") {
            return Ok(i64::from(std::process::id()));
        }
        conn.execute(
            "INSERT INTO ledger (client, n) VALUES (?1, ?2)",
            rusqlite::params![client, *n as i64],
        )?;
        if client.ends_with("!commit") {
            // Breaks the handler's contract: commits the batch's transaction itself.
            conn.execute_batch("COMMIT")?;
        }
        Ok(conn.last_insert_rowid())
    })
    .timeout(Duration::from_secs(30))
    .version(std::env::var(VERSION_VAR).unwrap_or_else(|_| "1.0".into()))
    .here_when_free(std::env::var(HERE_VAR).is_ok())
    .after_commit(move |_| {
        if crash > 0 && fastrand::u32(..1000) < crash {
            // SAFETY: kill(2) on this very process; no memory is involved.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    })
    .join()
    .expect("join the service")
}

/// NOT A REAL TEST: the entry point of the child processes. Without a role it returns at once.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    let db = Database::builder(harness::db())
        .schema(SCHEMA)
        .open()
        .expect("open");
    match role.as_str() {
        "writer" => {
            let service = join(&db);
            let name = env(NAME_VAR);
            let count: u64 = env(COUNT_VAR).parse().unwrap();
            let mut ledger = Ledger::append_to(Path::new(&env(LEDGER_VAR))).unwrap();
            harness::say("READY");
            let stop = std::env::var(UNTIL_STOPPED_VAR)
                .is_ok()
                .then(harness::stop_on_stdin_close);
            let going = |n: u64| {
                n < count
                    || stop
                        .as_ref()
                        .is_some_and(|s| !s.load(std::sync::atomic::Ordering::SeqCst))
            };
            let mut errors = 0;
            let mut n = 0;
            // Calls that ran in this process while it was a client, start to end.
            let mut here = 0;
            while going(n) {
                let (ran, owned) = (RAN.load(Ordering::SeqCst), service.is_owner());
                let result = service.call((name.clone(), n));
                if !owned && !service.is_owner() && RAN.load(Ordering::SeqCst) > ran {
                    here += 1;
                }
                match result {
                    Ok(_) => ledger.append(format!("{name} {n}")).unwrap(),
                    Err(e) => {
                        errors += 1;
                        harness::say(format!("ERR {e}"));
                    }
                }
                n += 1;
            }
            harness::say(format!("DONE {errors} {}", service.is_owner()));
            harness::say(format!("HERE {here}"));
            if std::env::var(LINGER_VAR).is_ok() {
                harness::until_stdin_closes();
            }
        }
        "one-bad" => {
            let service = join(&db);
            let ok1 = service.call(("a".into(), 1));
            let failed = service.call(("b!fail".into(), 2));
            let panicked = service.call(("c!panic".into(), 3));
            let ok2 = service.call(("d".into(), 4));
            let committed = match service.call(("f!commit".into(), 8)) {
                Err(litekeep::Error::Owner(e)) => format!(
                    "{}/{}",
                    e.kind().map_or("none", |k| k.as_str()),
                    if e.outcome_unknown() {
                        "unknown"
                    } else {
                        "known"
                    }
                ),
                other => format!("{other:?}"),
            };
            // From inside a write of the same database: refused at once, not a wait.
            let inside = db
                .write(|_| {
                    Ok(matches!(
                        service.call(("e".into(), 5)),
                        Err(litekeep::Error::InsideWrite { .. })
                    ))
                })
                .unwrap();
            // Where a call runs when nobody writes, and when another writer holds the gate
            // (a thread of this process, for a second after it said so).
            let me = i64::from(std::process::id());
            let free = service.call(("w!where".into(), 6)).unwrap() == me;
            let gate = litekeep::lock::FileLock::write_gate_for_database(db.path()).unwrap();
            let (held_tx, held_rx) = std::sync::mpsc::channel();
            let holder = std::thread::spawn(move || {
                let _held = gate.exclusive(litekeep::lock::Wait::Forever).unwrap();
                held_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_secs(1));
            });
            held_rx.recv().unwrap();
            let busy = service.call(("w!where".into(), 7)).unwrap() == me;
            holder.join().unwrap();
            harness::say(format!(
                "RESULTS {} {} {} {} {inside} {free} {busy} {committed} {}",
                ok1.is_ok(),
                kind(&failed),
                kind(&panicked),
                ok2.is_ok(),
                RAN.load(Ordering::SeqCst)
            ));
        }
        other => panic!("unknown role {other}"),
    }
}

fn kind<T>(r: &Result<T, litekeep::Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(litekeep::Error::Owner(e)) => e.kind().map_or("none", |k| k.as_str()).into(),
        Err(e) => format!("other:{e}"),
    }
}

/// The pid holding the owner lock of `db`, if any.
fn owner_pid(db: &Path) -> Option<u32> {
    litekeep::lock::FileLock::open(litekeep::owner::owner_lock_path(db))
        .ok()?
        .holder()
        .map(|h| h.pid)
}

struct Slot {
    child: Option<Child>,
    incarnation: u32,
    ledger: std::path::PathBuf,
}

fn spawn(db: &Path, slot: usize, s: &mut Slot, total: u64, here: bool) -> bool {
    let acked = Ledger::read(&s.ledger).len() as u64;
    if acked >= total {
        return false;
    }
    s.incarnation += 1;
    let child = Child::build("writer")
        .db(db)
        .env(NAME_VAR, format!("w{slot}.{}", s.incarnation))
        .env(COUNT_VAR, (total - acked).to_string())
        .env(LEDGER_VAR, &s.ledger)
        .env(CRASH_VAR, "3");
    let child = if here {
        child.env(HERE_VAR, "1")
    } else {
        child
    };
    let child = child.spawn();
    s.child = Some(child);
    true
}

#[test]
fn every_acknowledged_write_is_there_exactly_once_through_sigkills_of_owners_and_clients() {
    ledger_under_sigkills(false);
}

/// As above, with clients that run their calls themselves while the write gate is free: the
/// SIGKILLs now also hit clients in their own commits.
#[test]
fn calls_run_in_clients_while_the_gate_is_free_survive_sigkills_exactly_once() {
    ledger_under_sigkills(true);
}

fn ledger_under_sigkills(here: bool) {
    let dir = Scratch::new(if here {
        "owner-ledger-here"
    } else {
        "owner-ledger"
    });
    let db = dir.join("app.db");
    drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
    let mut rng = harness::rng("owner ledger");
    let (writers, total) = (8, harness::choose(2000u64, 5000));
    let mut slots: Vec<Slot> = (0..writers)
        .map(|i| Slot {
            child: None,
            incarnation: 0,
            ledger: dir.join(format!("ledger-{i}")),
        })
        .collect();
    for (i, s) in slots.iter_mut().enumerate() {
        spawn(&db, i, s, total, here);
    }
    let (mut kills, mut owner_kills, mut self_kills, mut errors) = (0, 0, 0, Vec::new());
    // Calls that ran in a client, as the writers that finished counted them.
    let mut ran_here = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        std::thread::sleep(Duration::from_millis(rng.u64(20..200)));
        // Reap the writers that ended on their own (done, or killed by their own after-commit
        // crash), and start the slots that have more to do.
        for (i, s) in slots.iter_mut().enumerate() {
            let Some(child) = s.child.take_if(|c| !harness::running(c.pid())) else {
                continue;
            };
            let exit = child.wait();
            errors.extend(exit.all("ERR ").map(str::to_owned));
            ran_here += exit.find("HERE ").map_or(0, |n| n.parse::<u64>().unwrap());
            if exit.killed() {
                self_kills += 1;
            } else {
                exit.assert_success();
            }
            spawn(&db, i, s, total, here);
        }
        if slots.iter().all(|s| s.child.is_none()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writers did not finish in time"
        );
        // Kill the owner half the time (and the first time), another writer the other half.
        let owner = owner_pid(&db);
        let live: Vec<usize> = (0..writers).filter(|&i| slots[i].child.is_some()).collect();
        let victim = match owner.and_then(|p| {
            live.iter()
                .copied()
                .find(|&i| slots[i].child.as_ref().is_some_and(|c| c.pid() == p))
        }) {
            Some(i) if owner_kills == 0 || rng.bool() => {
                owner_kills += 1;
                i
            }
            _ => live[rng.usize(..live.len())],
        };
        let exit = slots[victim].child.take().map(Child::kill);
        if let Some(exit) = exit {
            errors.extend(exit.all("ERR ").map(str::to_owned));
        }
        kills += 1;
        spawn(&db, victim, &mut slots[victim], total, here);
    }
    eprintln!(
        "{kills} SIGKILLs ({owner_kills} of the owner), {self_kills} owners killed themselves after a commit"
    );
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    assert!(
        owner_kills > 0 && self_kills > 0,
        "the owner was killed both ways"
    );
    eprintln!("{ran_here} calls ran in the clients that made them (of the writers that finished)");
    if here {
        assert!(ran_here > 0, "no call ran in its client");
    } else {
        assert_eq!(ran_here, 0, "calls ran in clients");
    }
    let ledgers: Vec<_> = slots.iter().map(|s| s.ledger.clone()).collect();
    let acked = check_exactly_once(&db, &ledgers);
    assert_eq!(acked as u64, writers as u64 * total);
    let rows: i64 = open_plain(&db)
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    eprintln!("{acked} acknowledged writes, {rows} rows (the rest: killed before their answer)");
}

#[test]
fn a_failing_or_panicking_handler_rolls_back_its_own_request_alone() {
    let dir = Scratch::new("owner-bad-handler");
    let db = dir.join("app.db");
    // Alone, the process owns: every call runs in it, through its own batches (six: the
    // call from inside a write is refused before it runs).
    let exit = Child::build("one-bad").db(&db).run();
    exit.assert_success();
    assert_eq!(
        exit.find("RESULTS "),
        Some("true handler panicked true true true true commit_failed/unknown 7")
    );
    check_a_and_d(&db);
}

#[test]
fn a_client_runs_a_call_itself_while_the_gate_is_free_with_the_owners_semantics() {
    let dir = Scratch::new("owner-here");
    let db = dir.join("app.db");
    drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
    let mut owner = idle_owner(&dir, &db);
    let exit = Child::build("one-bad").db(&db).env(HERE_VAR, "1").run();
    exit.assert_success();
    // A failing and a panicking handler get the owner's errors; with the gate free the calls
    // ran in the client (five, the failing and the panicking ones included), with the gate
    // held it went to the owner.
    assert_eq!(
        exit.find("RESULTS "),
        Some("true handler panicked true true true false commit_failed/unknown 6")
    );
    owner.close_stdin();
    owner.wait().assert_success();
    check_a_and_d(&db);
}

#[test]
fn a_client_of_another_version_sends_every_call_to_the_owner() {
    let dir = Scratch::new("owner-here-versions");
    let db = dir.join("app.db");
    drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
    let mut owner = idle_owner(&dir, &db);
    // An older client (it does not take over) that would run its calls itself: during a
    // rolling deploy the newer owner's handler runs them, gate free or not.
    let exit = Child::build("one-bad")
        .db(&db)
        .env(HERE_VAR, "1")
        .env(VERSION_VAR, "0.9")
        .run();
    exit.assert_success();
    assert_eq!(
        exit.find("RESULTS "),
        Some("true handler panicked true true false false commit_failed/unknown 0")
    );
    owner.close_stdin();
    owner.wait().assert_success();
    check_a_and_d(&db);
}

/// An owner of `db` that makes no call of its own and serves until its stdin closes.
fn idle_owner(dir: &Path, db: &Path) -> Child {
    let owner = Child::build("writer")
        .db(db)
        .env(NAME_VAR, "owner")
        .env(COUNT_VAR, "0")
        .env(LEDGER_VAR, dir.join("owner-ledger"))
        .env(LINGER_VAR, "1")
        .spawn();
    owner.expect_line("READY");
    owner.expect_line("DONE 0 true");
    owner
}

/// Of the `one-bad` requests, only "a", "d" and the one whose handler committed itself (once:
/// it was not run again elsewhere) are in the file.
fn check_a_and_d(db: &Path) {
    let conn = open_plain(db);
    let clients: Vec<String> = conn
        .prepare("SELECT client FROM ledger ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(clients, ["a", "d", "f!commit"]);
}

/// Every line of every ledger is in the file exactly once, and no request is there twice.
fn check_exactly_once(db: &Path, ledgers: &[std::path::PathBuf]) -> usize {
    let conn = open_plain(db);
    assert_eq!(integrity(&conn), "ok");
    conn.execute_batch("CREATE INDEX IF NOT EXISTS ledger_client_n ON ledger (client, n)")
        .unwrap();
    let doubled: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT 1 FROM ledger GROUP BY client, n HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(doubled, 0, "requests applied twice");
    let mut count = conn
        .prepare("SELECT count(*) FROM ledger WHERE client = ?1 AND n = ?2")
        .unwrap();
    let mut acked = 0;
    for ledger in ledgers {
        for line in Ledger::read(ledger) {
            let (client, n) = line.split_once(' ').unwrap();
            let found: i64 = count
                .query_row(rusqlite::params![client, n.parse::<i64>().unwrap()], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(found, 1, "acknowledged {line} is there {found} times");
            acked += 1;
        }
    }
    acked
}

#[test]
fn a_newer_version_takes_over_from_an_older_owner_losing_and_doubling_nothing() {
    let dir = Scratch::new("owner-handover");
    let db = dir.join("app.db");
    drop(Database::builder(&db).schema(SCHEMA).open().unwrap());
    let writer = |name: &str, version: &str, count: u64| {
        Child::build("writer")
            .env(LINGER_VAR, "1")
            .db(&db)
            .env(NAME_VAR, name)
            .env(COUNT_VAR, count.to_string())
            .env(LEDGER_VAR, dir.join(format!("ledger-{name}")))
            .env(VERSION_VAR, version)
    };
    // The older versions write until they are told to stop, after the newer one is done: the
    // handover happens while all of them write, however fast this machine runs.
    let old: Vec<Child> = (0..3)
        .map(|i| {
            writer(&format!("old{i}"), "1.0", 1000)
                .env(UNTIL_STOPPED_VAR, "1")
                .spawn()
        })
        .collect();
    for w in &old {
        w.expect_line("READY");
    }
    let old_owner = owner_pid(&db).unwrap();
    assert!(old.iter().any(|w| w.pid() == old_owner));
    std::thread::sleep(Duration::from_millis(200));
    let new = writer("new", "2.0", 1500).spawn();
    new.expect_line("READY");
    let line = new.expect_line("DONE ");
    assert_eq!(
        line, "DONE 0 true",
        "the newer version owns, no call failed"
    );
    assert_eq!(owner_pid(&db), Some(new.pid()));
    for mut w in old {
        w.close_stdin();
        let line = w.expect_line("DONE ");
        w.wait().assert_success();
        assert_eq!(
            line, "DONE 0 false",
            "the older versions are clients, no call failed"
        );
    }
    new.wait().assert_success();
    let ledgers: Vec<_> = ["old0", "old1", "old2", "new"]
        .iter()
        .map(|n| dir.join(format!("ledger-{n}")))
        .collect();
    let acked = check_exactly_once(&db, &ledgers);
    assert!(acked >= 3 * 1000 + 1500, "{acked} acknowledged writes");
    let rows: i64 = open_plain(&db)
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows, acked as i64,
        "a write in the file that no one acknowledged"
    );
}
