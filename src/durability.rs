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
/// `Normal` saves one `fsync` per commit: on this project's machine a commit takes 17 µs
/// instead of 118 µs (`examples/durability.rs`). That is also why it is the default for now:
/// writers of different processes meet in SQLite's busy handler, which sleeps and polls, and the
/// longer each commit holds the write lock, the longer an unlucky writer starves — with `Full`,
/// two writer processes beside a migration saw a writer wait out its whole 10 s busy budget in
/// 2 of 4 runs of `tests/multiprocess.rs`, never with `Normal`. Choose `Full` where a power cut
/// must not take an acknowledged write, and keep the writers few or batched. Migrations and repairs
/// (`litekeep migrate`, `litekeep recover`, and the setup `Database::open` does) always run
/// with SQLite's default `synchronous = FULL`, whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: an acknowledged commit survives a power cut.
    Full,
    /// `synchronous = NORMAL`: an acknowledged commit survives a crash of the process; a power
    /// cut can take the last commits (never the file's consistency).
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
