//! litekeep-stress: the seeds' workload (indexers, embedders, searchers, a migrator, cold
//! openers and a crash injector as real processes), naive vs litekeep.
//!
//! Not built yet (issue 7): it says so and exits with status 2 instead of pretending to run.

fn main() -> std::process::ExitCode {
    eprintln!(
        "litekeep-stress: not built yet (issue 7). What works today is the lock crate: \
         run `cargo test --workspace` and `cargo bench -p litekeep-lock`."
    );
    std::process::ExitCode::from(2)
}
