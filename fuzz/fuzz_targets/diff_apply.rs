//! `diff` + `apply` between a random schema and a random edit of it, over random rows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use litekeep_fuzz_cases::DiffCase;

fuzz_target!(|case: DiffCase| litekeep_fuzz_cases::diff_apply(&case));
