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
/// `Full` makes every commit wait for an `fsync` of the WAL, so it commits fewer transactions a
/// second and holds SQLite's write lock longer; writers of other processes then wait longer for
/// it, which the write gate ([`Builder::write_gate`](crate::Builder::write_gate), on by
/// default) keeps in order. `examples/durability.rs` measures the ratio (docs/measured.md in
/// the repository). The default stays `Normal`, which the stress runner's ledger proves against
/// SIGKILL; choose `Full` where a power cut must not take an acknowledged write.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// use litekeep::{Database, Durability};
/// let db = Database::builder(tmp.path().join("ledger.db"))
///     .schema("CREATE TABLE payments (id INTEGER PRIMARY KEY, cents INTEGER NOT NULL);")
///     .durability(Durability::Full)
///     .open()?;
/// assert_eq!(Durability::Full.pragma(), "FULL");
/// # Ok::<(), litekeep::Error>(())
/// ```
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
    ///
    /// ```
    /// assert_eq!(litekeep::Durability::default().pragma(), "NORMAL");
    /// ```
    pub fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}
