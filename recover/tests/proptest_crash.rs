//! Property test of [`litekeep_recover::recover`] over random tables and random interruption
//! points: it either repairs losslessly, or reports what it leaves and leaves the file byte for
//! byte as it was.
//!
//! The case and the property are the `recover_crash` fuzz campaign's
//! ([`litekeep_fuzz_cases::CrashCase`], [`litekeep_fuzz_cases::recover_crash_outcome`]), where
//! they are documented; this test draws random bytes and decodes them with the same
//! `Arbitrary` generator. Each case builds a random table `t` (`items`, `Files` or
//! `log_entries`: an `id INTEGER PRIMARY KEY` and 1–4 columns of random names, declared types
//! and nullability, 0–40 rows of values of any storage class), optionally with a child table
//! whose foreign key names `t` (and a trigger whose body names `t`), an index, a view and a
//! trigger on `t`. It then runs a random prefix of one tool's rebuild of `t` to a random new
//! definition (a column added, a column's type changed, or both; every old column kept), each
//! statement in autocommit mode as the tools do, optionally writes up to three rows into
//! whatever table is called `t` after the crash, and calls `recover` with `t` expected. Then:
//!
//! - whenever nothing was applied, the file is byte for byte what it was before the call;
//! - when nothing was left: `integrity_check` is ok, no leftover remains, `t` has its old or its
//!   new definition and holds every row it held before the crash and every row written after it,
//!   with equal values in every old column; `foreign_key_check` finds nothing new; the view works;
//!   a second `recover` finds nothing;
//! - when something was left, every row is still in `t` or in a leftover.
//!
//! 64 cases by default; `PROPTEST_CASES` overrides it (the `proptest!` macro reads it). A tally of
//! the repairs the cases needed is printed at the end (`-- --nocapture` to see it). A failing case
//! is reported with the SQL that reproduces it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use litekeep_fuzz_cases::{CrashCase, decode, recover_crash_outcome};
use proptest::prelude::*;
use proptest::test_runner::contextualize_config;

/// Counts of what the cases needed, printed after the last case.
static TALLY: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());
static DONE: AtomicU32 = AtomicU32::new(0);

fn count(what: impl Into<String>) {
    *TALLY.lock().unwrap().entry(what.into()).or_default() += 1;
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES, when set, wins over the default of 64.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        // The default (4 × cases) stops long before a case with 40 rows is minimal.
        max_shrink_iters: 4096,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("lk-recover-{}-proptest", std::process::id()))
}

/// Runs one case (panicking, with the repro SQL, when the property fails) and tallies it.
fn run(case: &CrashCase) {
    let outcome = recover_crash_outcome(case, &scratch());
    count(format!("rebuild: {}", outcome.naming));
    if outcome.written_after > 0 {
        count("rows written after the crash");
    }
    for action in &outcome.actions {
        count(format!("action: {action}"));
    }
    count(
        match (
            outcome.actions.is_empty(),
            outcome.actions.contains(&"leave"),
        ) {
            (true, _) => "clean",
            (false, true) if outcome.applied => "left one, repaired another",
            (false, true) => "left, file unchanged",
            (false, false) => "repaired",
        },
    );
}

fn finish() {
    let total = contextualize_config(config()).cases;
    if DONE.fetch_add(1, Ordering::SeqCst) + 1 == total {
        let tally = TALLY.lock().unwrap();
        eprintln!("proptest_crash: {total} cases");
        for (what, n) in tally.iter() {
            eprintln!("  {n:4}  {what}");
        }
        let _ = std::fs::remove_dir_all(scratch());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn recover_repairs_losslessly_or_changes_nothing(
        bytes in prop::collection::vec(any::<u8>(), 0..4096)
    ) {
        if let Some(case) = decode::<CrashCase>(&bytes) {
            run(&case);
        }
        finish();
    }
}
