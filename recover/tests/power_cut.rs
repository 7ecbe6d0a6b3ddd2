//! `recover` through the `litekeep-faults` VFS: power cuts and failed file operations in the
//! middle of a repair.
//!
//! The leftovers are made the way the tools make them (`common::rebuilds`, statement by
//! statement, stopped part-way):
//!
//! - *original missing*: `files` renamed to `temp_files`, nothing else (the repair renames it
//!   back);
//! - *original empty*: then the new, empty `files` created (the repair copies every row into it
//!   and drops `temp_files`);
//! - *copy done*: Django's `new__files` created and filled beside `files` (the repair drops it).
//!
//! [`a_power_cut_anywhere_in_a_repair_loses_no_row`]: a child (the VFS its default) runs
//! `recover`; a counting run says how many syncs, truncates and writes it makes; then the power
//! is cut at every sync and truncate and at a sample of writes (a seeded random subset of the
//! unsynced writes kept, one torn). The parent reopens with the plain VFS (`integrity_check`
//! ok), runs `recover` again, and checks with `common::verify`: every row there exactly once,
//! `files` old or new, no leftover, references, view and triggers intact; and a third `recover`
//! finds nothing.
//!
//! [`a_failed_file_operation_fails_the_repair_cleanly`]: the Nth read, write, sync or truncate
//! of a repair fails (in a child looping in-process with the VFS as its default): the error
//! names the file and the operation, the file is as it was (same dump) or repaired, and the
//! same `recover` succeeds once the fault clears.
//!
//! CI: 5,000 rows, every sync and truncate point once, 8 writes per state; `LK_CAMPAIGN=1`:
//! 50,000 rows, both journal modes for every state, three ways of cutting each point, 40
//! writes, every failure point. `LK_SEED=<n>` replays the random choices.

mod common;

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Expected, fresh, rebuilds, verify};
use litekeep_faults::harness::{
    self, Child, Exit, Scratch, copy_db, dump, integrity, open_plain, with_faults,
};
use litekeep_faults::{Config, Op};
use litekeep_recover::{Options, recover};

const TEMPLATE_VAR: &str = "LK_POWER_CUT_TEMPLATE";
const STATE_VAR: &str = "LK_POWER_CUT_STATE";
const ROWS_VAR: &str = "LK_POWER_CUT_ROWS";

fn options() -> Options {
    Options::default()
        .expect_table("files")
        .lock_timeout(Duration::from_secs(60))
}

/// A leftover: which rebuild of `common::rebuilds()`, stopped after how many statements.
#[derive(Debug, Clone, Copy)]
struct State {
    name: &'static str,
    rebuild: usize,
    stop: usize,
}

const STATES: [State; 3] = [
    State {
        name: "original-missing",
        rebuild: 0,
        stop: 1,
    },
    State {
        name: "original-empty",
        rebuild: 0,
        stop: 2,
    },
    State {
        name: "copy-done",
        rebuild: 2,
        stop: 2,
    },
];

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    match role.as_str() {
        "recover" => {
            litekeep_faults::init_from_env().expect("LK_FAULTS");
            let db = harness::db();
            harness::say("START");
            match recover(&db, &options()) {
                Ok(report) => {
                    harness::say_counters("END");
                    harness::say(format!("DONE applied={}", report.applied));
                }
                Err(e) => harness::say(format!("ERROR {e}")),
            }
        }
        "recover-then-cut" => {
            litekeep_faults::init_from_env().expect("LK_FAULTS");
            let report = recover(harness::db(), &options()).expect("recover");
            harness::say(format!("DONE applied={}", report.applied));
            litekeep_faults::cut_power();
        }
        "io-errors" => child_io_errors(),
        "two-leftovers" => child_two_leftovers(),
        other => panic!("unknown role {other}"),
    }
}

