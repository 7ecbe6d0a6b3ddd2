//! Two versions of a search schema (FTS5, R*Tree, AUTOINCREMENT, a trigger on a view) → diff →
//! apply → searches, R*Tree rows and sequences kept, or nothing changed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use litekeep_fuzz_cases::VtabCase;

fuzz_target!(|case: VtabCase| litekeep_fuzz_cases::vtab_apply(&case));
