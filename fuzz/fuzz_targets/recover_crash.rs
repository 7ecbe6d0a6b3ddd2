//! `recover` after one tool's table rebuild interrupted at a random statement.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use litekeep_fuzz_cases::CrashCase;

/// This process's scratch directory (libFuzzer's `-fork`/`-jobs` workers each get their own).
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("litekeep-fuzz-recover-{}", std::process::id()))
});

fuzz_target!(|case: CrashCase| litekeep_fuzz_cases::recover_crash(&case, &DIR));
