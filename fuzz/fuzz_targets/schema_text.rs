//! Any bytes as a desired schema: parse, plan, apply; never a panic, never a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| litekeep_fuzz_cases::schema_text(data));
