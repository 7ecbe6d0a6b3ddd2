//! [`MigrateError`]: every way a migration can be refused or fail. Whatever the error, the
//! database is left as it was: the plan runs in one transaction that is rolled back.

use std::path::PathBuf;

use litekeep_lock::LockError;

/// The error type of diffing and applying migrations.
///
/// `Display` is one line that says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A desired-schema statement is not valid SQL.
    #[error(
        "desired schema statement {index} is not valid SQL ({source}): `{statement}`; fix that statement"
    )]
    Ddl {
        /// 1-based number of the statement.
        index: usize,
        /// Its beginning.
        statement: String,
        /// SQLite's complaint.
        #[source]
        source: rusqlite::Error,
    },
    /// A desired-schema statement is valid SQL but not a `CREATE` statement.
    #[error(
        "desired schema statement {index} is not a CREATE statement: `{statement}`; a desired schema holds only CREATE TABLE/INDEX/VIEW/TRIGGER"
    )]
    NotDdl {
        /// 1-based number of the statement.
        index: usize,
        /// Its beginning.
        statement: String,
    },
    /// The file is not a SQLite database (or is encrypted or truncated).
    #[error("{} is not a SQLite database (or it is encrypted or damaged); check the path — nothing was changed", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database cannot be written (read-only file, directory or filesystem).
    #[error("{} is read-only; a migration needs write access to the file and its directory — nothing was changed", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// The disk holding the database is full, or has less room than the migration needs (then
    /// it was refused before it began); either way nothing was changed.
    #[error("{}; nothing was changed (a migration is rolled back) — free space and run it again (a WAL database needs room for its -wal and -shm files even to be read)", no_room(path, *free, *needed))]
    DiskFull {
        /// The file.
        path: PathBuf,
        /// Free bytes left, when they could be read.
        free: Option<u64>,
        /// About how many free bytes the migration needs (its rebuilds' copies of their tables
        /// and indexes), when it rebuilds any and their size could be read.
        needed: Option<u64>,
    },
    /// An I/O error other than a full disk (a failed read, write or sync).
    #[error(
        "{context}: {} failed ({source}); nothing was changed — check the disk (its health, `dmesg`) and run it again",
        litekeep_recover::what_failed(source)
    )]
    Io {
        /// What was being done, and on which file.
        context: String,
        /// SQLite's error (its extended code says which file operation failed).
        #[source]
        source: rusqlite::Error,
    },
    /// The migration lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Looking for leftovers of interrupted migrations failed.
    #[error(transparent)]
    Recover(#[from] litekeep_recover::RecoverError),
    /// The plan would drop data and the caller did not allow it.
    #[error(
        "the migration would drop {what}; nothing was changed — pass --allow-data-loss (Options::allow_data_loss) to drop it, or add a rename hint if it was renamed"
    )]
    DataLoss {
        /// What would be lost: "table t (3 rows)" or "column t.c".
        what: String,
        /// The table.
        table: String,
        /// The column, when a column would be dropped.
        column: Option<String>,
    },
    /// Existing rows violate a constraint of the desired schema.
    #[error(
        "rows of table {table} violate the desired schema ({constraint}){}; fix or delete them first — nothing was changed",
        rowid_list(rowids)
    )]
    Constraint {
        /// The table.
        table: String,
        /// The constraint, as SQLite names it ("NOT NULL constraint failed: t.c").
        constraint: String,
        /// Up to 5 offending rowids (none when they cannot be pointed at).
        rowids: Vec<i64>,
    },
    /// A new UNIQUE index (or a unique constraint it enforces) over rows that already hold the
    /// same values.
    #[error(
        "rows of table {table} hold duplicate values for the new unique index {index} ({constraint}){}; fix or delete them first — nothing was changed",
        rowid_list(rowids)
    )]
    UniqueIndex {
        /// The index.
        index: String,
        /// The table it is on.
        table: String,
        /// SQLite's message ("UNIQUE constraint failed: t.c").
        constraint: String,
        /// Up to 5 rowids of rows that share their values with another (none for a `WITHOUT
        /// ROWID` table or when they cannot be pointed at).
        rowids: Vec<i64>,
    },
    /// A virtual table uses a module that SQLite, as loaded on this connection, does not have.
    #[error(
        "virtual table {table} uses module {module}, which this SQLite does not have; load the extension that provides it (Options::load_extension / Builder::load_extension, or --load-extension PATH on the command line) — nothing was changed"
    )]
    MissingModule {
        /// The virtual table.
        table: String,
        /// The module it names.
        module: String,
    },
    /// An extension could not be loaded.
    #[error(
        "loading {extension} failed ({source}); check the path, that it is a SQLite extension built for this platform, and its entry point — nothing was changed"
    )]
    Extension {
        /// Which extension: "extension /path/vec0.so".
        extension: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A virtual table the migration created or filled failed its module's own check (FTS5's
    /// and FTS4's `'integrity-check'`, `rtreecheck()`); rolled back.
    #[error(
        "after the migration virtual table {table} failed its {module} integrity check ({detail}), so it was rolled back; run `litekeep check` on the file and please report this"
    )]
    VirtualTableCheck {
        /// The virtual table.
        table: String,
        /// Its module.
        module: String,
        /// What the check said.
        detail: String,
    },
    /// A table from an interrupted migration is in the way.
    #[error(
        "table {leftover} (left by an interrupted migration of {table}) is in the way; run `litekeep recover` first — nothing was changed"
    )]
    Leftover {
        /// The leftover table.
        leftover: String,
        /// The table it belongs to.
        table: String,
    },
    /// The schema changed between planning and applying.
    #[error("the schema of {} changed since the plan was made; make a new plan — nothing was changed", path.display())]
    Changed {
        /// The database.
        path: PathBuf,
    },
    /// After running the plan the schema was not the desired one; rolled back.
    #[error("after the migration the schema was not the desired one, so it was rolled back; please report this: {}", difference.join("; "))]
    Verify {
        /// The differing statements: `- current` and `+ desired`.
        difference: Vec<String>,
    },
    /// A `@renamed` annotation of the desired schema is malformed or sits where it renames
    /// nothing.
    #[error("desired schema line {line}: {problem}")]
    Annotation {
        /// The 1-based line of the comment.
        line: usize,
        /// What is wrong, and where annotations go.
        problem: String,
    },
    /// Something the desired schema does not declare cannot be kept (additive mode).
    #[error(
        "cannot keep {object}, which the desired schema does not declare: {problem}; declare it in the desired schema, or drop it with --allow-data-loss without --keep-undeclared"
    )]
    Keep {
        /// What: "column t.c", "index i on t".
        object: String,
        /// Why.
        problem: String,
    },
    /// A rename hint is malformed or names nothing.
    #[error("rename hint `{hint}`: {problem}")]
    Rename {
        /// The hint as given.
        hint: String,
        /// What is wrong.
        problem: String,
    },
    /// SQLite failed.
    #[error("{context}: {source}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
}

