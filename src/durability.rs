//! [`Durability`]: what a committed write survives.

/// What a commit that [`Database::write`](crate::Database::write) acknowledged survives, set with
/// [`Builder::durability`](crate::Builder::durability). Both modes survive a crash of the
/// process (SIGKILL, a panic, an abort): the kernel still writes what the process wrote. They
/// differ after a power cut or an OS crash, when writes that were never synced to the disk are
/// lost. The file is never corrupted in either mode.
///
/// | mode | `PRAGMA synchronous` (WAL) | after a power cut |
/// |---|---|---|
/// | [`Full`](Durability::Full) (default) | `FULL`: the WAL is synced at every commit | every acknowledged commit is there |
/// | [`Normal`](Durability::Normal) | `NORMAL`: the WAL is synced only at checkpoints | the last commits before the cut may be missing |
///
/// `Normal` saves one `fsync` per commit; what that is worth depends on the disk (see the
/// README's "Measured" section for this project's numbers). Migrations and repairs
/// (`litekeep migrate`, `litekeep recover`, and the setup `Database::open` does) always run
/// with SQLite's default `synchronous = FULL`, whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: an acknowledged commit survives a power cut.
    #[default]
    Full,
    /// `synchronous = NORMAL`: an acknowledged commit survives a crash of the process; a power
    /// cut can take the last commits (never the file's consistency).
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
