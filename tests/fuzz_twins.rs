//! The proptest twins of the fuzz targets in `fuzz/`, and their regression corpus.
//!
//! Each twin draws random bytes, decodes them exactly as the cargo-fuzz target does
//! (`litekeep_fuzz_cases::decode`, the same `Arbitrary` generators) and checks the very same
//! property function, so `cargo test` runs every campaign a little without nightly or libFuzzer.
//! 64 cases each by default; `PROPTEST_CASES` overrides it. A failure shrinks the bytes and
//! panics with the SQL that reproduces it.
//!
//! `corpus_*` runs every file of `fuzz/corpus/<target>/` through its property: the seed inputs,
//! and every crash once fixed (see `fuzz/README.md`).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use litekeep_fuzz_cases::{CrashCase, DiffCase, decode, diff_apply, recover_crash, schema_text};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES, when set, wins over the default of 64.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// This process's scratch directory for `recover_crash` (tests run in threads of one process,
/// and only the `recover_crash` tests use it, one case at a time each); removed when the
/// process exits.
fn scratch(what: &str) -> PathBuf {
    litekeep_faults::harness::process_scratch(&format!("twin-{what}"))
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4096)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn twin_diff_apply(bytes in bytes()) {
        if let Some(case) = decode::<DiffCase>(&bytes) {
            diff_apply(&case);
        }
    }

    #[test]
    fn twin_recover_crash(bytes in bytes()) {
        if let Some(case) = decode::<CrashCase>(&bytes) {
            recover_crash(&case, &scratch("recover-crash"));
        }
    }

    #[test]
    fn twin_schema_text(bytes in bytes()) {
        schema_text(&bytes);
    }
}

/// Runs `check` on every file of `fuzz/corpus/<target>/`, naming the file that fails.
fn corpus(target: &str, check: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    files.retain(|f| f.is_file());
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{} fails: {what}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs fail:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn corpus_diff_apply() {
    corpus("diff_apply", |bytes| {
        if let Some(case) = decode::<DiffCase>(bytes) {
            diff_apply(&case);
        }
    });
}

#[test]
fn corpus_recover_crash() {
    let dir = scratch("corpus-recover-crash");
    corpus("recover_crash", |bytes| {
        if let Some(case) = decode::<CrashCase>(bytes) {
            recover_crash(&case, &dir);
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corpus_schema_text() {
    corpus("schema_text", schema_text);
}
