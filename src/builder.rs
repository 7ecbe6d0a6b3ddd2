//! [`Builder`]: the settings of [`Database::open`](crate::Database::open) and the open pipeline.
//!
//! Every process and thread runs the same steps, so a fleet of cold processes does the setup
//! exactly once:
//!
//! 1. under the *shared* lock on `<db>.lock`, check whether the file is ready: WAL on, no
//!    leftover of an interrupted migration, schema fingerprint equal to the desired one. Almost
//!    always it is, and opening costs one shared lock and one schema read;
//! 2. otherwise take the *exclusive* lock and check again (another process may have done it
//!    while this one waited); if still needed: repair leftovers (`litekeep-recover`), set WAL,
//!    migrate (`litekeep-migrate`), in that order; release.
//!
//! Schema setup therefore never runs on a second connection of a busy process (seed 000), and
//! `PRAGMA journal_mode=WAL` and `CREATE TABLE` never race between requests (seed 003).
//!
//! # Rolling deploys: additive and forward only
//!
//! During a deploy, processes of two versions of a program open one file side by side. The
//! rule that keeps them from fighting:
//!
//! - **Additive.** What the file has and the schema does not declare (a table, a column, an
//!   index, a view, a trigger that a newer version added) is kept, never dropped
//!   ([`Builder::keep_undeclared`], on by default). An older program opens a file that a newer
//!   one migrated without an error and without a migration.
//! - **Forward only.** When `_litekeep_history` shows the file has moved past the schema an
//!   open asks for (it was at that schema, or was migrated to it, and migrated on since), the
//!   open changes nothing: an older program never migrates the file back, even where its
//!   schema differs in more than what it lacks (a changed type, say).
//! - Contraction (dropping what the old version used) is an explicit act once every process
//!   runs the new version: `litekeep migrate --db app.db --schema v2.sql --allow-data-loss`
//!   or [`Database::migrate`](crate::Database::migrate).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use litekeep_lock::{FileLock, Mode, Wait};
use litekeep_migrate::{Extension, Fingerprint, Schema};
use rusqlite::Connection;

use crate::database::{Database, Inner};
use crate::durability::Durability;
use crate::error::Error;
use crate::pool::Pool;
use crate::registry;

/// How to open a [`Database`]. Defaults: no schema, lock timeout 30 s, busy timeout 10 s, 4
/// readers, no lifetime lock, [`Durability::Normal`], the write gate on, what the file has
/// beyond the schema kept, the WAL kept near 64 MiB ([`Builder::wal_limit`]).
///
/// ```
/// use std::time::Duration;
/// use litekeep::Database;
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let db = Database::builder(dir.join("index.db"))
///     .schema("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);")
///     .lock_timeout(Duration::from_secs(10))
///     .busy_timeout(Duration::from_secs(5))
///     .readers(8)
///     .label("indexer")
///     .open()?;
/// # Ok::<(), litekeep::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .open()"]
pub struct Builder {
    path: PathBuf,
    schema: Option<String>,
    lock_timeout: Duration,
    busy_timeout: Duration,
    readers: usize,
    hold_shared_lock: bool,
    label: String,
    renames: Vec<String>,
    keep_undeclared: bool,
    durability: Durability,
    write_gate: Option<bool>,
    wal_limit: u64,
    extensions: Vec<Extension>,
}

impl Builder {
    pub(crate) fn new(path: impl AsRef<Path>) -> Builder {
        Builder {
            path: path.as_ref().to_path_buf(),
            schema: None,
            lock_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
            readers: 4,
            hold_shared_lock: false,
            label: "litekeep open".to_owned(),
            renames: Vec::new(),
            keep_undeclared: true,
            durability: Durability::default(),
            write_gate: None,
            wal_limit: crate::wal::DEFAULT_LIMIT,
            extensions: Vec::new(),
        }
    }

