//! `litekeep::Database` through the `litekeep-faults` VFS: power cuts during the first open's
//! setup and under a stream of acknowledged commits, and failed file operations during setup.
//!
//! - [`a_power_cut_anywhere_in_the_first_open_leaves_a_file_that_opens`]: a child (the VFS its
//!   default) opens with a schema: a fresh file (WAL switch, schema creation), and an old
//!   rollback-journal file at v1 with a leftover of an interrupted rebuild (`recover`, the WAL
//!   switch, a rebuild to v2). The power is cut at every sync and truncate of a counting run and
//!   at a sample of writes; the parent opens the file with `Database::open` (plain VFS), and
//!   checks `integrity_check`, WAL, the schema, every row, no leftover.
//! - [`an_acknowledged_commit_survives_a_power_cut_with_full_durability`] and
//!   [`a_power_cut_takes_only_the_last_commits_with_normal_durability`]: a child commits
//!   single-row transactions and appends each id to a ledger (not on the VFS) once `write`
//!   returned; the power is cut at a seeded random write, sync or truncate. With
//!   `Durability::Full` every id in the ledger must be in the file; with `Normal` the file is
//!   sound and the missing ids are the ledger's last ones. The losses per cut are printed.
//! - [`a_power_cut_in_a_background_checkpoint_loses_no_acknowledged_commit`] and its `Normal`
//!   twin: the same writer, the cut drawn among the operations of the `Database`'s checkpoint
//!   thread alone (`thread=litekeep-checkpoint`): its copying of the WAL into the database.
//! - [`a_checkpoint_thread_whose_every_read_write_or_sync_fails_loses_nothing_and_the_wal_stays_bounded`]:
//!   every read, write or sync of that thread fails; the commits go on, all of them there, and
//!   the WAL stays bounded by the commits' own inline checkpoints.
//! - [`a_failed_file_operation_fails_the_open_cleanly`]: the Nth read, write, sync or truncate
//!   of the upgrade's setup fails (a child looping in-process with the VFS as its default):
//!   `Database::open` returns an error naming the file and the operation, the file is sound with
//!   every row, and the same open succeeds once the fault clears.
//!
//! CI runs a sample; `LK_CAMPAIGN=1` tries every point with three ways of cutting it, 50,000
//! rows, 60 cuts per durability and every failure point. `LK_SEED=<n>` replays.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litekeep::migrate::Schema;
use litekeep::{Database, Durability};
use litekeep_faults::harness::{
    self, Child, Exit, Ledger, Scratch, copy_db, foreign_key_check, integrity, journal_mode,
    open_plain, with_faults,
};
use litekeep_faults::{Config, Keep, Op};

const TEMPLATE_VAR: &str = "LK_POWER_CUT_TEMPLATE";
const ROWS_VAR: &str = "LK_POWER_CUT_ROWS";
const LEDGER_VAR: &str = "LK_POWER_CUT_LEDGER";
const COMMITS_VAR: &str = "LK_POWER_CUT_COMMITS";

/// The old program's schema.
const V1: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n INTEGER NOT NULL);
CREATE INDEX events_who ON events(who);
";

/// The new one: `n` becomes TEXT (a rebuild), a table is added.
const V2: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n TEXT NOT NULL);
CREATE INDEX events_who ON events(who);
CREATE TABLE notes (id INTEGER PRIMARY KEY, event_id INTEGER REFERENCES events(id), body TEXT);
";

/// The ledger writer's schema.
const LEDGER_SCHEMA: &str = "CREATE TABLE acks (id INTEGER PRIMARY KEY, body TEXT NOT NULL);";

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    match role.as_str() {
        "open" => {
            litekeep_faults::init_from_env().expect("LK_FAULTS");
            harness::say("START");
            match Database::builder(harness::db()).schema(V2).open() {
                Ok(db) => {
                    drop(db);
                    harness::say_counters("END");
                    harness::say("DONE");
                }
                Err(e) => harness::say(format!("ERROR {e}")),
            }
        }
        "writer:full" => child_writer(Durability::Full),
        "writer:normal" => child_writer(Durability::Normal),
        "io-errors" => child_io_errors(),
        other => panic!("unknown role {other}"),
    }
}

