//! What the crash tests of every crate try: [`cut_points`], the power cuts for an operation
//! whose counting run said how many file operations it makes, and [`op_words`], how an I/O
//! error's message names the operation that failed.

use crate::{Config, Counters, Keep, Op};

/// The power cuts to try for an operation whose fault-free counting run made `counted` file
/// operations: one at every sync and every truncate, each keeping a seeded random subset of
/// the writes not yet synced and tearing one (a [`campaign`](super::campaign) also cuts each of
/// them keeping all of them, torn, and keeping none: every file as at its last sync), then
/// `writes` cuts at random writes (`rng` picks which, and the subset's seed). Every point makes
/// the VFS the child's default.
///
/// ```
/// use litekeep_faults::{Counters, harness};
/// let counted = Counters { sync: 3, truncate: 1, write: 40, ..Counters::default() };
/// let points = harness::cut_points(&counted, 5, &mut harness::Rng::with_seed(7));
/// assert_eq!(points.len(), if harness::campaign() { 3 * 4 + 5 } else { 4 + 5 });
/// ```
pub fn cut_points(counted: &Counters, writes: usize, rng: &mut fastrand::Rng) -> Vec<Config> {
    let ways = |n: u64| {
        let base = Config::new().default_vfs(true).seed(n).tear(true);
        let mut ways = vec![base.clone()];
        if super::campaign() {
            ways.push(base.keep(Keep::All));
            ways.push(Config::new().default_vfs(true).keep(Keep::None));
        }
        ways
    };
    let mut points = Vec::new();
    for (op, total) in [(Op::Sync, counted.sync), (Op::Truncate, counted.truncate)] {
        for n in 1..=total {
            points.extend(ways(n).into_iter().map(|w| w.crash_at(op, n)));
        }
    }
    for _ in 0..writes {
        let n = rng.u64(1..=counted.write.max(1));
        points.push(
            Config::new()
                .default_vfs(true)
                .crash_at(Op::Write, n)
                .seed(rng.u64(..1000))
                .tear(true),
        );
    }
    points
}

/// The words an I/O error's message uses for the failed operation `op` (those of
/// `litekeep_recover::what_failed`): a test checks that an error names what failed with them.
pub fn op_words(op: Op) -> &'static str {
    match op {
        Op::Read => "reading the file",
        Op::Write => "writing the file",
        Op::Sync => "syncing the file to the disk",
        Op::Truncate => "truncating the file",
        Op::Lock => "locking the file",
        Op::Open => "open",
    }
}
