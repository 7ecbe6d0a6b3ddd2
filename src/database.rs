//! [`Database`]: the handle every thread of a process shares — one writer connection behind a
//! queue, a pool of readers, and the settings the open pipeline chose.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use litekeep_lock::{FileLock, LockGuard, Wait};
use litekeep_migrate::Fingerprint;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::builder::Builder;
use crate::error::Error;
use crate::pool::Pool;
use crate::retry::{Backoff, is_transient};

/// A SQLite database opened safely for this process: schema set up once across all processes,
/// WAL on, one writer connection (writes queue for it, so this process never fights itself for
/// SQLite's write lock), a pool of read-only connections. Cheap to clone; `Send + Sync`; every
/// clone and every later [`Database::open`] of the same file in this process is the same handle.
///
/// ```
/// use litekeep::Database;
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let db = Database::builder(dir.join("app.db"))
///     .schema("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
///     .open()?;
/// db.write(|tx| tx.execute("INSERT INTO notes (body) VALUES ('hello')", []))?;
/// let n: i64 = db.read(|conn| conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0)))?;
/// assert!(n >= 1);
/// # Ok::<(), litekeep::Error>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    /// The desired schema's fingerprint, when one was given (updated by [`Database::migrate`]).
    pub(crate) fingerprint: Mutex<Option<Fingerprint>>,
    pub(crate) writer: Mutex<Connection>,
    pub(crate) readers: Pool,
    pub(crate) busy_budget: Duration,
    /// The cross-process write gate (`<db>.write.lock`), when [`Builder::write_gate`] is on.
    pub(crate) gate: Option<FileLock>,
    pub(crate) lock_timeout: Duration,
    /// The writer's durability, to set up a replacement writer with.
    pub(crate) durability: crate::durability::Durability,
    /// The bound on `<db>-wal` ([`Builder::wal_limit`]), checked after commits.
    pub(crate) wal: crate::wal::WalBound,
    /// The writer's checkpoints, off the commit path (`checkpoint.rs`).
    pub(crate) checkpoints: Arc<crate::checkpoint::Checkpoints>,
    /// Held for the handle's lifetime with `hold_shared_lock(true)`.
    pub(crate) _shared: Option<LockGuard>,
    /// Extensions loaded on every connection ([`Builder::load_extension`]).
    pub(crate) extensions: Vec<litekeep_migrate::Extension>,
}

impl Inner {
    /// Makes sure the writer is out of the failed attempt's transaction. rusqlite rolls back
    /// when the transaction is dropped, but a ROLLBACK can fail too (an I/O error), and SQLite
    /// may leave a transaction open after an I/O error at COMMIT; a writer left inside one
    /// would hold the database's write lock until the process ends, and every other writer of
    /// every process would wait for it. So: ROLLBACK again, and if the connection is still in
    /// a transaction, close it (which rolls back and lets the lock go) and open a new one.
    fn leave_transaction(&self, conn: &mut Connection) {
        if conn.is_autocommit() {
            return;
        }
        let _ = conn.execute_batch("ROLLBACK");
        if conn.is_autocommit() {
            return;
        }
        let Ok(mut fresh) = Connection::open(&self.path) else {
            return;
        };
        if crate::builder::configure_writer(&fresh, self.busy_budget, self.durability).is_err()
            || self.extensions.iter().any(|e| e.load_raw(&fresh).is_err())
            || self.checkpoints.install(&mut fresh).is_err()
        {
            return;
        }
        let stuck = std::mem::replace(conn, fresh);
        // A close that fails (a statement still open) hands the connection back (dropping it
        // would panic): it stays the writer, and the next failed write tries again.
        if let Err((stuck, _)) = stuck.close() {
            *conn = stuck;
        }
    }
}

impl Database {
    /// Starts opening the database at `path` (created if missing). See [`Builder`] for the
    /// settings and an example.
    pub fn builder(path: impl AsRef<Path>) -> Builder {
        Builder::new(path)
    }

    /// Opens `path` with defaults and no schema: WAL on, leftovers of interrupted migrations
    /// repaired. Same as `Database::builder(path).open()`.
    ///
    /// # Errors
    /// As [`Builder::open`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::open(tmp.path().join("app.db"))?;
    /// assert_eq!(litekeep::Database::open(tmp.path().join("app.db"))?, db);
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Database, Error> {
        Builder::new(path).open()
    }