/// Commits rows 1, 2, … one per transaction, appending each id to the ledger once `write`
/// returned.
fn child_writer(durability: Durability) {
    litekeep_faults::init_from_env().expect("LK_FAULTS");
    let commits: i64 = std::env::var(COMMITS_VAR).unwrap().parse().unwrap();
    let mut ledger = Ledger::create(&harness::env_path(LEDGER_VAR)).expect("ledger");
    let db = Database::builder(harness::db())
        .schema(LEDGER_SCHEMA)
        .durability(durability)
        .open()
        .expect("open");
    harness::say("READY");
    let wal = PathBuf::from(format!("{}-wal", harness::db().display()));
    let mut wal_max = 0;
    for id in 1..=commits {
        db.write(|tx| {
            tx.execute(
                "INSERT INTO acks (id, body) VALUES (?1, ?2)",
                (id, body(id)),
            )
        })
        .unwrap_or_else(|e| panic!("commit {id}: {e}"));
        ledger.append(id).expect("ledger");
        if id % 50 == 0 {
            wal_max = wal_max.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
    }
    harness::say(format!("WAL_MAX {wal_max}"));
    drop(db);
    harness::say_counters("END");
    harness::say("DONE");
}

fn body(id: i64) -> String {
    format!("acknowledged write {id} {}", "x".repeat((id % 97) as usize))
}

/// Fails the Nth read, write, sync and truncate of the upgrade's setup, for a sample of N;
/// says one line per error (`NAMED`/`BARE`), panics on anything worse.
fn child_io_errors() {
    litekeep_faults::register_as_default().expect("register the VFS as the default");
    let _serial = litekeep_faults::exclusive();
    let db = harness::db();
    let template = harness::env_path(TEMPLATE_VAR);
    let rows: i64 = std::env::var(ROWS_VAR).unwrap().parse().unwrap();
    let mut rng = harness::rng("io-errors");
    let open = || Database::builder(&db).schema(V2).open().map(drop);
    copy_db(&template, &db);
    let (done, count) = with_faults(Config::new(), open);
    done.expect("the setup without faults");
    assert_eq!(check_upgraded(&db, rows), Ok(()));
    harness::say(format!("COUNT {}", harness::counters_line(&count)));
    let (mut failed, mut absorbed, mut unreached) = (0, 0, 0);
    for op in [Op::Read, Op::Write, Op::Sync, Op::Truncate] {
        let all: Vec<u64> = (1..=count.get(op)).collect();
        for n in harness::sample(&all, 48, &mut rng) {
            copy_db(&template, &db);
            let (result, c) = with_faults(Config::new().fail_once(op, n), open);
            let what = format!("{op} #{n} of {}", count.get(op));
            if let Err(e) = check_sound(&db, rows) {
                panic!("{what} ({result:?}): {e}");
            }
            match result {
                Ok(()) if c.faults == 0 => unreached += 1,
                Ok(()) => {
                    absorbed += 1;
                    harness::say(format!("ABSORBED {what}"));
                }
                Err(e) => {
                    failed += 1;
                    let msg = e.to_string();
                    let named = msg.contains(&db.display().to_string())
                        && msg.contains(harness::op_words(op));
                    let variant = format!("{e:?}");
                    let variant = variant.split([' ', '(']).next().unwrap_or_default();
                    let tag = if named { "NAMED" } else { "BARE" };
                    harness::say(format!("{tag} {what} [{variant}]: {msg}"));
                }
            }
            open().unwrap_or_else(|e| panic!("{what}: again after the fault cleared: {e}"));
            if let Err(e) = check_upgraded(&db, rows) {
                panic!("{what}: after the second open: {e}");
            }
        }
    }
    harness::say(format!(
        "TALLY failed={failed} absorbed={absorbed} unreached={unreached}"
    ));
}

// ---------------------------------------------------------------------------------------------
// The data, and what every state must hold.

/// Row `i` of `events`: who, n as text.
fn event(i: i64) -> (String, String) {
    (format!("w{}", i % 17), (i * 3).to_string())
}

/// The old file: v1 in rollback-journal mode with `rows` events, and `new__events`, a copy of
/// `events` that Django's rebuild made and never swapped in (every row of it in `events`).
fn old_file(dir: &Path, rows: i64) -> PathBuf {
    let path = dir.join(format!("old-{rows}.db"));
    harness::remove_db(&path);
    let conn = open_plain(&path);
    conn.execute_batch(V1).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO events (id, who, n) SELECT i, 'w' || (i % 17), i * 3 FROM n;
         COMMIT;
         CREATE TABLE new__events (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n INTEGER NOT NULL);
         INSERT INTO new__events SELECT * FROM events;"
    ))
    .unwrap();
    assert_eq!(journal_mode(&conn), "delete");
    drop(conn);
    path
}