    /// Loads the SQLite extension file `path` (entry point `entry_point`, or the one SQLite
    /// derives from the file name) on every connection of the handle — the writer, the
    /// readers, the migration's — before the schema is read. A desired schema with a virtual
    /// table of a module SQLite does not build in (sqlite-vec's `vec0`, say) needs it; without
    /// it [`Builder::open`] refuses with `MigrateError::MissingModule`, the file unchanged.
    ///
    /// ```no_run
    /// use litekeep::Database;
    /// let db = Database::builder("app.db")
    ///     .load_extension("/usr/local/lib/vec0.so", None)
    ///     .schema("CREATE VIRTUAL TABLE embeddings USING vec0(embedding float[384]);")
    ///     .open()?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn load_extension(self, path: impl Into<PathBuf>, entry_point: Option<&str>) -> Builder {
        self.extension(Extension::file(path, entry_point))
    }

    /// Adds an [`Extension`]: a file as [`Builder::load_extension`] loads it, or a function run
    /// on every new connection (an extension linked into the program: the `sqlite-vec`
    /// crate's init function, say).
    ///
    /// ```
    /// use litekeep::{Database, Extension};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("app.db");
    /// // Runs on the writer, every reader and the migration's connections alike.
    /// let init = Extension::init(|conn| conn.execute_batch("PRAGMA case_sensitive_like = ON"));
    /// let db = Database::builder(&path)
    ///     .extension(init)
    ///     .schema("CREATE TABLE t (a TEXT);")
    ///     .open()?;
    /// db.write(|tx| tx.execute("INSERT INTO t (a) VALUES ('Hi')", []))?;
    /// let n: i64 = db.read(|c| c.query_row("SELECT count(*) FROM t WHERE a LIKE 'hi'", [], |r| r.get(0)))?;
    /// assert_eq!(n, 0);
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn extension(mut self, extension: Extension) -> Builder {
        self.extensions.push(extension);
        self
    }

    /// The desired schema, as plain DDL (see `litekeep_migrate`): the file is migrated to it
    /// once, by whichever process gets there first. Renames may be written in it as sqldef's
    /// `-- @renamed from=old` comments (see `litekeep_migrate::Annotation`). What the file has
    /// beyond it is kept (see [`Builder::keep_undeclared`]).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .schema("CREATE TABLE notes ( -- @renamed from=memos
    ///                id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
    ///     .open()?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn schema(mut self, sql: impl Into<String>) -> Builder {
        self.schema = Some(sql.into());
        self
    }

    /// A rename hint for the migration to [`Builder::schema`]: `old=new` for a table,
    /// `table.old=table.new` for a column (see `litekeep_migrate::Options::rename`). Hints can
    /// stay in the code after they ran: later opens find them carried out.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let path = dir.join("app.db");
    /// # let _ = std::fs::remove_file(&path);
    /// use litekeep::Database;
    /// let v1 = "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT);";
    /// let db = Database::builder(&path).schema(v1).open()?;
    /// db.write(|tx| tx.execute("INSERT INTO files (path) VALUES ('a.rs')", []))?;
    /// drop(db);
    /// let v2 = "CREATE TABLE sources (id INTEGER PRIMARY KEY, file_path TEXT);";
    /// let db = Database::builder(&path)
    ///     .schema(v2)
    ///     .rename("files=sources")
    ///     .rename("sources.path=sources.file_path")
    ///     .open()?;
    /// let p: String = db.read(|c| c.query_row("SELECT file_path FROM sources", [], |r| r.get(0)))?;
    /// assert_eq!(p, "a.rs");
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn rename(mut self, hint: impl Into<String>) -> Builder {
        self.renames.push(hint.into());
        self
    }

    /// Keep what the file has and [`Builder::schema`] does not declare (default: on). Off, an
    /// open whose schema lacks a table or column of the file is refused as data loss, as a
    /// strict `litekeep migrate` is. See "Rolling deploys" in this module's docs.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let path = dir.join("app.db");
    /// # let _ = std::fs::remove_file(&path);
    /// use litekeep::Database;
    /// let v1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);";
    /// let v2 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, pinned INTEGER NOT NULL DEFAULT 0);";
    /// drop(Database::builder(&path).schema(v2).open()?); // the new version migrates
    /// drop(Database::builder(&path).schema(v1).open()?); // the old one opens, keeps `pinned`
    /// assert!(Database::builder(&path).schema(v1).keep_undeclared(false).open().is_err());
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn keep_undeclared(mut self, keep: bool) -> Builder {
        self.keep_undeclared = keep;
        self
    }

    /// What an acknowledged write survives (default [`Durability::Normal`]: a crash of the
    /// process; [`Durability::Full`]: a power cut too). See [`Durability`] for the numbers.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep::{Database, Durability};
    /// let db = Database::builder(dir.join("ledger.db")).durability(Durability::Full).open()?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn durability(mut self, durability: Durability) -> Builder {
        self.durability = durability;
        self
    }

    /// Queue the writes of all processes at a cross-process gate, `<db>.write.lock`, held from
    /// `BEGIN IMMEDIATE` to `COMMIT`. Default: on.
    ///
    /// Without it, writers of different processes meet in SQLite's busy handler, which sleeps
    /// 1 to 100 ms between attempts, so an unlucky writer can wait most of a second while others
    /// keep winning. With it, writers queue by ticket, get the gate in the order they asked, and
    /// are woken in turn by a futex (`litekeep_lock`'s bell); a process keeps the gate for a
    /// slice while others wait (1 ms shared among them, at least 100 µs), so a waiter waits
    /// about a slice, plus the transactions in flight, for its turn. What it costs is the 99th
    /// percentile: a write that waits, waits for the others' slices. Turn it off for the best
    /// p99 where no writer may wait long anyway (one writer process, or short bursts). The
    /// `writers` example and the stress runner measure both ways (docs/measured.md in the
    /// repository).
    ///
    /// Writers that do not use litekeep (the `sqlite3` shell, another program) meet litekeep's
    /// in SQLite's busy handling. Migrations and repairs always take the gate, after the schema
    /// lock (see `litekeep_lock::write_gate_path_for`).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// use litekeep::Database;
    /// // One writer process, short bursts: no queue across processes.
    /// let db = Database::builder(tmp.path().join("cache.db"))
    ///     .schema("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB);")
    ///     .write_gate(false)
    ///     .open()?;
    /// db.write(|tx| tx.execute("INSERT INTO kv VALUES ('a', x'00')", []))?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn write_gate(mut self, on: bool) -> Builder {
        self.write_gate = Some(on);
        self
    }

    /// Keep the write-ahead log near `bytes` (default 64 MiB; 0: no bound, SQLite's own
    /// checkpoints only). Every 64th commit of this handle looks at the size of `<db>-wal`, and
    /// past `bytes` the writer runs `PRAGMA wal_checkpoint(TRUNCATE)`, waiting at most 200 ms
    /// for readers and for SQLite's write lock, then cuts the WAL to zero bytes. A checkpoint
    /// that readers hold up is tried again at the next check; a failed one never fails the
    /// write (it had committed).
    ///
    /// Without it, readers that overlap without a break (another process searching all the
    /// time) keep SQLite's automatic checkpoints from ever starting the WAL over, and it grows
    /// for as long as writes go on ("checkpoint starvation"), until the disk stalls on writeback
    /// and commits wait seconds. The WAL can still exceed `bytes`: by what 64 commits write, by one large transaction (a
    /// migration's rebuild), and for as long as one long read transaction holds it up.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep::Database;
    /// let db = Database::builder(dir.join("events.db"))
    ///     .schema("CREATE TABLE events (id INTEGER PRIMARY KEY, body BLOB);")
    ///     .wal_limit(16 * 1024 * 1024)
    ///     .open()?;
    /// db.write(|tx| tx.execute("INSERT INTO events (body) VALUES (zeroblob(1000))", []))?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn wal_limit(mut self, bytes: u64) -> Builder {
        self.wal_limit = bytes;
        self
    }

    /// How long to wait for the lock on `<db>.lock` (default 30 s); on timeout the error names
    /// the holder.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .lock_timeout(Duration::from_secs(5))
    ///     .busy_timeout(Duration::from_secs(2))
    ///     .readers(8)
    ///     .label("indexer")
    ///     .open()?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Builder {
        self.lock_timeout = timeout;
        self
    }

    /// SQLite's `busy_timeout` on every connection, and the retry budget of
    /// [`Database::write`] (default 10 s). Example: [`Builder::lock_timeout`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Builder {
        self.busy_timeout = timeout;
        self
    }

    /// How many read-only connections the pool may open (default 4, at least 1). Example:
    /// [`Builder::lock_timeout`].
    pub fn readers(mut self, n: usize) -> Builder {
        self.readers = n;
        self
    }

    /// Keep a shared lock on `<db>.lock` for the handle's lifetime, so that a migration from
    /// another process (which needs the exclusive lock) waits until every process has closed
    /// its handle: "migrate only when the others are stopped", enforced. Such a handle cannot
    /// migrate the file itself ([`Database::migrate`] is refused with `WouldDeadlock`).
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .hold_shared_lock(true)
    ///     .open()?;
    /// // Another process's `litekeep migrate --db app.db …` now waits for this handle to go.
    /// drop(db);
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn hold_shared_lock(mut self, hold: bool) -> Builder {
        self.hold_shared_lock = hold;
        self
    }

    /// The label other processes see while this open holds the lock (default "litekeep open"),
    /// in their timeout errors. Example: [`Builder::lock_timeout`].
    pub fn label(mut self, label: impl Into<String>) -> Builder {
        self.label = label.into();
        self
    }

    /// Opens the database: creates the file if missing, runs the pipeline of this module's docs
    /// when the file is not ready, and returns this process's one handle for the file.
    ///
    /// # Errors
    /// - [`Error::SchemaMismatch`] when this process already has the file open with another
    ///   desired schema;
    /// - [`Error::Lock`] when the lock is held past the timeout (naming the holder);
    /// - [`Error::Recover`] / [`Error::Migrate`] when repair or migration refuses (a leftover
    ///   with ambiguous rows, a schema change that would drop data, malformed DDL, …) — the
    ///   file is then unchanged;
    /// - [`Error::Sqlite`] / [`Error::Io`] otherwise.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let path = tmp.path().join("app.db");
    /// let schema = "CREATE TABLE t (id INTEGER PRIMARY KEY);";
    /// let db = litekeep::Database::builder(&path).schema(schema).open()?;
    /// // Another schema for the same file in the same process is refused.
    /// let other = litekeep::Database::builder(&path).schema("CREATE TABLE u (x);").open();
    /// assert!(matches!(other, Err(litekeep::Error::SchemaMismatch { .. })));
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn open(self) -> Result<Database, Error> {
        for hint in &self.renames {
            litekeep_migrate::Rename::parse(hint)?;
        }
        let desired = match &self.schema {
            Some(sql) => Some(parsed(sql, &self.extensions)?),
            None => None,
        };
        let fingerprint = desired.as_ref().map(|s| s.fingerprint());
        litekeep_recover::check_journal_files(&self.path)?;
        let key = ensure_file(&self.path)?;
        // Held for the whole open: a second thread opening the same file waits, then finds the
        // first one's handle.
        let mut registry = registry::lock();
        if let Some(inner) = registry.get(&key).and_then(std::sync::Weak::upgrade) {
            let db = Database { inner };
            self.check_same_schema(&db, fingerprint)?;
            return Ok(db);
        }
        let lock = FileLock::for_database(&self.path)?.with_label(&self.label);
        let ready = self.prepare(&lock, desired.as_deref())?;
        let shared = if self.hold_shared_lock {
            Some(lock.acquire(Mode::Shared, Wait::Timeout(self.lock_timeout))?)
        } else {
            None
        };
        let checkpoints = Arc::new(crate::checkpoint::Checkpoints::new(
            self.path.clone(),
            self.durability,
        ));
        let writer = self
            .writer(ready)
            .and_then(|mut writer| checkpoints.install(&mut writer).map(|()| writer))
            .map_err(|source| Error::sqlite(&self.path, "opening the writer connection", source))?;
        let wal = crate::wal::WalBound::new(&self.path, &writer, self.wal_limit);
        let inner = Arc::new(Inner {
            path: self.path.clone(),
            fingerprint: Mutex::new(fingerprint),
            writer: Mutex::new(writer),
            readers: Pool::new(self.readers, self.busy_timeout, self.extensions.clone()),
            busy_budget: self.busy_timeout,
            gate: if self.write_gate.unwrap_or(true) {
                Some(FileLock::write_gate_for_database(&self.path)?.with_label(&self.label))
            } else {
                None
            },
            lock_timeout: self.lock_timeout,
            durability: self.durability,
            wal,
            checkpoints,
            _shared: shared,
            extensions: self.extensions.clone(),
        });
        registry.retain(|_, weak| weak.strong_count() > 0);
        registry.insert(key, Arc::downgrade(&inner));
        Ok(Database { inner })
    }

    fn check_same_schema(&self, db: &Database, wanted: Option<Fingerprint>) -> Result<(), Error> {
        let Some(wanted) = wanted else { return Ok(()) };
        let have = *db
            .inner
            .fingerprint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match have {
            Some(have) if have == wanted => Ok(()),
            // Opened without a schema: fine if the file has this one.
            None if self.current_fingerprint()? == wanted => Ok(()),
            _ => Err(Error::SchemaMismatch {
                path: self.path.clone(),
            }),
        }
    }

    fn current_fingerprint(&self) -> Result<Fingerprint, Error> {
        let conn = self.connection("reading the schema")?;
        Ok(self.read_schema(&conn)?.fingerprint())
    }

    /// Steps 1 and 2 of the module docs. Returns the connection that found the file ready,
    /// when one did, to become the writer.
    fn prepare(
        &self,
        lock: &FileLock,
        desired: Option<&Schema>,
    ) -> Result<Option<Connection>, Error> {
        {
            let _shared = lock.acquire(Mode::Shared, Wait::Timeout(self.lock_timeout))?;
            if let Some(conn) = self.is_ready(desired)? {
                return Ok(Some(conn));
            }
        }
        let _exclusive = lock.acquire(Mode::Exclusive, Wait::Timeout(self.lock_timeout))?;
        if let Some(conn) = self.is_ready(desired)? {
            return Ok(Some(conn));
        }
        let mut recover = litekeep_recover::Options::default()
            .lock_timeout(self.lock_timeout)
            .label(&self.label);
        for table in desired.iter().flat_map(|s| s.tables.keys()) {
            recover = recover.expect_table(table.clone());
        }
        litekeep_recover::recover(&self.path, &recover)?;
        let conn = self.connection("setting WAL")?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|source| Error::sqlite(&self.path, "setting WAL", source))?;
        drop(conn);
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::NoWal {
                path: self.path.clone(),
                mode,
            });
        }
        if let Some(sql) = &self.schema {
            litekeep_migrate::migrate(&self.path, sql, &self.migrate_options()?)?;
        }
        Ok(None)
    }

    fn migrate_options(&self) -> Result<litekeep_migrate::Options, Error> {
        let mut options = litekeep_migrate::Options::default()
            .lock_timeout(self.lock_timeout)
            .keep_undeclared(self.keep_undeclared);
        options.label = self.label.clone();
        options.extensions = self.extensions.clone();
        for hint in &self.renames {
            options = options.rename(hint)?;
        }
        Ok(options)
    }

    /// WAL on, no leftover to repair, and (when given) the desired schema in place: then the
    /// connection that checked.
    fn is_ready(&self, desired: Option<&Schema>) -> Result<Option<Connection>, Error> {
        let conn = self.connection("checking the schema")?;
        let sqlite = |source| Error::sqlite(&self.path, "checking the schema", source);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(None);
        }
        if let Some(desired) = desired {
            let current = self.read_schema(&conn)?;
            // Forward only: a file that moved past this schema is left as it is.
            if !litekeep_migrate::up_to_date(&current, desired, &self.migrate_options()?)?
                && !litekeep_migrate::superseded(&conn, desired.fingerprint())?
            {
                return Ok(None);
            }
        }
        let leftovers = litekeep_recover::scan(&conn)?;
        Ok((!leftovers.iter().any(|f| f.action.changes_anything())).then_some(conn))
    }

    /// The file's schema; a failure to read it says what it was (a full disk, say).
    fn read_schema(&self, conn: &Connection) -> Result<Schema, Error> {
        Schema::read(conn).map_err(|e| match e {
            litekeep_migrate::MigrateError::Sqlite { source, .. } => {
                Error::sqlite(&self.path, "reading the schema", source)
            }
            other => other.into(),
        })
    }

    fn connection(&self, op: &'static str) -> Result<Connection, Error> {
        let conn =
            Connection::open(&self.path).map_err(|source| Error::sqlite(&self.path, op, source))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|source| Error::sqlite(&self.path, op, source))?;
        for e in &self.extensions {
            e.load(&conn)?;
        }
        Ok(conn)
    }

    fn writer(&self, reuse: Option<Connection>) -> rusqlite::Result<Connection> {
        let conn = match reuse {
            Some(conn) => conn,
            None => {
                let conn = Connection::open(&self.path)?;
                for e in &self.extensions {
                    e.load_raw(&conn)?;
                }
                conn
            }
        };
        configure_writer(&conn, self.busy_timeout, self.durability)?;
        Ok(conn)
    }
}

