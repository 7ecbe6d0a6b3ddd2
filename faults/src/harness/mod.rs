//! The multi-process test harness every crash test of the workspace shares: a child process is
//! the test binary itself, re-executed with a role in its environment.
//!
//! - **Children** ([`Child`], [`Spawn`]): [`Child::spawn`] re-executes
//!   `std::env::current_exe()` with `--exact child_process_entry --nocapture --test-threads=1`
//!   and [`ROLE_VAR`] naming the role. The test binary holds a `#[test] fn
//!   child_process_entry()` that returns at once when [`role`] is `None` (an ordinary test run),
//!   and otherwise does what the role says. [`LK_FAULTS`](crate::ENV_VAR) is passed only when
//!   asked for ([`Spawn::faults`]), never inherited. [`Child::program`] runs another program
//!   (`flock(1)`, a shell) the same way, in a process group that a kill ends whole.
//! - **Marked lines**: a child [`say`]s `@@lk:<text>` lines on stdout (the test harness prints
//!   its own text there too); the parent reads them with [`Child::line`] /
//!   [`Child::expect_line`], each bounded by a timeout, and gets them all in [`Exit::lines`].
//!   [`say_counters`] / [`Exit::counters`] carry the VFS's [`Counters`](crate::Counters) across.
//! - **Endings** ([`Exit`]): [`Child::wait`] (closes stdin, waits, bounded), [`Child::kill`]
//!   (SIGKILL now), [`Child::kill_at_random`] (SIGKILL after a delay drawn from a seeded
//!   [`fastrand::Rng`]); [`Exit::crashed`] (the VFS cut the power: [`EXIT_CRASHED`]),
//!   [`Exit::killed`] (SIGKILL reached it while it ran), [`Exit::success`].
//! - **Replay and campaigns**: [`rng`] seeds from [`SEED_VAR`] (`LK_SEED`) or the clock and
//!   prints the seed; [`campaign`] (`LK_CAMPAIGN=1`) says to try every point instead of CI's
//!   sample, and [`sample`] / [`choose`] pick accordingly.
//! - **In-process faults**: [`with_faults`] runs a call under a configuration and clears it.
//! - **Files** ([`Scratch`], [`remove_db`], [`copy_db`]) and **checks** ([`open_plain`] through
//!   SQLite's unix VFS, [`open_faulty`] through ours, [`integrity`], [`foreign_key_check`],
//!   [`journal_mode`], [`dump`] for "as it was" comparisons, [`code`]); a [`Ledger`] of
//!   acknowledged writes that survives the child; a real full disk, [`Tmpfs`].
//! - **Other users** ([`Spawn::as_user`], [`is_root`]): a child that file permissions apply to.
//! - **I/O errors below the VFS** ([`fail_syscalls`], [`fail_syscalls_in_every_thread`]): a
//!   child whose `fallocate`, `pwrite`, `pread`, `fsync` or `fdatasync` fail with an error (a
//!   seccomp filter), for files SQLite does not open (a lock file, a DuckDB file).
//! - **Machine noise** ([`steal_seconds`]): the CPU time a VM's hypervisor took, for benchmarks
//!   to print beside their numbers.
//!
//! ```no_run
//! use litekeep_faults::harness::{self, Child, Scratch};
//! use litekeep_faults::{Config, Op};
//!
//! /// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
//! #[test]
//! fn child_process_entry() {
//!     let Some(role) = harness::role() else { return };
//!     litekeep_faults::init_from_env().expect("LK_FAULTS");
//!     match role.as_str() {
//!         "insert" => {
//!             let conn = rusqlite::Connection::open(harness::db()).unwrap();
//!             conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x)").unwrap();
//!             harness::say("READY");
//!             conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
//!             harness::say_counters("AFTER");
//!         }
//!         other => panic!("unknown role {other}"),
//!     }
//! }
//!
//! #[test]
//! fn a_cut_at_every_sync_of_an_insert() {
//!     let dir = Scratch::new("insert");
//!     let db = dir.join("t.db");
//!     // Count: the VFS as the default, no fault.
//!     let count = Child::build("insert").db(&db).faults("default").run();
//!     let syncs = count.assert_success().counters("AFTER").sync;
//!     for n in 1..=syncs {
//!         harness::remove_db(&db);
//!         let faults = Config::new().default_vfs(true).crash_at(Op::Sync, n).seed(n).tear(true);
//!         let exit = Child::build("insert").db(&db).faults(&faults).run();
//!         assert!(exit.crashed(), "{}", exit.describe());
//!         let conn = harness::open_plain(&db);
//!         assert_eq!(harness::integrity(&conn), "ok", "{}", exit.describe());
//!     }
//! }
//! ```