/// Sound whatever step of the setup it reached: `integrity_check` ok, no foreign key
/// violation, every event there (in `events`, whichever its definition).
fn check_sound(db: &Path, rows: i64) -> Result<(), String> {
    let conn = open_plain(db);
    let verdict = integrity(&conn);
    if verdict != "ok" {
        return Err(format!("integrity_check: {verdict}"));
    }
    let fk = foreign_key_check(&conn);
    if !fk.is_empty() {
        return Err(format!("foreign_key_check: {fk:?}"));
    }
    if rows == 0 {
        return Ok(());
    }
    let err = |e: rusqlite::Error| e.to_string();
    let mut stmt = conn
        .prepare("SELECT id, who, CAST(n AS TEXT) FROM events ORDER BY id")
        .map_err(err)?;
    let mut found = stmt.query([]).map_err(err)?;
    let mut want = 1;
    while let Some(r) = found.next().map_err(err)? {
        let id: i64 = r.get(0).map_err(err)?;
        if id != want {
            return Err(format!("events: row {want} missing (next is {id})"));
        }
        let got = (
            r.get::<_, String>(1).map_err(err)?,
            r.get::<_, String>(2).map_err(err)?,
        );
        if got != event(id) {
            return Err(format!("events: row {id} is {got:?}"));
        }
        want += 1;
    }
    if want != rows + 1 {
        return Err(format!("events: rows {want}..={rows} missing"));
    }
    Ok(())
}