/// Fails the Nth read, write, sync and truncate of a repair, for a sample of N; says one line
/// per error (`NAMED`/`BARE`), panics on anything worse.
fn child_io_errors() {
    litekeep_faults::register_as_default().expect("register the VFS as the default");
    let _serial = litekeep_faults::exclusive();
    let db = harness::db();
    let template = harness::env_path(TEMPLATE_VAR);
    let rows: i64 = std::env::var(ROWS_VAR).unwrap().parse().unwrap();
    let state = std::env::var(STATE_VAR).unwrap();
    let mut rng = harness::rng("io-errors");
    let before = dump(&open_plain(&template)).unwrap();
    let want = want_rows(rows);
    copy_db(&template, &db);
    let (done, count) = with_faults(Config::new(), || recover(&db, &options()));
    assert!(done.expect("the repair without faults").applied);
    harness::say(format!("COUNT {}", harness::counters_line(&count)));
    let (mut failed, mut absorbed, mut unreached, mut unchanged) = (0, 0, 0, 0);
    for op in [Op::Read, Op::Write, Op::Sync, Op::Truncate] {
        let all: Vec<u64> = (1..=count.get(op)).collect();
        for n in harness::sample(&all, 48, &mut rng) {
            copy_db(&template, &db);
            let (result, c) =
                with_faults(Config::new().fail_once(op, n), || recover(&db, &options()));
            let what = format!("{state} {op} #{n} of {}", count.get(op));
            let conn = open_plain(&db);
            assert_eq!(integrity(&conn), "ok", "{what}");
            let as_it_was = dump(&conn).unwrap() == before;
            drop(conn);
            match result {
                Ok(_) if c.faults == 0 => unreached += 1,
                Ok(report) => {
                    assert!(report.applied, "{what}: Ok but nothing applied");
                    verify(&db, &want, &what);
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
                    if as_it_was {
                        unchanged += 1;
                    } else {
                        // Not as it was: then the repair must have gone through whole.
                        verify(&db, &want, &what);
                        harness::say(format!("CHANGED {what}: {msg}"));
                    }
                }
            }
            let again = recover(&db, &options())
                .unwrap_or_else(|e| panic!("{what}: again after the fault cleared: {e}"));
            assert!(
                again.left().next().is_none(),
                "{what}: {:?}",
                again.findings
            );
            verify(&db, &want, &what);
        }
    }
    harness::say(format!(
        "TALLY failed={failed} (file as it was: {unchanged}) absorbed={absorbed} unreached={unreached}"
    ));
}

