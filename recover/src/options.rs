//! [`Options`] of a scan and a repair.

use std::time::Duration;

/// How to scan and repair.
///
/// ```
/// use std::time::Duration;
/// use litekeep_recover::Options;
/// let opts = Options::default()
///     .dry_run(true)
///     .expect_table("files")
///     .lock_timeout(Duration::from_secs(5));
/// assert!(opts.dry_run);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Report what would be done; do not touch the file.
    pub dry_run: bool,
    /// How long to wait for the repair lock (and for SQLite's write lock).
    pub lock_timeout: Duration,
    /// The label other processes see while this repair holds the lock.
    pub label: String,
    /// Tables the application expects. A table named like a leftover for one of these (say
    /// `temp_files` while `files` is missing) is repaired even when its name is one people
    /// also give ordinary tables (`temp_X`, `new_X`).
    pub expected_tables: Vec<String>,
    /// Leftover tables confirmed by the user: treated as leftovers whatever the evidence.
    pub confirmed: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            lock_timeout: Duration::from_secs(30),
            label: "litekeep recover".to_owned(),
            expected_tables: Vec::new(),
            confirmed: Vec::new(),
        }
    }
}

impl Options {
    /// Sets [`Options::dry_run`]. Example: [`Options`].
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets [`Options::lock_timeout`]. Example: [`Options`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Sets [`Options::label`]. Example: [`Options`].
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Adds a table to [`Options::expected_tables`]. Example: [`Options`].
    pub fn expect_table(mut self, table: impl Into<String>) -> Self {
        self.expected_tables.push(table.into());
        self
    }

    /// Adds a table to [`Options::confirmed`] (`litekeep recover --confirm TABLE`): the user's
    /// word that it is a leftover, where its name alone is no evidence.
    ///
    /// ```
    /// let opts = litekeep_recover::Options::default().confirm("temp_cache");
    /// assert_eq!(opts.confirmed, ["temp_cache"]);
    /// ```
    pub fn confirm(mut self, leftover: impl Into<String>) -> Self {
        self.confirmed.push(leftover.into());
        self
    }

    pub(crate) fn expects(&self, table: &str) -> bool {
        self.expected_tables
            .iter()
            .any(|t| t.eq_ignore_ascii_case(table))
    }

    pub(crate) fn confirms(&self, leftover: &str) -> bool {
        self.confirmed
            .iter()
            .any(|t| t.eq_ignore_ascii_case(leftover))
    }
}
