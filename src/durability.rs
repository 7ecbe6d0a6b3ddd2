//! [`Durability`]: what a committed write survives.

/// What a commit that [`Database::write`](crate::Database::write) acknowledged survives, set with
/// [`Builder::durability`](crate::Builder::durability). Both modes survive a crash of the
/// process (SIGKILL, a panic, an abort): the kernel still writes what the process wrote. They
/// differ after a power cut or an OS crash, when writes that were never synced to the disk are
/// lost. The file is never corrupted in either mode.
///
/// | mode | `PRAGMA synchronous` (WAL) | after a power cut |
/// |---|---|---|
/// | [`Full`](Durability::Full) | `FULL`: the WAL is synced at every commit | every acknowledged commit is there |
/// | [`Normal`](Durability::Normal) (default) | `NORMAL`: the WAL is synced only at checkpoints | the last commits before the cut may be missing |
///
/// Measured on this project's 2-core VM (README, "Measured"): a single-row commit takes 17 µs
/// with `Normal` and 118 µs with `Full` (`examples/durability.rs`); in the stress runner's
/// workload `Full` commits about a third as many writes per second. Writers of different
/// processes meet in SQLite's busy handler, which sleeps and polls, and the longer each commit
/// holds the write lock the longer an unlucky writer starves: with `Full` and no write gate, two
/// writer processes beside a migration saw a writer wait out its whole 10 s busy budget in 2 of
/// 4 runs of `tests/multiprocess.rs`; with the write gate
/// ([`Builder::write_gate`](crate::Builder::write_gate), on by default) 0 of 4. The
/// default stays `Normal`, which the stress runner's ledger proves against SIGKILL; choose
/// `Full` where a power cut must not take an acknowledged write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: an acknowledged commit survives a power cut.
    Full,
    /// `synchronous = NORMAL`: an acknowledged commit survives a crash of the process; a power
    /// cut can take the last commits (never the file's consistency). The default.
    #[default]
    Normal,
}

impl Durability {
    /// The `PRAGMA synchronous` value it sets.
    pub fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}