mod check;
mod child;
mod ledger;
mod points;
mod scratch;
mod steal;
mod syscalls;
mod tmpfs;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use check::{
    code, column, dump, foreign_key_check, integrity, journal_mode, open_faulty, open_plain,
};
pub use child::{
    BOUND, Child, DB_VAR, ENTRY, Exit, MARK, ROLE_VAR, Spawn, counters_line, db, env_path, is_root,
    parse_counters, role, runnable_copy, running, say, say_counters, stop_on_stdin_close,
    until_stdin_closes, wait_for_go,
};
pub use ledger::Ledger;
pub use points::{cut_points, op_words};
pub use scratch::{Scratch, copy_db, process_scratch, remove_at_exit, remove_db};
pub use steal::steal_seconds;
pub use syscalls::{fail_syscalls, fail_syscalls_in_every_thread};
pub use tmpfs::Tmpfs;

pub use crate::EXIT_CRASHED;
/// The generator [`rng`] gives (`fastrand`'s), re-exported for tests that keep one.
pub use fastrand::Rng;

/// The variable that replays a run's random choices: the seed [`rng`] printed.
pub const SEED_VAR: &str = "LK_SEED";

/// The variable that turns a CI sample into a campaign over every point: `LK_CAMPAIGN=1`.
pub const CAMPAIGN_VAR: &str = "LK_CAMPAIGN";

/// Whether this run is a campaign (`LK_CAMPAIGN` set to anything but `0`, `false` or blank):
/// tests then try every point, with the full data sizes, instead of CI's sample.
pub fn campaign() -> bool {
    std::env::var(CAMPAIGN_VAR).is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// `ci` in an ordinary run, `campaign` in a [`campaign`] run.
pub fn choose<T>(ci: T, campaign: T) -> T {
    if self::campaign() { campaign } else { ci }
}

/// The seed [`rng`] uses: [`SEED_VAR`] if set, else one from the clock.
pub fn seed() -> u64 {
    std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// A seeded generator for a test's random choices (kill delays, which points to sample, fault
/// seeds). Prints `what: LK_SEED=<n>` to stderr so that a failing run can be replayed.
pub fn rng(what: &str) -> Rng {
    let seed = seed();
    eprintln!("{what}: {SEED_VAR}={seed} replays this run's random choices");
    fastrand::Rng::with_seed(seed)
}

/// Which of `points` to try: all of them in a [`campaign`] or when there are at most `ci`;
/// otherwise `ci` of them (the first and the last among them), chosen with `rng`, in order.
pub fn sample<T: Clone>(points: &[T], ci: usize, rng: &mut Rng) -> Vec<T> {
    if campaign() || points.len() <= ci {
        return points.to_vec();
    }
    if ci == 0 {
        return Vec::new();
    }
    let mut chosen = std::collections::BTreeSet::from([0, points.len() - 1]);
    while chosen.len() < ci {
        chosen.insert(rng.usize(..points.len()));
    }
    chosen
        .into_iter()
        .take(ci)
        .map(|i| points[i].clone())
        .collect()
}

/// A delay in `[0, within)`, drawn from `rng` (a fraction of `within`, so that a replayed seed
/// lands at the same point of a workload whose duration varies).
pub fn random_delay(rng: &mut Rng, within: Duration) -> Duration {
    within.mul_f64(rng.f64())
}

/// Runs `call` with `config` in force in this process, then configures no faults again; gives
/// what it returned and the counters of its run. Hold [`exclusive`](crate::exclusive) around
/// it (the configuration is process-wide).
pub fn with_faults<T>(config: crate::Config, call: impl FnOnce() -> T) -> (T, crate::Counters) {
    crate::configure(config);
    let out = call();
    let counters = crate::counters();
    crate::configure(crate::Config::new());
    (out, counters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_cross_the_protocol_whole() {
        let c = crate::Counters {
            open: 1,
            read: 2,
            write: 3,
            sync: 4,
            truncate: 5,
            lock: 6,
            faults: 7,
            disk_full: 8,
            growth: 9,
            held: 10,
        };
        assert_eq!(parse_counters(&counters_line(&c)), Some(c));
        assert_eq!(parse_counters("1 2 3"), None);
    }

    #[test]
    fn a_sample_keeps_the_ends_and_the_order() {
        let points: Vec<u32> = (1..=100).collect();
        let mut rng = Rng::with_seed(7);
        let chosen = sample(&points, 10, &mut rng);
        if campaign() {
            assert_eq!(chosen, points);
        } else {
            assert_eq!(chosen.len(), 10);
            assert_eq!((chosen[0], chosen[9]), (1, 100));
            assert!(chosen.windows(2).all(|w| w[0] < w[1]), "{chosen:?}");
        }
        assert_eq!(sample(&points[..3], 10, &mut rng), [1, 2, 3]);
    }

    #[test]
    fn a_ledger_ignores_a_torn_last_line() {
        let dir = Scratch::new("harness-ledger");
        let path = dir.join("ledger");
        let mut ledger = Ledger::create(&path).unwrap();
        ledger.append(1).unwrap();
        ledger.append("2 two").unwrap();
        drop(ledger);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"3"))
            .unwrap();
        assert_eq!(Ledger::read_ids(&path), [1, 2]);
        assert_eq!(Ledger::read(&dir.join("missing")), Vec::<String>::new());
    }
}