/// Sound, and set up: WAL, the schema exactly v2, no leftover.
fn check_upgraded(db: &Path, rows: i64) -> Result<(), String> {
    check_sound(db, rows)?;
    let conn = open_plain(db);
    let mode = journal_mode(&conn);
    if mode != "wal" {
        return Err(format!("journal mode {mode}"));
    }
    let now = Schema::read(&conn)
        .map_err(|e| e.to_string())?
        .fingerprint();
    if now != Schema::from_sql(V2).unwrap().fingerprint() {
        let sql = litekeep::migrate::export_sql(&conn).unwrap_or_default();
        return Err(format!("the schema is not v2:\n{sql}"));
    }
    let leftovers: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%new%' OR name LIKE 'temp%'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if leftovers != 0 {
        return Err(format!("{leftovers} leftover tables"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent side: the first open.

#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    cut: usize,
    unreached: usize,
    /// The child's setup had finished: the parent's open found the file ready.
    done_before: usize,
    failures: Vec<String>,
}

fn check_open_cut(db: &Path, rows: i64, exit: &Exit, tally: &mut Tally) -> Result<(), String> {
    if exit.crashed() {
        tally.cut += 1;
    } else if exit.success() && exit.find("DONE").is_some() {
        tally.unreached += 1;
    } else {
        return Err("the child neither finished nor was cut".to_owned());
    }
    let first = integrity(&open_plain(db));
    if first != "ok" {
        return Err(format!("integrity_check right after the cut: {first}"));
    }
    if check_upgraded(db, rows).is_ok() {
        tally.done_before += 1;
    }
    let handle = Database::builder(db)
        .schema(V2)
        .open()
        .map_err(|e| format!("Database::open after the cut: {e}"))?;
    drop(handle);
    check_upgraded(db, rows)
}

/// Every sync and truncate point of the first open of `start` (and a sample of its writes).
fn every_point_of_the_first_open(dir: &Path, name: &str, start: Option<&Path>, rows: i64) -> Tally {
    let mut rng = harness::rng(&format!("first open, {name}"));
    let db = dir.join(format!("{name}.db"));
    let fresh = |db: &Path| match start {
        Some(template) => copy_db(template, db),
        None => harness::remove_db(db),
    };
    fresh(&db);
    let count = Child::build("open").db(&db).faults("default").run();
    count.assert_success();
    let c = count.counters("END");
    assert_eq!(
        check_upgraded(&db, rows),
        Ok(()),
        "{name}: the counting run"
    );
    eprintln!(
        "{name}: the first open makes {} syncs, {} truncates, {} writes ({:?})",
        c.sync, c.truncate, c.write, count.elapsed
    );
    let points = harness::cut_points(&c, harness::choose(6, 40), &mut rng);
    let mut tally = Tally::default();
    for faults in &points {
        fresh(&db);
        let exit = Child::build("open").db(&db).faults(faults).run();
        tally.tried += 1;
        if let Err(e) = check_open_cut(&db, rows, &exit, &mut tally) {
            tally
                .failures
                .push(format!("{name}: {e}\n  child: {}", exit.describe()));
        }
    }
    eprintln!(
        "{name}: {} points tried, {} cut ({} never reached); setup already done at the cut: {}; \
         {} failures",
        tally.tried,
        tally.cut,
        tally.unreached,
        tally.done_before,
        tally.failures.len()
    );
    tally
}

#[test]
fn a_power_cut_anywhere_in_the_first_open_leaves_a_file_that_opens() {
    let started = Instant::now();
    let dir = Scratch::new("facade-first-open");
    let rows = harness::choose(5_000, 50_000);
    let old = old_file(&dir, rows);
    let mut failures = Vec::new();
    let mut cut = 0;
    for (name, start, rows) in [("fresh", None, 0), ("upgrade", Some(old.as_path()), rows)] {
        let tally = every_point_of_the_first_open(&dir, name, start, rows);
        cut += tally.cut;
        failures.extend(tally.failures);
    }
    eprintln!(
        "first open: {} failures ({:?})",
        failures.len(),
        started.elapsed()
    );
    assert!(cut > 0, "no cut happened");
    assert!(
        failures.is_empty(),
        "{} cuts left a file that does not open right:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The parent side: acknowledged commits.

/// What the cuts of one durability took.
#[derive(Debug, Default)]
struct Losses {
    cuts: usize,
    /// Runs that ended before the point drawn (cuts on one thread only).
    missed: usize,
    acknowledged: usize,
    /// Acknowledged commits missing, per cut.
    lost: Vec<usize>,
    failures: Vec<String>,
}

impl Losses {
    fn summary(&self) -> String {
        let max = self.lost.iter().max().copied().unwrap_or(0);
        let total: usize = self.lost.iter().sum();
        let mean = total as f64 / self.lost.len().max(1) as f64;
        let with_loss = self.lost.iter().filter(|&&l| l > 0).count();
        format!(
            "{} cuts ({} runs ended before their point), {} acknowledged commits; lost {total} in \
             all, in {with_loss} cuts: max {max} per cut, mean {mean:.1}",
            self.cuts, self.missed, self.acknowledged
        )
    }
}

/// Checks the file a writer's cut left against its ledger; gives how many acknowledged commits
/// are missing. Rows must be a prefix 1..=p of the commits, whole.
fn check_ledger(db: &Path, ledger: &Path) -> Result<(usize, usize), String> {
    let conn = open_plain(db);
    let verdict = integrity(&conn);
    if verdict != "ok" {
        return Err(format!("integrity_check: {verdict}"));
    }
    let acked = Ledger::read_ids(ledger);
    if acked.iter().enumerate().any(|(i, &id)| id != i as i64 + 1) {
        return Err(format!("the ledger is not 1, 2, 3, …: {acked:?}"));
    }
    let has_table: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'acks'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    let mut present = Vec::new();
    if has_table == 1 {
        let mut stmt = conn
            .prepare("SELECT id, body FROM acks ORDER BY id")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| e.to_string())?;
        for row in rows {
            let (id, text) = row.map_err(|e| e.to_string())?;
            if text != body(id) {
                return Err(format!("row {id} damaged: {text:?}"));
            }
            present.push(id);
        }
    }
    // The commits are a sequence and the WAL is replayed up to its first bad frame: what is
    // there must be 1..=p. p may be one past the ledger: the commit in flight when the power
    // went can have reached the disk whole without its ledger line.
    if present
        .iter()
        .enumerate()
        .any(|(i, &id)| id != i as i64 + 1)
    {
        return Err(format!(
            "the rows are not a prefix of the commits: {present:?}"
        ));
    }
    let p = present.len();
    if p > acked.len() + 1 {
        return Err(format!(
            "{p} rows but only {} acknowledged (and one in flight)",
            acked.len()
        ));
    }
    // Missing acknowledged ids are exactly the ledger's last ones.
    Ok((acked.len(), acked.len().saturating_sub(p)))
}

/// The thread on which a `Database` copies the WAL back into the database.
const CHECKPOINT_THREAD: &str = "litekeep-checkpoint";

/// Cuts a writer with `durability` at seeded random points — of any thread, or of the thread
/// `on` alone — and gives what the cuts took.
fn cut_writers(durability: Durability, on: Option<&str>) -> Losses {
    let name = format!("{durability:?}").to_lowercase();
    let name = match on {
        Some(thread) => format!("{name}, on {thread}"),
        None => name,
    };
    let started = Instant::now();
    let dir = Scratch::new(&format!("facade-ledger-{}", name.replace([',', ' '], "")));
    let db = dir.join("acks.db");
    let ledger = dir.join("ledger.txt");
    let template = dir.join("template.db");
    drop(
        Database::builder(&template)
            .schema(LEDGER_SCHEMA)
            .open()
            .unwrap(),
    );
    // Normal syncs the WAL only at checkpoints (every 1000 pages): enough commits for cuts on
    // both sides of one. Full syncs each commit, which costs more. Cuts on the checkpoint
    // thread need its rounds: several thousand frames.
    let commits = match (durability, on) {
        (_, Some(_)) => harness::choose(4_000, 8_000),
        (Durability::Normal, None) => harness::choose(2_000, 3_000),
        _ => harness::choose(400, 3_000),
    };
    let mut rng = harness::rng(&format!("ledger, {name}"));
    let role = format!("writer:{durability:?}").to_lowercase();
    let config = || match on {
        Some(thread) => Config::new().default_vfs(true).on_thread(thread),
        None => Config::new().default_vfs(true),
    };
    let writer = |faults: &Config| {
        Child::build(&role)
            .db(&db)
            .env(LEDGER_VAR, &ledger)
            .env(COMMITS_VAR, commits.to_string())
            .faults(faults)
            .run()
    };

    copy_db(&template, &db);
    let count = writer(&config());
    count.assert_success();
    let c = count.counters("END");
    eprintln!(
        "{name}: {commits} commits make {} syncs, {} writes, {} truncates ({:?})",
        c.sync, c.write, c.truncate, count.elapsed
    );
    assert!(
        c.sync > 0 && c.write > 0,
        "{name}: nothing to cut ({c:?}): the thread never copied the WAL back"
    );
    let cuts = harness::choose(10, 60);
    let mut losses = Losses::default();
    for i in 0..cuts {
        let seed = rng.u64(..u64::from(u32::MAX));
        // Mostly a seeded random subset of the unsynced writes kept, one torn; every fifth
        // cut keeps none of them (the worst a disk can do).
        let keep = if i % 5 == 4 { Keep::None } else { Keep::Random };
        let faults = config()
            .crash_random(c.mutations())
            .seed(seed)
            .keep(keep)
            .tear(keep == Keep::Random);
        copy_db(&template, &db);
        let exit = writer(&faults);
        if !exit.crashed() && on.is_some() && exit.success() {
            // A thread's share of the work varies from run to run: this run's thread made
            // fewer operations than the counting run's, and the point drawn was past them.
            losses.missed += 1;
            continue;
        }
        if !exit.crashed() {
            losses
                .failures
                .push(format!("not cut: {}", exit.describe()));
            continue;
        }
        losses.cuts += 1;
        match check_ledger(&db, &ledger) {
            Ok((acked, lost)) => {
                losses.acknowledged += acked;
                losses.lost.push(lost);
                if lost > 0 && durability == Durability::Full {
                    losses.failures.push(format!(
                        "{lost} of {acked} acknowledged commits lost: {}",
                        exit.describe()
                    ));
                }
            }
            Err(e) => losses
                .failures
                .push(format!("{e}\n  child: {}", exit.describe())),
        }
        // The file opens with the library, too.
        if let Err(e) = Database::builder(&db).schema(LEDGER_SCHEMA).open() {
            losses
                .failures
                .push(format!("Database::open after the cut: {e}"));
        }
    }
    eprintln!("{name}: {} ({:?})", losses.summary(), started.elapsed());
    losses
}

#[test]
fn an_acknowledged_commit_survives_a_power_cut_with_full_durability() {
    let losses = cut_writers(Durability::Full, None);
    assert!(losses.cuts > 0);
    assert!(
        losses.failures.is_empty(),
        "with Durability::Full:\n{}",
        losses.failures.join("\n")
    );
}

#[test]
fn a_power_cut_takes_only_the_last_commits_with_normal_durability() {
    let losses = cut_writers(Durability::Normal, None);
    assert!(losses.cuts > 0);
    assert!(
        losses.failures.is_empty(),
        "with Durability::Normal:\n{}",
        losses.failures.join("\n")
    );
}

/// The cuts land in the checkpoint thread's copying of the WAL into the database (its writes
/// and syncs of the database file, its WAL sync): `Full` loses no acknowledged commit.
#[test]
fn a_power_cut_in_a_background_checkpoint_loses_no_acknowledged_commit() {
    let losses = cut_writers(Durability::Full, Some(CHECKPOINT_THREAD));
    assert!(losses.cuts > losses.missed, "{}", losses.summary());
    assert!(
        losses.failures.is_empty(),
        "with Durability::Full, cut on the checkpoint thread:\n{}",
        losses.failures.join("\n")
    );
}

/// The same with `Normal`, whose WAL is synced by the checkpoints: the file is sound and only
/// the last commits can be missing.
#[test]
fn a_power_cut_in_a_background_checkpoint_with_normal_durability_takes_only_the_last_commits() {
    let losses = cut_writers(Durability::Normal, Some(CHECKPOINT_THREAD));
    assert!(losses.cuts > losses.missed, "{}", losses.summary());
    assert!(
        losses.failures.is_empty(),
        "with Durability::Normal, cut on the checkpoint thread:\n{}",
        losses.failures.join("\n")
    );
}

/// Every read, every write, or every sync of the checkpoint thread fails: each commit still succeeds (a
/// checkpoint is not part of one), every acknowledged row is there and sound, and the WAL stays
/// bounded, copied back by the commits' own inline checkpoints.
#[test]
fn a_checkpoint_thread_whose_every_read_write_or_sync_fails_loses_nothing_and_the_wal_stays_bounded()
 {
    let commits = harness::choose(6_000, 20_000);
    for op in [Op::Write, Op::Sync, Op::Read] {
        let dir = Scratch::new(&format!("facade-checkpoint-{op}"));
        let db = dir.join("acks.db");
        let ledger = dir.join("ledger.txt");
        drop(Database::builder(&db).schema(LEDGER_SCHEMA).open().unwrap());
        let faults = Config::new()
            .default_vfs(true)
            .on_thread(CHECKPOINT_THREAD)
            .fail_from(op, 1);
        let exit = Child::build("writer:normal")
            .db(&db)
            .env(LEDGER_VAR, &ledger)
            .env(COMMITS_VAR, commits.to_string())
            .faults(&faults)
            .run();
        exit.assert_success();
        let c = exit.counters("END");
        assert!(
            c.faults > 0,
            "every {op} of the checkpoint thread failing: no fault was injected ({c:?})"
        );
        let (acked, lost) = check_ledger(&db, &ledger)
            .unwrap_or_else(|e| panic!("{op}s of the checkpoint thread failing: {e}"));
        assert_eq!((acked, lost), (commits, 0), "{op}: {}", exit.describe());
        // Past 2,000 frames the commit copies inline, and again each 1,000 after: a WAL of
        // 4 KiB pages stays well under 4,000 frames.
        let wal_max = exit.field("WAL_MAX ")[0];
        assert!(
            wal_max < 4_000 * 4_120,
            "{op}s failing: the WAL grew to {wal_max} bytes"
        );
        eprintln!(
            "every {op} of the checkpoint thread failing ({} faults): {commits} commits, all \
             there; WAL at most {wal_max} bytes",
            c.faults
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The parent side: failed file operations.

#[test]
fn a_failed_file_operation_fails_the_open_cleanly() {
    let dir = Scratch::new("facade-io-errors");
    let rows = 500;
    let template = old_file(&dir, rows);
    let seed = harness::seed();
    let exit = Child::build("io-errors")
        .db(dir.join("app.db"))
        .env(TEMPLATE_VAR, &template)
        .env(ROWS_VAR, rows.to_string())
        .env(harness::SEED_VAR, seed.to_string())
        .bound(Duration::from_secs(1800))
        .run();
    assert!(exit.success(), "LK_SEED={seed}: {}", exit.describe());
    let mut bare = String::new();
    for line in exit.all("BARE ") {
        let _ = writeln!(bare, "  {line}");
    }
    eprintln!(
        "the upgrade's setup: [open read write sync truncate lock …] {}; {}; {} errors named the \
         file and the operation",
        exit.find("COUNT ").unwrap_or_default(),
        exit.find("TALLY ").unwrap_or_default(),
        exit.all("NAMED ").count()
    );
    assert!(
        bare.is_empty(),
        "errors that do not name the file and the failed operation:\n{bare}"
    );
}