impl MigrateError {
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        MigrateError::Sqlite {
            context: context.into(),
            source,
        }
    }

    /// Maps a SQLite error about the database file at `path` to the specific variant when it
    /// is one (not a database, read-only, disk full).
    pub(crate) fn from_db(path: &std::path::Path, context: &str, source: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match source.sqlite_error_code() {
            Some(C::NotADatabase) => MigrateError::NotADatabase {
                path: path.to_owned(),
            },
            Some(C::ReadOnly) => MigrateError::ReadOnly {
                path: path.to_owned(),
            },
            Some(C::DiskFull | C::SystemIoFailure) => {
                match litekeep_recover::io_failure(path, &source) {
                    Some(litekeep_recover::IoFailure::DiskFull { free }) => {
                        MigrateError::DiskFull {
                            path: path.to_owned(),
                            free,
                            needed: None,
                        }
                    }
                    Some(litekeep_recover::IoFailure::Other { .. }) => MigrateError::Io {
                        context: format!("{context} ({})", path.display()),
                        source,
                    },
                    None => MigrateError::Sqlite {
                        context: format!("{context} ({})", path.display()),
                        source,
                    },
                }
            }
            Some(C::CannotOpen) if !path.exists() => MigrateError::Sqlite {
                context: format!("opening {} (no such file or directory)", path.display()),
                source,
            },
            _ => MigrateError::Sqlite {
                context: format!("{context} ({})", path.display()),
                source,
            },
        }
    }
}

/// "the disk holding app.db has 1200 KiB free and this migration needs about 2600 KiB".
fn no_room(path: &std::path::Path, free: Option<u64>, needed: Option<u64>) -> String {
    use crate::space::human;
    let disk = format!("the disk holding {}", path.display());
    match (free, needed) {
        (Some(f), Some(n)) if f < n => format!(
            "{disk} has {} free and this migration needs about {}",
            human(f),
            human(n)
        ),
        (Some(f), Some(n)) => format!(
            "{disk} is full ({} free; this migration needs about {})",
            human(f),
            human(n)
        ),
        (Some(f), None) => format!("{disk} is full ({} free)", human(f)),
        (None, Some(n)) => format!("{disk} is full (this migration needs about {})", human(n)),
        (None, None) => format!("{disk} is full"),
    }
}

fn rowid_list(rowids: &[i64]) -> String {
    if rowids.is_empty() {
        return String::new();
    }
    let list: Vec<String> = rowids.iter().map(ToString::to_string).collect();
    format!(": rowids {}", list.join(", "))
}
