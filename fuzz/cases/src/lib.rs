//! The generators and properties of litekeep's fuzzing campaigns.
//!
//! Each campaign is a structured input with an [`arbitrary::Arbitrary`] implementation and a
//! property: a plain function that panics when the property is violated. The cargo-fuzz targets
//! in `fuzz/fuzz_targets/` and the proptest twins in `tests/fuzz_twins.rs` both decode their
//! bytes with [`decode`] and call the very same function, so a crash found by one replays in
//! the other.
//!
//! | campaign | input | property |
//! |---|---|---|
//! | [`diff_apply()`] | [`DiffCase`]: a schema, edits that make a second one, rows | `diff` + `apply` reach the desired schema keeping every row, or change nothing |
//! | [`recover_crash()`] | [`CrashCase`]: a table, one tool's rebuild interrupted, writes after | `recover` loses no row, and changes nothing when it leaves a finding |
//! | [`schema_text()`] | any bytes as desired-schema DDL | parsing, planning and applying never panic (nor hang) |
//! | [`vtab_apply()`] | [`VtabCase`]: two versions of a search schema (FTS5 with and without external content, R*Tree, AUTOINCREMENT, a trigger on a view), rows | `diff` + `apply` keep searches, R*Tree rows and sequences, or change nothing |
//!
//! Every property also has an `…_outcome` twin that returns what happened instead of
//! discarding it, for tallies and for choosing seed inputs.

#![deny(missing_docs)]

mod diff_apply;
mod recover_crash;
mod schema_text;
mod values;
mod vtab_apply;

pub use diff_apply::{DiffCase, DiffOutcome, diff_apply, diff_apply_outcome};
pub use recover_crash::{CrashCase, CrashOutcome, recover_crash, recover_crash_outcome};
pub use schema_text::{SchemaTextOutcome, schema_text, schema_text_outcome};
pub use vtab_apply::{VtabCase, VtabOutcome, vtab_apply, vtab_apply_outcome};

use arbitrary::{Arbitrary, Unstructured};

/// Decodes fuzzer bytes into `T` exactly as `libfuzzer_sys::fuzz_target!` does: inputs shorter
/// than `T`'s minimum size and inputs `T` rejects give `None` (the fuzz target skips them).
///
/// ```
/// let case: Option<litekeep_fuzz_cases::DiffCase> = litekeep_fuzz_cases::decode(&[7; 64]);
/// assert!(case.is_some());
/// ```
pub fn decode<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> Option<T> {
    if bytes.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}