    /// The database file, as this handle was first opened with.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::open(tmp.path().join("app.db"))?;
    /// assert!(db.path().ends_with("app.db"));
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`) on this process's writer connection
    /// and commits; an error from `f` rolls back. Writers of this process queue for the
    /// connection; with the write gate on (see [`Builder::write_gate`]) the
    /// processes queue for `<db>.write.lock` in the kernel, and each transaction holds it from
    /// `BEGIN` to `COMMIT`. When SQLite reports the database busy or locked (another process held its
    /// write lock past `busy_timeout`), the whole transaction is retried — `f` runs again, so it
    /// must not have effects outside the transaction — with jittered exponential backoff, for
    /// at most the builder's `busy_timeout`, then [`Error::Busy`]. Every 64th commit checks the
    /// WAL's size and, past [`Builder::wal_limit`], checkpoints it (at most 200 ms more).
    ///
    /// # Errors
    /// [`Error::Busy`] when the retry budget runs out; [`Error::Lock`] when the write gate stays
    /// held past it (naming the holder: a migration, say); [`Error::Sqlite`] for any other
    /// error, including the one `f` returned. Calling [`Database::write`] or
    /// [`Database::migrate`] on the same database from inside `f` is refused at once
    /// ([`Error::InsideWrite`]), never a hang.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .schema("CREATE TABLE accounts (id INTEGER PRIMARY KEY, cents INTEGER NOT NULL);")
    ///     .open()?;
    /// // Both rows or neither: the closure runs in one transaction.
    /// let ids = db.write(|tx| {
    ///     tx.execute("INSERT INTO accounts (cents) VALUES (100)", [])?;
    ///     tx.execute("INSERT INTO accounts (cents) VALUES (-100)", [])?;
    ///     Ok(tx.last_insert_rowid())
    /// })?;
    /// assert_eq!(ids, 2);
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn write<T>(
        &self,
        f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        self.write_noting(f, &mut None)
    }

    /// [`Database::write`], noting in `code` the extended result code of the SQLite error it
    /// fails with, if it fails with one (the variants of [`Error`] keep the error whole, but
    /// [`Error::DiskFull`] does not say which file operation found the disk full).
    pub(crate) fn write_noting<T>(
        &self,
        f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
        code: &mut Option<i32>,
    ) -> Result<T, Error> {
        match self.write_with(f, code, true)? {
            Some(value) => Ok(value),
            None => unreachable!("a write that may wait always writes or fails"),
        }
    }

    /// [`Database::write_noting`] if it can begin at once: `Ok(None)`, with `f` not run or
    /// its transaction rolled back, when this process's writer is busy, the write gate is held
    /// (or off: then nothing says whether another process writes), or SQLite's write lock stays
    /// taken past `busy_timeout` by a writer that bypasses the gate.
    pub(crate) fn write_if_free_noting<T>(
        &self,
        f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
        code: &mut Option<i32>,
    ) -> Result<Option<T>, Error> {
        self.write_with(f, code, false)
    }

    fn write_with<T>(
        &self,
        mut f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
        code: &mut Option<i32>,
        wait: bool,
    ) -> Result<Option<T>, Error> {
        let _writing = self.enter_write("Database::write")?;
        let mut conn = if wait {
            self.inner
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        } else {
            match self.inner.writer.try_lock() {
                Ok(conn) => conn,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            }
        };
        let mut backoff = Backoff::new(self.inner.busy_budget);
        loop {
            // Writers of every litekeep process queue here, in the kernel, rather than in
            // SQLite's sleeping busy handler; the gate is let go right after COMMIT/ROLLBACK.
            let gate = match (&self.inner.gate, wait) {
                (Some(gate), true) => {
                    let left = self.inner.busy_budget.saturating_sub(backoff.waited());
                    Some(gate.exclusive(Wait::Timeout(left))?)
                }
                (Some(gate), false) => match gate.try_exclusive()? {
                    Some(held) => Some(held),
                    None => return Ok(None),
                },
                (None, true) => None,
                (None, false) => return Ok(None),
            };
            let attempt = (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            })();
            if attempt.is_err() {
                self.inner.leave_transaction(&mut conn);
            }
            drop(gate);
            match attempt {
                Ok(value) => {
                    // Committed: whatever the WAL's check does, the write succeeded.
                    self.inner.wal.after_commit(&conn, self.inner.busy_budget);
                    return Ok(Some(value));
                }
                Err(e) if is_transient(&e) && !wait => return Ok(None),
                Err(e) if is_transient(&e) => {
                    if !backoff.pause() {
                        return Err(Error::Busy {
                            path: self.inner.path.clone(),
                            waited: backoff.waited(),
                            attempts: backoff.attempts,
                        });
                    }
                }
                Err(source) => {
                    *code = source.sqlite_error().map(|e| e.extended_code);
                    return Err(Error::sqlite(&self.inner.path, "writing", source));
                }
            }
        }
    }

    /// Runs `f` on a read-only connection from the pool. In WAL mode readers never wait for
    /// writers; a transient busy error (a checkpoint resetting the WAL) is retried like
    /// [`Database::write`]'s.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Sqlite`], as [`Database::write`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .schema("CREATE TABLE files (path TEXT PRIMARY KEY);")
    ///     .open()?;
    /// db.write(|tx| tx.execute("INSERT INTO files VALUES ('a.rs'), ('b.rs')", []))?;
    /// let paths: Vec<String> = db.read(|conn| {
    ///     conn.prepare("SELECT path FROM files ORDER BY path")?
    ///         .query_map([], |r| r.get(0))?
    ///         .collect()
    /// })?;
    /// assert_eq!(paths, ["a.rs", "b.rs"]);
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn read<T>(
        &self,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let sqlite = |source| Error::sqlite(&self.inner.path, "reading", source);
        let conn = self.inner.readers.get(&self.inner.path).map_err(sqlite)?;
        let mut backoff = Backoff::new(self.inner.busy_budget);
        loop {
            match f(&conn) {
                Ok(value) => return Ok(value),
                Err(e) if is_transient(&e) => {
                    if !backoff.pause() {
                        return Err(Error::Busy {
                            path: self.inner.path.clone(),
                            waited: backoff.waited(),
                            attempts: backoff.attempts,
                        });
                    }
                }
                Err(e) => return Err(sqlite(e)),
            }
        }
    }

    /// Migrates this database, online, to `desired_sql` (see [`litekeep_migrate::migrate`]):
    /// under the exclusive lock, in one transaction. This process's writers wait for it like any
    /// other writer. Later opens in this process must then ask for the new schema.
    ///
    /// A handle opened with `hold_shared_lock(true)` holds the shared lock and so cannot take the
    /// exclusive one: that is refused at once ([`litekeep_lock::LockError::WouldDeadlock`]).
    ///
    /// The extensions given to [`Builder::load_extension`] are loaded for it unless `options`
    /// names its own.
    ///
    /// # Errors
    /// [`Error::Migrate`], with the migration's own detail; [`Error::InsideWrite`] from inside
    /// a [`Database::write`] on the same thread.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// use litekeep::migrate::Options;
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .schema("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
    ///     .open()?;
    /// let v2 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, pinned INTEGER);";
    /// let report = db.migrate(v2, &Options::default())?;
    /// assert!(report.applied);
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn migrate(
        &self,
        desired_sql: &str,
        options: &litekeep_migrate::Options,
    ) -> Result<litekeep_migrate::Report, Error> {
        self.refuse_inside_write("Database::migrate")?;
        let mut options = options.clone();
        if options.extensions.is_empty() {
            options.extensions = self.inner.extensions.clone();
        }
        if options.lock_timeout == litekeep_migrate::Options::default().lock_timeout {
            options.lock_timeout = self.inner.lock_timeout;
        }
        let report = litekeep_migrate::migrate(&self.inner.path, desired_sql, &options)?;
        if report.applied || report.up_to_date() {
            *self
                .inner
                .fingerprint
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(report.after);
        }
        Ok(report)
    }
}

thread_local! {
    /// The databases (their `Inner`s' addresses) this thread is inside a `write` of.
    static WRITING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks this thread as inside a `write` of one database until dropped.
struct Writing(usize);

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.with_borrow_mut(|w| w.retain(|&d| d != self.0));
    }
}

impl Database {
    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Refuses `what` when this thread is inside a `write` of this database.
    pub(crate) fn refuse_inside_write(&self, what: &'static str) -> Result<(), Error> {
        if WRITING.with_borrow(|w| w.contains(&self.key())) {
            return Err(Error::InsideWrite {
                path: self.inner.path.clone(),
                what,
            });
        }
        Ok(())
    }

    /// Marks this thread as inside a `write` of this database, refusing a nested one (it would
    /// wait for the writer connection this thread already has).
    fn enter_write(&self, what: &'static str) -> Result<Writing, Error> {
        self.refuse_inside_write(what)?;
        WRITING.with_borrow_mut(|w| w.push(self.key()));
        Ok(Writing(self.key()))
    }
}

/// Two handles are equal when they are the same handle: the one this process has for the file.
impl PartialEq for Database {
    fn eq(&self, other: &Database) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Database {}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}
