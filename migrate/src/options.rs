//! [`Options`] of a migration and the rename hints it carries.

use std::time::Duration;

use crate::error::MigrateError;

/// A rename hint: without one, a renamed table or column looks like one dropped and one added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rename {
    /// Table `from` is now called `to`.
    Table {
        /// The current name.
        from: String,
        /// The desired name.
        to: String,
    },
    /// Column `from` of `table` (its desired name) is now called `to`.
    Column {
        /// The table, by its desired name.
        table: String,
        /// The current column name.
        from: String,
        /// The desired column name.
        to: String,
    },
    /// Index `from` is now called `to`. SQLite cannot rename an index, so it is dropped and
    /// created under the new name; the hint matters with [`Options::keep_undeclared`], where
    /// the old index would otherwise be kept beside the new one.
    Index {
        /// The current name.
        from: String,
        /// The desired name.
        to: String,
    },
}

impl std::fmt::Display for Rename {
    /// As [`Rename::parse`] reads it: `old=new`, `table.old=table.new`, `index:old=new`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rename::Table { from, to } => write!(f, "{from}={to}"),
            Rename::Column { table, from, to } => write!(f, "{table}.{from}={table}.{to}"),
            Rename::Index { from, to } => write!(f, "index:{from}={to}"),
        }
    }
}

impl Rename {
    /// Parses `old=new` (a table), `table.old=table.new` (a column of `table`, named by its
    /// desired name when the table is renamed too) or `index:old=new` (an index).
    ///
    /// # Errors
    /// [`MigrateError::Rename`] for anything else.
    ///
    /// ```
    /// use litekeep_migrate::Rename;
    /// assert_eq!(
    ///     Rename::parse("files.path=files.file_path").unwrap(),
    ///     Rename::Column { table: "files".into(), from: "path".into(), to: "file_path".into() },
    /// );
    /// assert!(Rename::parse("files.path").is_err());
    /// assert_eq!(Rename::parse("index:by_path=files_by_path").unwrap().to_string(), "index:by_path=files_by_path");
    /// ```
    pub fn parse(hint: &str) -> Result<Rename, MigrateError> {
        let bad = |problem: &str| MigrateError::Rename {
            hint: hint.to_owned(),
            problem: problem.to_owned(),
        };
        if let Some(index) = hint.trim_start().strip_prefix("index:") {
            return match index.split_once('=') {
                Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
                    Ok(Rename::Index {
                        from: from.trim().to_owned(),
                        to: to.trim().to_owned(),
                    })
                }
                _ => Err(bad("expected index:old=new")),
            };
        }
        let (old, new) = hint
            .split_once('=')
            .ok_or_else(|| bad("expected old=new or table.old=table.new"))?;
        let (old, new) = (old.trim(), new.trim());
        match (old.split_once('.'), new.split_once('.')) {
            (None, None) if !old.is_empty() && !new.is_empty() => Ok(Rename::Table {
                from: old.to_owned(),
                to: new.to_owned(),
            }),
            (Some((t1, from)), Some((t2, to))) if !from.is_empty() && !to.is_empty() => {
                if !t1.eq_ignore_ascii_case(t2) {
                    return Err(bad(
                        "a column rename names the same table on both sides; rename the table with its own hint",
                    ));
                }
                Ok(Rename::Column {
                    table: t2.to_owned(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                })
            }
            _ => Err(bad("expected old=new or table.old=table.new")),
        }
    }

    /// Whether `self` and `other` rename the same object to something (same kind, same new
    /// name) or the same object from something (same old name).
    pub(crate) fn contradicts(&self, other: &Rename) -> bool {
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if self == other {
            return false;
        }
        match (self, other) {
            (Rename::Table { from: f1, to: t1 }, Rename::Table { from: f2, to: t2 })
            | (Rename::Index { from: f1, to: t1 }, Rename::Index { from: f2, to: t2 }) => {
                !(eq(f1, f2) && eq(t1, t2)) && (eq(f1, f2) || eq(t1, t2))
            }
            (
                Rename::Column {
                    table: a,
                    from: f1,
                    to: t1,
                },
                Rename::Column {
                    table: b,
                    from: f2,
                    to: t2,
                },
            ) => eq(a, b) && !(eq(f1, f2) && eq(t1, t2)) && (eq(f1, f2) || eq(t1, t2)),
            _ => false,
        }
    }

    /// Whether both give a new name to the same object (for two annotations on one).
    pub(crate) fn same_target(&self, other: &Rename) -> bool {
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match (self, other) {
            (Rename::Table { to: a, .. }, Rename::Table { to: b, .. })
            | (Rename::Index { to: a, .. }, Rename::Index { to: b, .. }) => eq(a, b),
            (
                Rename::Column {
                    table: a, to: c, ..
                },
                Rename::Column {
                    table: b, to: d, ..
                },
            ) => eq(a, b) && eq(c, d),
            _ => false,
        }
    }