/// Sets up the writer connection: its busy timeout, durability and foreign keys.
pub(crate) fn configure_writer(
    conn: &Connection,
    busy_timeout: Duration,
    durability: Durability,
) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    // See `Durability`: FULL syncs the WAL at every commit; NORMAL only at checkpoints,
    // durable against a crash of the process, not against a power cut.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
        durability.pragma()
    ))
}

/// Parses desired-schema DDL, once per distinct text in this process (parsing runs it through
/// an in-memory database, which costs more than the check it serves).
fn parsed(sql: &str, extensions: &[Extension]) -> Result<Arc<Schema>, Error> {
    use std::collections::HashMap;
    use std::sync::LazyLock;
    static CACHE: LazyLock<Mutex<HashMap<String, Arc<Schema>>>> = LazyLock::new(Mutex::default);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(schema) = cache.get(sql) {
        return Ok(schema.clone());
    }
    let schema = Arc::new(Schema::from_sql_with(sql, extensions)?);
    // A process uses a handful of schemas; a runaway caller must not grow this forever.
    if cache.len() >= 32 {
        cache.clear();
    }
    cache.insert(sql.to_owned(), schema.clone());
    Ok(schema)
}

/// Creates the file when missing (an empty file is an empty database) and returns its identity.
fn ensure_file(path: &Path) -> Result<registry::Key, Error> {
    let io = |op| {
        move |source| Error::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io("creating the database file"))?;
    let meta = std::fs::metadata(path).map_err(io("reading the database file's metadata"))?;
    Ok((meta.dev(), meta.ino()))
}
