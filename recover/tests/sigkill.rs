//! Table rebuilds killed with SIGKILL at random moments, then repaired.
//!
//! [`sigkill_mid_rebuild_is_repaired`] makes a template database with [`ROWS`] rows in `files`
//! (default rollback journal) and, for a selection of the rebuilds of `common::rebuilds()`
//! (`temp_files` rename-first in both `legacy_alter_table` modes, and the create-first rebuilds
//! of Django, Alembic and sqlite-utils-style `new_files`), runs the rebuild in a child process,
//! statement by statement in autocommit mode as the tools do, and kills it with SIGKILL after a
//! random delay between 0 and 1.2 × the time an uninterrupted rebuild takes (measured once per
//! rebuild). Whatever the kill
//! left — a hot journal, a half-done statement rolled back, a leftover table, no `files` at all —
//! [`recover`] with `expect_table("files")` must succeed and leave nothing unrepaired, the
//! database must pass `common::verify` (every original row, old or new definition of `files`,
//! no leftover, references, view and trigger intact, `integrity_check` ok), and a second
//! `recover` must find nothing.
//!
//! The test counts the kills that landed while the child was still running and, of those, the
//! ones that left something to repair; it fails when either is zero, since it then tested nothing.
//!
//! Children are `litekeep_faults::harness` children (this test binary re-executed with a
//! role). Kill times come from the harness's seeded generator: the seed is printed, and
//! `LK_SEED=<n>` replays a run (the same fractions of the measured rebuild time).

mod common;

use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use common::{Order, Rebuild, fresh, rebuilds, verify};
use litekeep_faults::harness::{self, Child, Scratch, copy_db, remove_db};
use litekeep_recover::{Options, recover};
use rusqlite::Connection;

/// Which rebuild of `common::rebuilds()` the child runs.
const REBUILD_VAR: &str = "LK_SIGKILL_REBUILD";
/// Rows in `files`: enough for a rebuild to take a while, so that kills land inside it.
const ROWS: i64 = 200_000;
/// Kills per rebuild kind.
const KILLS: usize = 6;

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes [`sigkill_mid_rebuild_is_repaired`]
/// spawns. Without a role it returns at once and passes.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    assert_eq!(role, "rebuild", "unknown child role");
    let db = harness::db();
    let index: usize = std::env::var(REBUILD_VAR)
        .expect("LK_SIGKILL_REBUILD not set")
        .parse()
        .expect("LK_SIGKILL_REBUILD not a number");
    let rebuild = &rebuilds()[index];
    let (pragmas, statements) = rebuild.statements();
    let conn = Connection::open(&db).expect("child open");
    conn.execute_batch(&pragmas).expect("child pragmas");
    harness::say("START");
    for (i, sql) in statements.iter().enumerate() {
        // Autocommit: every statement is its own transaction, as the tools run them.
        if let Err(e) = conn.execute_batch(sql) {
            // Where the tool would have stopped too.
            harness::say(format!("REFUSED {i} {e}"));
            return;
        }
    }
    harness::say("DONE");
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// A child running rebuild `index` on `db`, once it says it starts.
fn rebuild_child(db: &Path, index: usize) -> Child {
    let kid = Child::build("rebuild")
        .db(db)
        .env(REBUILD_VAR, index.to_string())
        .spawn();
    kid.expect_line("START");
    kid
}

/// Copies `db` and its hot journal, if any, to `to` untouched (opening them would roll the
/// journal back), so that a failure can describe what the kill left.
fn snapshot(db: &Path, to: &Path) {
    remove_db(to);
    fs::copy(db, to).expect("snapshot database");
    let journal = format!("{}-journal", db.display());
    if Path::new(&journal).exists() {
        fs::copy(&journal, format!("{}-journal", to.display())).expect("snapshot journal");
    }
}

/// The tables of a snapshot with their row counts, and whether it had a hot journal.
fn describe(path: &Path) -> String {
    let journal = Path::new(&format!("{}-journal", path.display())).exists();
    let mut out = format!("journal present: {journal}; tables:");
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => return format!("{out} cannot open: {e}"),
    };
    let tables: Vec<String> = match harness::column(
        &conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
    ) {
        Ok(t) => t,
        Err(e) => return format!("{out} cannot list: {e}"),
    };
    for t in tables {
        let n: Result<i64, _> = conn.query_row(
            &format!("SELECT count(*) FROM {}", litekeep_recover::quote_ident(&t)),
            [],
            |r| r.get(0),
        );
        match n {
            Ok(n) => {
                let _ = write!(out, " {t}={n}");
            }
            Err(e) => {
                let _ = write!(out, " {t}=<{e}>");
            }
        }
    }
    out
}