/// The smallest case of a failure [`a_failed_write_while_recreating_an_index_changes_nothing`]
/// found: `a` with an index, renamed to `temp_a` and replaced by an empty new `a` (original
/// empty: copy the rows, drop `temp_a`, recreate `a_v` on `a`), and a second leftover,
/// `zother_new_0123456789ab`, all of whose rows are in `zother` (drop it). 300 rows are enough
/// for `CREATE INDEX a_v` to write to the rollback journal (it reuses pages `temp_a` freed).
const TWO_LEFTOVERS: &str = "
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
CREATE INDEX a_v ON a(v);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO a SELECT i, 'value ' || i FROM n;
PRAGMA foreign_keys = OFF;
PRAGMA legacy_alter_table = ON;
ALTER TABLE a RENAME TO temp_a;
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, w TEXT);
CREATE TABLE zother (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO zother VALUES (1, 'x'), (2, 'y');
CREATE TABLE zother_new_0123456789ab (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO zother_new_0123456789ab SELECT * FROM zother;
";

/// Fails each write of the repair of [`TWO_LEFTOVERS`] in turn: an error must leave the file
/// as it was and name the failed operation. Says `BROKEN …` for each that does not.
fn child_two_leftovers() {
    litekeep_faults::register_as_default().expect("register the VFS as the default");
    let _serial = litekeep_faults::exclusive();
    let db = harness::db();
    let template = harness::env_path(TEMPLATE_VAR);
    let opts = Options::default().expect_table("a");
    let before = dump(&open_plain(&template)).unwrap();
    copy_db(&template, &db);
    let (done, count) = with_faults(Config::new(), || recover(&db, &opts));
    assert_eq!(done.expect("the repair without faults").findings.len(), 2);
    harness::say(format!("COUNT {}", harness::counters_line(&count)));
    for n in 1..=count.write {
        copy_db(&template, &db);
        let (result, _) = with_faults(Config::new().fail_once(Op::Write, n), || {
            recover(&db, &opts)
        });
        let Err(e) = result else { continue };
        let conn = open_plain(&db);
        assert_eq!(integrity(&conn), "ok", "write #{n}");
        let tables: Vec<String> = harness::column(
            &conn,
            "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
        )
        .unwrap();
        let as_it_was = dump(&conn).unwrap() == before;
        let named = e.to_string().contains(harness::op_words(Op::Write));
        if !as_it_was || !named {
            harness::say(format!(
                "BROKEN write #{n} of {}: as it was: {as_it_was}, tables now {tables:?}; the \
                 error ({}): {e}",
                count.write,
                format!("{e:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap_or_default()
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// The rows `common::fresh` makes, as `common::verify` wants them.
fn want_rows(rows: i64) -> Expected {
    let dir = Scratch::new(&format!("recover-want-{rows}"));
    fresh(&dir.join("want.db"), rows)
}

/// The template of `state` in journal `mode` with `rows` rows, checkpointed; and its rows.
fn template(dir: &Path, state: State, mode: &str, rows: i64) -> (PathBuf, Expected) {
    let path = dir.join(format!("template-{}-{mode}.db", state.name));
    let want = fresh(&path, rows);
    let conn = open_plain(&path);
    let got: String = conn
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .unwrap();
    assert!(got.eq_ignore_ascii_case(mode));
    let (pragmas, statements) = rebuilds()[state.rebuild].statements();
    conn.execute_batch(&pragmas).unwrap();
    for sql in &statements[..state.stop] {
        conn.execute_batch(sql).unwrap();
    }
    if mode.eq_ignore_ascii_case("wal") {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    drop(conn);
    let pending = recover(&path, &options().dry_run(true)).unwrap();
    assert!(
        pending.findings.iter().any(|f| f.action.changes_anything()),
        "{state:?}: nothing to repair"
    );
    (path, want)
}

#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    cut: usize,
    unreached: usize,
    /// The child's repair had committed: the parent's `recover` found nothing.
    child_repaired: usize,
    /// The child's repair was rolled back: the parent's `recover` did it.
    parent_repaired: usize,
    failures: Vec<String>,
}

fn check_cut(db: &Path, want: &Expected, exit: &Exit, tally: &mut Tally) -> Result<(), String> {
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
    let report = recover(db, &options()).map_err(|e| format!("recover after the cut: {e}"))?;
    if let Some(left) = report.left().next() {
        return Err(format!("recover left {left}"));
    }
    if report.applied {
        tally.parent_repaired += 1;
    } else {
        tally.child_repaired += 1;
    }
    catch_unwind(AssertUnwindSafe(|| verify(db, want, "after the cut")))
        .map_err(|p| panic_text(&p))?;
    let again = recover(db, &options()).map_err(|e| format!("third recover: {e}"))?;
    if !again.is_clean() {
        return Err(format!("third recover found {:?}", again.findings));
    }
    Ok(())
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Every sync and truncate point, and a sample of writes, of the repair of `state` in `mode`.
fn every_point(dir: &Path, state: State, mode: &str, rows: i64, rng: &mut harness::Rng) -> Tally {
    let (template, want) = template(dir, state, mode, rows);
    let db = dir.join(format!("{}-{mode}.db", state.name));
    copy_db(&template, &db);
    let count = Child::build("recover").db(&db).faults("default").run();
    count.assert_success();
    assert!(
        count.find("DONE applied=true").is_some(),
        "{}",
        count.describe()
    );
    verify(&db, &want, "the counting run");
    let c = count.counters("END");
    eprintln!(
        "{} {mode}: a repair of {rows} rows makes {} syncs, {} truncates, {} writes ({:?})",
        state.name, c.sync, c.truncate, c.write, count.elapsed
    );
    let points = harness::cut_points(&c, harness::choose(8, 40), rng);
    let mut tally = Tally::default();
    for faults in &points {
        copy_db(&template, &db);
        let exit = Child::build("recover").db(&db).faults(faults).run();
        tally.tried += 1;
        if let Err(e) = check_cut(&db, &want, &exit, &mut tally) {
            tally.failures.push(format!(
                "{} {mode}: {e}\n  child: {}",
                state.name,
                exit.describe()
            ));
        }
    }
    eprintln!(
        "{} {mode}: {} points tried, {} cut ({} never reached): the child's repair survived {}, \
         rolled back and redone {}; rows lost: {}",
        state.name,
        tally.tried,
        tally.cut,
        tally.unreached,
        tally.child_repaired,
        tally.parent_repaired,
        tally.failures.iter().filter(|f| f.contains("rows")).count()
    );
    tally
}

#[test]
fn a_power_cut_anywhere_in_a_repair_loses_no_row() {
    let started = Instant::now();
    let rows = harness::choose(5_000, 50_000);
    let mut rng = harness::rng("recover power cuts");
    let dir = Scratch::new("recover-power-cut");
    let mut runs: Vec<(State, &str)> = STATES.iter().map(|s| (*s, "DELETE")).collect();
    if harness::campaign() {
        runs.extend(STATES.iter().map(|s| (*s, "WAL")));
    } else {
        runs.push((STATES[1], "WAL"));
    }
    let mut failures = Vec::new();
    let (mut tried, mut cut) = (0, 0);
    for (state, mode) in runs {
        let tally = every_point(&dir, state, mode, rows, &mut rng);
        tried += tally.tried;
        cut += tally.cut;
        failures.extend(tally.failures);
    }
    eprintln!(
        "recover: {tried} points tried, {cut} cut, {} failures ({:?})",
        failures.len(),
        started.elapsed()
    );
    assert!(cut > 0, "no cut happened");
    assert!(
        failures.is_empty(),
        "{} cuts left a bad state:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A repair that returned is durable: a power cut right after it (no unsynced write kept, no
/// deletion whose directory was not synced: in rollback-journal mode the commit is the
/// journal's deletion) leaves the repaired file, which a second `recover` finds clean.
#[test]
fn a_power_cut_right_after_a_repair_keeps_it() {
    let dir = Scratch::new("recover-then-cut");
    for mode in ["DELETE", "WAL"] {
        let (template, want) = template(&dir, STATES[1], mode, 1_000);
        let db = dir.join(format!("then-cut-{mode}.db"));
        copy_db(&template, &db);
        let exit = Child::build("recover-then-cut")
            .db(&db)
            .faults("default;crash=manual;keep=none")
            .run();
        assert!(exit.crashed(), "{mode}: {}", exit.describe());
        assert_eq!(
            exit.lines,
            ["DONE applied=true"],
            "{mode}: {}",
            exit.describe()
        );
        assert_eq!(integrity(&open_plain(&db)), "ok", "{mode}");
        let again = recover(&db, &options().dry_run(true)).unwrap();
        assert!(
            again.is_clean(),
            "{mode}: the acknowledged repair was undone by the cut: {:?}; {}",
            again.findings,
            exit.describe()
        );
        verify(&db, &want, "after the cut");
    }
}

#[test]
fn a_failed_file_operation_fails_the_repair_cleanly() {
    let rows = 500;
    let dir = Scratch::new("recover-io-errors");
    let mut bare = String::new();
    let modes: &[&str] = if harness::campaign() {
        &["DELETE", "WAL"]
    } else {
        &["DELETE"]
    };
    for &mode in modes {
        for state in STATES {
            let (template, _) = template(&dir, state, mode, rows);
            let seed = harness::seed();
            let exit = Child::build("io-errors")
                .db(dir.join("app.db"))
                .env(TEMPLATE_VAR, &template)
                .env(ROWS_VAR, rows.to_string())
                .env(STATE_VAR, format!("{} {mode}", state.name))
                .env(harness::SEED_VAR, seed.to_string())
                .bound(Duration::from_secs(1800))
                .run();
            assert!(
                exit.success(),
                "{} {mode} (LK_SEED={seed}): {}",
                state.name,
                exit.describe()
            );
            for line in exit.all("BARE ") {
                let _ = writeln!(bare, "  {line}");
            }
            for line in exit.all("CHANGED ") {
                eprintln!("an error after the repair committed: {line}");
            }
            eprintln!(
                "{} {mode}: [open read write sync truncate lock …] of a repair: {}; {}",
                state.name,
                exit.find("COUNT ").unwrap_or_default(),
                exit.find("TALLY ").unwrap_or_default()
            );
        }
    }
    assert!(
        bare.is_empty(),
        "errors that do not name the file and the failed operation:\n{bare}"
    );
}

/// A failed write while the repair recreates an index on the kept table (`refs.rs`, step 4 of
/// `shuffle`) must fail the repair as an I/O error and change nothing, like every other failed
/// write. See [`TWO_LEFTOVERS`].
#[test]
fn a_failed_write_while_recreating_an_index_changes_nothing() {
    let dir = Scratch::new("recover-two-leftovers");
    let template = dir.join("template.db");
    open_plain(&template).execute_batch(TWO_LEFTOVERS).unwrap();
    let exit = Child::build("two-leftovers")
        .db(dir.join("app.db"))
        .env(TEMPLATE_VAR, &template)
        .run();
    exit.assert_success();
    let broken: Vec<&str> = exit.all("BROKEN ").collect();
    eprintln!(
        "two leftovers: [open read write sync truncate lock …] of the repair: {}; {} of its \
         writes failed it badly",
        exit.find("COUNT ").unwrap_or_default(),
        broken.len()
    );
    assert!(
        broken.is_empty(),
        "a failed write left the repair half done, in autocommit mode:\n  {}",
        broken.join("\n  ")
    );
}