    /// What it renames, for messages: "table users", "column users.name", "index by_name".
    pub(crate) fn target_text(&self) -> String {
        match self {
            Rename::Table { to, .. } => format!("table {to}"),
            Rename::Column { table, to, .. } => format!("column {table}.{to}"),
            Rename::Index { to, .. } => format!("index {to}"),
        }
    }
}

/// How to diff and apply.
///
/// ```
/// use std::time::Duration;
/// use litekeep_migrate::Options;
/// let opts = Options::default()
///     .allow_data_loss(false)
///     .rename("files.path=files.file_path").unwrap()
///     .lock_timeout(Duration::from_secs(5));
/// assert_eq!(opts.renames.len(), 1);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Allow dropping tables and columns.
    pub allow_data_loss: bool,
    /// Rename hints.
    pub renames: Vec<Rename>,
    /// Plan only: do not touch the file.
    pub dry_run: bool,
    /// How long to wait for the migration lock (and for SQLite's write lock).
    pub lock_timeout: Duration,
    /// The label other processes see while this migration holds the lock.
    pub label: String,
    /// Additive mode: tables, columns, indexes, views and triggers that the database has and
    /// the desired schema lacks are kept (and listed in [`Plan::kept`](crate::Plan::kept))
    /// instead of dropped; everything else is applied.
    pub keep_undeclared: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_data_loss: false,
            renames: Vec::new(),
            dry_run: false,
            lock_timeout: Duration::from_secs(30),
            label: "litekeep migrate".to_owned(),
            keep_undeclared: false,
        }
    }
}

impl Options {
    /// Sets [`Options::allow_data_loss`]. Example: [`Options`].
    pub fn allow_data_loss(mut self, allow: bool) -> Self {
        self.allow_data_loss = allow;
        self
    }

    /// Adds a rename hint (see [`Rename::parse`]).
    ///
    /// Hints may stay in the code after they were carried out: a hint whose new name exists and
    /// old name does not is done, and a database that already has the desired schema ignores
    /// them all. A hint is carried out while the old name exists and the new one does not (or a
    /// pending hint moves the new one away: `t.a=t.c` with `t.b=t.a`). When a column's old name
    /// is reused by the desired table, that column is a new one; the values go to the new name.
    /// A hint whose two names both exist otherwise (a swap, or an old name reused since the hint
    /// was carried out) is refused rather than guessed.
    ///
    /// # Errors
    /// [`MigrateError::Rename`] when the hint is malformed.
    ///
    /// ```
    /// use litekeep_migrate::Options;
    /// let opts = Options::default().rename("files.path=files.file_path")?.rename("docs=documents")?;
    /// assert!(Options::default().rename("no equals sign").is_err());
    /// # let _ = opts;
    /// # Ok::<(), litekeep_migrate::MigrateError>(())
    /// ```
    pub fn rename(mut self, hint: &str) -> Result<Self, MigrateError> {
        self.renames.push(Rename::parse(hint)?);
        Ok(self)
    }

    /// Sets [`Options::keep_undeclared`]: an additive migration, for rolling deploys where an
    /// older program must not take away what a newer one added.
    ///
    /// ```
    /// use litekeep_migrate::{diff, Options, Schema};
    /// let file = Schema::from_sql("CREATE TABLE t (a INT, b INT); CREATE TABLE u (x);").unwrap();
    /// let older = Schema::from_sql("CREATE TABLE t (a INT);").unwrap();
    /// let plan = diff(&file, &older, &Options::default().keep_undeclared(true)).unwrap();
    /// assert!(plan.is_empty() && plan.data_loss.is_empty());
    /// assert_eq!(plan.kept.len(), 2); // column t.b, table u
    /// ```
    pub fn keep_undeclared(mut self, keep: bool) -> Self {
        self.keep_undeclared = keep;
        self
    }

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

    /// The current name of the table whose desired name is `desired`.
    pub(crate) fn table_source<'a>(&'a self, desired: &'a str) -> &'a str {
        self.renames
            .iter()
            .find_map(|r| match r {
                Rename::Table { from, to } if to.eq_ignore_ascii_case(desired) => {
                    Some(from.as_str())
                }
                _ => None,
            })
            .unwrap_or(desired)
    }

    /// The column hints on `table` (by its desired name), as (from, to).
    pub(crate) fn column_hints<'a>(
        &'a self,
        table: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.renames.iter().filter_map(move |r| match r {
            Rename::Column { table: t, from, to } if t.eq_ignore_ascii_case(table) => {
                Some((from.as_str(), to.as_str()))
            }
            _ => None,
        })
    }
}