/// Repairs `db` after a crash and runs every check. Returns whether a repair was applied.
/// `crash` is an untouched copy of what the crash left, described in failure messages.
fn repair_and_check(db: &Path, crash: &Path, want: &common::Expected, what: &str) -> bool {
    let opts = Options::default().expect_table("files");
    let report = recover(db, &opts)
        .unwrap_or_else(|e| panic!("{what}: recover failed: {e}; state: {}", describe(crash)));
    let left: Vec<String> = report.left().map(ToString::to_string).collect();
    assert!(
        left.is_empty(),
        "{what}: left unrepaired {left:?}; state: {}",
        describe(crash)
    );
    for f in &report.findings {
        eprintln!("  {what}: {f}");
    }
    if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| verify(db, want, what))) {
        eprintln!("{what}: verify failed; state: {}", describe(crash));
        panic::resume_unwind(e);
    }
    let again = recover(db, &opts).unwrap_or_else(|e| panic!("{what}: second recover: {e}"));
    assert!(
        again.is_clean(),
        "{what}: second run found {:?}; state: {}",
        again.findings,
        describe(crash)
    );
    report.applied
}

/// The index in `common::rebuilds()` of the rebuild with this temporary name, order and mode.
fn pick(all: &[Rebuild], temp: &str, order: Order, legacy: bool) -> usize {
    all.iter()
        .position(|r| r.temp == temp && r.order == order && r.legacy == legacy)
        .unwrap_or_else(|| panic!("no rebuild {temp} {order:?} legacy={legacy}"))
}

#[test]
fn sigkill_mid_rebuild_is_repaired() {
    let started = Instant::now();
    let dir = Scratch::new("recover-sigkill");
    let mut rng = harness::rng("sigkill test");
    let template = dir.join("template.db");
    let want = fresh(&template, ROWS);
    let db = dir.join("app.db");
    let crash = dir.join("crash.db");

    let all = rebuilds();
    let kinds = [
        pick(&all, "temp_files", Order::RenameFirst, true),
        pick(&all, "temp_files", Order::RenameFirst, false),
        pick(&all, "new__files", Order::CreateFirst, true),
        pick(&all, "_alembic_tmp_files", Order::CreateFirst, true),
        pick(&all, "new_files", Order::CreateFirst, true),
    ];

    let (mut kills, mut running, mut repaired) = (0, 0, 0);
    for index in kinds {
        let rebuild = &all[index];
        let kind = format!(
            "{} {:?} legacy={}",
            rebuild.temp, rebuild.order, rebuild.legacy
        );

        // One uninterrupted run to learn how long the rebuild takes here.
        copy_db(&template, &db);
        let kid = rebuild_child(&db, index);
        let t0 = Instant::now();
        kid.expect_line("DONE");
        let full = t0.elapsed();
        kid.wait().assert_success();
        snapshot(&db, &crash);
        repair_and_check(&db, &crash, &want, &format!("{kind}, uninterrupted"));

        let (mut kind_running, mut kind_repaired) = (0, 0);
        for round in 0..KILLS {
            copy_db(&template, &db);
            let kid = rebuild_child(&db, index);
            // A fraction of the measured duration, so that a replayed seed kills at the same
            // points of the rebuild even though the duration varies.
            let at = 1.2 * rng.f64();
            let delay = full.mul_f64(at);
            let killed = kid.kill_after(delay).killed();
            kills += 1;
            let what = format!(
                "{kind}, kill {round} after {delay:?} ({at:.3} of a full run, killed running: \
                 {killed})"
            );
            snapshot(&db, &crash);
            let applied = repair_and_check(&db, &crash, &want, &what);
            if killed {
                kind_running += 1;
                if applied {
                    kind_repaired += 1;
                }
            }
            eprintln!("{what}: repair applied: {applied}");
        }
        eprintln!(
            "{kind}: uninterrupted run {full:?}; {kind_running} of {KILLS} kills hit the running \
             child, {kind_repaired} of those needed a repair"
        );
        running += kind_running;
        repaired += kind_repaired;
    }
    eprintln!(
        "{kills} kills: {running} hit a running child, {repaired} of those needed a repair \
         ({:?} in all)",
        started.elapsed()
    );
    assert!(
        running > 0,
        "no kill landed while the child was running: the test did not test anything"
    );
    assert!(
        repaired > 0,
        "no kill left anything to repair: the test did not test anything"
    );
}
