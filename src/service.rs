//! [`Service`]: every process's writes of a database routed to one owner process, which runs
//! them in group commits, exactly once across failover (see `litekeep_owner` for election,
//! the socket and the protocol).
//!
//! The owner runs a batch of requests in one `BEGIN IMMEDIATE` transaction of its writer
//! connection, through the write gate ([`Database::write`]): each request in its own
//! `SAVEPOINT`, so that a request whose handler fails (or panics) is rolled back alone and
//! gets its own error; for each request of another process it records (client id, sequence
//! number, encoded outcome) in `_litekeep_calls` in the same transaction; then it commits
//! once, and only then answers. A client whose owner died after the commit and before the
//! answer sends the request again to the next owner, which finds the record and answers with
//! it instead of running the request twice. Readers keep reading the file directly.
//!
//! A batch whose transaction fails (an I/O error, a full disk) answers every call of it with a
//! `commit_failed` failure; the owner goes on serving. When nothing of the batch can have been
//! written — an error before the `COMMIT`, a write of the write-ahead log that failed or found
//! the disk full, an error that is not an I/O error — the failure says "not applied", and a
//! caller may send the request again. A `COMMIT` whose other file operations failed (its sync,
//! the update of the WAL index) may have left the whole transaction in the log, where a
//! recovery would find it if every process of the database stopped before the next commit; so
//! the owner runs the batch again at once, which writes over it: when that commits, the calls
//! are answered as usual, exactly once; when it fails too, they are answered "outcome unknown".
//!
//! A client may run a call itself ([`ServiceBuilder::here_when_free`], on by default with
//! [`Durability::Normal`](crate::Durability::Normal)): when the write gate is free at that
//! instant (tried, not queued for), nobody else is writing and there is nothing to batch the
//! call with, so the client runs it as a batch of one on its own writer connection, with the
//! same savepoint, errors and commit handling, and its own durability. Such a call is never
//! sent anywhere, so it is not recorded. When its transaction fails with nothing of it
//! written (before or at its `COMMIT`), the call goes to the owner instead; a `COMMIT` that
//! may be in the log is run again here, as the owner would. Only beside an owner of the same
//! program version and schema: during a rolling deploy every call goes to the owner.
//!
//! Lock order: the owner holds `<db>.owner.lock` for as long as it owns, and takes the write
//! gate around each batch; migrations take the schema lock, then the gate. No process waits
//! for the owner lock (it is only ever tried), so the order cannot deadlock; a call from
//! inside a write or a migration of the same database is refused (the owner would wait for
//! the gate that very write holds).

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use litekeep_owner::{Applied, Batch, Call, ClientId, Failure, FailureKind, Node, Options};
use rusqlite::Connection;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::calls;
use crate::database::Database;
use crate::error::Error;

/// The application's handler: runs one request on the owner's writer connection (or, for a
/// call a client runs itself, on the client's: see [`ServiceBuilder::here_when_free`]),
/// inside the request's own savepoint of the batch's transaction. Its error rolls back that
/// request alone; it must not `COMMIT`, `ROLLBACK` or `RELEASE` itself.
pub trait Handler<Req, Resp>:
    Fn(&Connection, &Req) -> rusqlite::Result<Resp> + Send + Sync + 'static
{
}

impl<Req, Resp, F> Handler<Req, Resp> for F where
    F: Fn(&Connection, &Req) -> rusqlite::Result<Resp> + Send + Sync + 'static
{
}

type AfterCommit = Arc<dyn Fn(usize) + Send + Sync>;
type HandlerFn<Req, Resp> = Arc<dyn Fn(&Connection, &Req) -> rusqlite::Result<Resp> + Send + Sync>;

/// The owner's side: what runs a batch of requests.
pub struct SqliteService<Req, Resp> {
    db: Database,
    handler: HandlerFn<Req, Resp>,
    created: AtomicBool,
    retention: Duration,
    /// Per client, below which sequence number its records were last forgotten.
    forgotten: Mutex<std::collections::HashMap<ClientId, u64>>,
    batches: AtomicU64,
    after_commit: Option<AfterCommit>,
    /// Whether a client runs a call itself when the write gate is free
    /// ([`ServiceBuilder::here_when_free`]).
    here: bool,
    _types: PhantomData<fn(Req) -> Resp>,
}

/// How a batch's transaction failed: surely with nothing of it written, or in its COMMIT in a
/// way that may have left the whole transaction in the write-ahead log.
enum Failed {
    Nothing(Error),
    Maybe(Error),
    /// A handler ended the batch's transaction itself (a `COMMIT` or `ROLLBACK` of its own,
    /// which it must not run): what it wrote may be committed.
    Broken(Error),
}

/// Whether SQLite itself rolled the transaction back on error `e` (a full disk, an I/O error,
/// no memory, an interrupt), as opposed to a handler that ended the transaction itself.
fn rolled_back_by_sqlite(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    e.sqlite_error().is_some_and(|e| {
        matches!(
            e.extended_code & 0xff,
            ffi::SQLITE_FULL | ffi::SQLITE_IOERR | ffi::SQLITE_NOMEM | ffi::SQLITE_INTERRUPT
        )
    })
}

/// Whether a COMMIT that failed with extended result code `code` may have left its whole
/// transaction in the write-ahead log, where a recovery (after every process of the database
/// stopped) would find it: any I/O error but a failed write of the log (the commit frame is the
/// last one written) — a failed sync, a failed update of the WAL index after the frames were
/// written. A full disk (a write refused) and errors that are not I/O errors (a deferred
/// constraint) leave nothing.
fn may_be_in_the_log(code: i32) -> bool {
    use rusqlite::ffi;
    (code & 0xff) == ffi::SQLITE_IOERR && code != ffi::SQLITE_IOERR_WRITE
}

/// How often (in batches) the owner forgets records older than the retention.
const SWEEP_EVERY: u64 = 1024;
/// How far a client's acknowledged sequence numbers move before its records are forgotten.
const FORGET_STEP: u64 = 32;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl<Req, Resp> SqliteService<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    /// Runs one call in its savepoint; adds its record to `records` (written with the batch's
    /// others). `Err` only for what breaks the batch's transaction (then nothing of the batch is
    /// applied).
    fn run_one(
        &self,
        tx: &Connection,
        call: &mut Call<Req, Resp>,
        records: &mut Vec<calls::Record>,
        broken: &mut bool,
    ) -> rusqlite::Result<()> {
        call.unanswer();
        if call.record
            && call.retry
            && let Some(outcome) = calls::recorded(tx, &call.client, call.seq)?
        {
            call.answer_recorded(outcome);
            return Ok(());
        }
        tx.prepare_cached("SAVEPOINT litekeep_call")?.execute([])?;
        let ran = catch_unwind(AssertUnwindSafe(|| (self.handler)(tx, &call.request)));
        if tx.is_autocommit() && !matches!(&ran, Ok(Err(e)) if rolled_back_by_sqlite(e)) {
            *broken = true;
            return Err(rusqlite::Error::ToSqlConversionFailure(format!(
                "{}: the handler ended the transaction itself (a COMMIT or ROLLBACK of its own, which it must not run)",
                self.db.path().display()
            ).into()));
        }
        let outcome = match ran {
            // Writes that break a deferred foreign key would fail the batch's COMMIT, and with
            // it every request of the batch: this request alone is rolled back.
            Ok(Ok(_)) if crate::deferred::violations(tx) => {
                tx.execute_batch("ROLLBACK TO litekeep_call; RELEASE litekeep_call")?;
                Err(Failure::new(
                    FailureKind::Handler,
                    format!(
                        "{}: the handler's writes break a deferred foreign key constraint \
                         (FOREIGN KEY constraint failed at COMMIT); they were rolled back",
                        self.db.path().display()
                    ),
                ))
            }
            Ok(Ok(resp)) => {
                tx.prepare_cached("RELEASE litekeep_call")?.execute([])?;
                Ok(resp)
            }
            Ok(Err(e)) => {
                if tx.is_autocommit() || crate::retry::is_transient(&e) {
                    // SQLite rolled the whole transaction back (a full disk, an I/O error) or
                    // it is to be run again: the batch fails or is retried as a whole.
                    return Err(e);
                }
                tx.execute_batch("ROLLBACK TO litekeep_call; RELEASE litekeep_call")?;
                Err(Failure::new(
                    FailureKind::Handler,
                    format!("{}: the handler failed: {e}", self.db.path().display()),
                ))
            }
            Err(panic) => {
                if tx.is_autocommit() {
                    return Err(rusqlite::Error::ExecuteReturnedResults);
                }
                tx.execute_batch("ROLLBACK TO litekeep_call; RELEASE litekeep_call")?;
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(Failure::new(
                    FailureKind::Panicked,
                    format!("the handler panicked on this request ({what}); it was rolled back"),
                ))
            }
        };
        if !call.record {
            call.answer(outcome);
            return Ok(());
        }
        let encoded = litekeep_owner::encode_outcome(&outcome).map_err(|e| {
            rusqlite::Error::ToSqlConversionFailure(format!("encoding an outcome: {e}").into())
        })?;
        records.push((call.client, call.seq, encoded));
        self.forget(tx, call)?;
        // The value itself: its reply is encoded from it (not decoded back from the record).
        call.answer(outcome);
        Ok(())
    }

    /// Runs the batch's calls in one transaction through [`Database::write`] and commits.
    /// With `wait` false only if it can begin at once: `Ok(false)`, nothing run or all rolled
    /// back, when it cannot.
    fn transaction(
        &self,
        batch: &mut Batch<'_, Req, Resp>,
        sweep: bool,
        wait: bool,
    ) -> Result<bool, Failed> {
        // Whether the calls of the last attempt all ran: then an error is the COMMIT's.
        let mut ran = false;
        let mut broken = false;
        let mut code = None;
        let mut body = |tx: &rusqlite::Transaction<'_>| {
            ran = false;
            broken = false;
            if !self.created.load(Ordering::Relaxed) {
                tx.execute_batch(calls::CREATE)?;
                // Room for the records' statements beside the application's own.
                tx.set_prepared_statement_cache_capacity(64);
            }
            if sweep {
                let before = unix_now() - self.retention.as_secs() as i64;
                calls::forget_older(tx, before)?;
            }
            let mut records = Vec::new();
            let mut i = 0;
            while let Some(call) = batch.get(i) {
                self.run_one(tx, call, &mut records, &mut broken)?;
                i += 1;
            }
            calls::record_all(tx, &records, unix_now())?;
            ran = true;
            Ok(())
        };
        let written = if wait {
            self.db.write_noting(&mut body, &mut code).map(|()| true)
        } else {
            self.db
                .write_if_free_noting(&mut body, &mut code)
                .map(|done| done.is_some())
        };
        written.map_err(|e| match code {
            _ if broken => Failed::Broken(e),
            Some(code) if ran && may_be_in_the_log(code) => Failed::Maybe(e),
            _ => Failed::Nothing(e),
        })
    }

    /// Runs a batch and answers its calls: see the module's docs. With `wait` false, only if
    /// its transaction can begin at once, and only if it does not fail with nothing of it
    /// written: false when it did not run, or failed so (nothing of it applied).
    fn run_batch(&self, batch: &mut Batch<'_, Req, Resp>, sweep: bool, wait: bool) -> bool {
        let mut written = match self.transaction(batch, sweep, wait) {
            Ok(true) => Ok(()),
            Ok(false) => return false,
            Err(Failed::Nothing(_)) if !wait => return false,
            Err(failed) => Err(failed),
        };
        // A commit that failed after its frames may have reached the log may come back after
        // a crash, records and all. Running the batch again, at once, writes over those frames;
        // when that commit succeeds, the batch is in exactly once.
        let mut unsure = None;
        if let Err(Failed::Maybe(e)) = &written {
            unsure = Some(e.to_string());
            written = self.transaction(batch, false, true).map(drop);
        }
        match written {
            Ok(()) => {
                self.created.store(true, Ordering::Relaxed);
                if wait && let Some(hook) = &self.after_commit {
                    hook(batch.len());
                }
            }
            Err(Failed::Nothing(e) | Failed::Maybe(e)) => {
                let f = match unsure {
                    None => Failure::new(
                        FailureKind::CommitFailed,
                        format!("{e}; nothing of this request's batch was applied"),
                    ),
                    Some(first) => Failure::new(
                        FailureKind::CommitFailed,
                        format!(
                            "the commit of this request's batch failed ({first}) after its writes may have reached the write-ahead log, and running the batch again failed too ({e}): the batch may come back if every process of this database stops before the next commit; outcome unknown — read back what the request would have written before you send it again"
                        ),
                    )
                    .applied(Applied::Unknown),
                };
                batch.fail_all(&f);
            }
            Err(Failed::Broken(e)) => {
                batch.fail_all(
                    &Failure::new(
                        FailureKind::CommitFailed,
                        format!(
                            "{e}: what the batch wrote before may be committed; outcome unknown — read back what the request would have written before you send it again"
                        ),
                    )
                    .applied(Applied::Unknown),
                );
            }
        }
        true
    }

    /// Forgets a client's records below its acknowledged mark, every [`FORGET_STEP`].
    fn forget(&self, tx: &Connection, call: &Call<Req, Resp>) -> rusqlite::Result<()> {
        let mut forgotten = self
            .forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = forgotten.get(&call.client).copied().unwrap_or(0);
        if call.acked_below < last + FORGET_STEP {
            return Ok(());
        }
        calls::forget_below(tx, &call.client, call.acked_below)?;
        if forgotten.len() > 65_536 {
            forgotten.clear();
        }
        forgotten.insert(call.client, call.acked_below);
        Ok(())
    }
}

impl<Req, Resp> litekeep_owner::Service for SqliteService<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Request = Req;
    type Response = Resp;

    fn run(&self, batch: &mut Batch<'_, Req, Resp>) {
        let sweep = self
            .batches
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY);
        self.run_batch(batch, sweep, true);
    }

    fn try_here(&self, batch: &mut Batch<'_, Req, Resp>) -> bool {
        self.here && self.run_batch(batch, false, false)
    }

    fn records_outcomes(&self) -> bool {
        true
    }
}

/// A database's writes routed through one owner process: see this module's docs.
///
/// ```
/// use litekeep::Database;
/// # let dir = std::env::temp_dir().join(format!("lk-doc-service-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let db = Database::builder(dir.join("notes.db"))
///     .schema("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
///     .open()?;
/// // Every process of the program joins with the same handler; one of them owns.
/// let notes = db
///     .service(|conn, body: &String| {
///         conn.execute("INSERT INTO notes (body) VALUES (?1)", [body])?;
///         Ok(conn.last_insert_rowid())
///     })
///     .version("1.0")
///     .join()?;
/// let id: i64 = notes.call("hello".to_owned())?;
/// let n: i64 = db.read(|c| c.query_row("SELECT count(*) FROM notes", [], |r| r.get(0)))?;
/// assert_eq!((id, n), (1, 1));
/// # drop(notes); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), litekeep::Error>(())
/// ```
pub struct Service<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    node: Node<SqliteService<Req, Resp>>,
}

impl<Req, Resp> Clone for Service<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    fn clone(&self) -> Self {
        Service {
            node: self.node.clone(),
        }
    }
}

impl<Req, Resp> Service<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    /// Runs `request` at the owner (in this process when it owns), in the owner's next group
    /// commit, and gives the handler's answer once it is committed.
    ///
    /// # Errors
    /// [`Error::Owner`] with the owner crate's error: the handler's failure
    /// ([`litekeep_owner::FailureKind::Handler`]), a failed commit, a timeout (outcome
    /// unknown), no owner reachable; [`Error::InsideWrite`] from inside a [`Database::write`]
    /// of the same database on this thread.
    pub fn call(&self, request: Req) -> Result<Resp, Error> {
        // The owner's batch would wait for the write this thread is in (in this process, or
        // for its gate in another): refused at once, before it can fail anyone else's batch.
        self.node
            .service()
            .db
            .refuse_inside_write("Service::call")?;
        Ok(self.node.call(request)?)
    }

    /// Reaches the owner now (connects, or becomes the owner when no process is), so that
    /// the first [`Service::call`] does not pay for it; see [`Node::connect`].
    ///
    /// # Errors
    /// [`Error::Owner`] when no owner can be reached within the service's timeout.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .schema("CREATE TABLE notes (body TEXT NOT NULL);")
    ///     .open()?;
    /// let notes = db
    ///     .service(|conn, body: &String| conn.execute("INSERT INTO notes (body) VALUES (?1)", [body]).map(drop))
    ///     .join()?;
    /// notes.connect()?;
    /// notes.call("hello".to_owned())?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn connect(&self) -> Result<(), Error> {
        Ok(self.node.connect()?)
    }

    /// Whether this process is the owner now.
    pub fn is_owner(&self) -> bool {
        self.node.is_owner()
    }

    /// The underlying node (election, generation, stepping down).
    pub fn node(&self) -> &Node<SqliteService<Req, Resp>> {
        &self.node
    }
}

/// How to join a database's [`Service`]: [`Database::service`] makes one.
#[must_use = "a service builder does nothing until .join()"]
pub struct ServiceBuilder<Req, Resp> {
    db: Database,
    handler: HandlerFn<Req, Resp>,
    options: Options,
    retention: Duration,
    after_commit: Option<AfterCommit>,
    here: Option<bool>,
}

impl<Req, Resp> ServiceBuilder<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    /// The program's version (dotted numbers; default "0"): a process of a higher version
    /// takes ownership from an owner of a lower one (see `litekeep_owner`'s "Rolling deploys").
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.options = self.options.with_version(version);
        self
    }

    /// Sets the owner crate's options wholesale (timeouts, batch bounds, queue depth,
    /// connection limit, whether this process may own).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// How long a call waits for its answer (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.timeout(timeout);
        self
    }

    /// How long the owner keeps a call's record for its retry (default 1 hour; keep it longer
    /// than any call's timeout).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Called in the owner after each batch's commit, before its answers go out, with the
    /// number of calls committed (for metrics). Not called for the calls a client runs itself
    /// ([`ServiceBuilder::here_when_free`]).
    pub fn after_commit(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.after_commit = Some(Arc::new(hook));
        self
    }

    /// Whether a client process runs a call itself, in its own transaction, when the write
    /// gate is free at that instant (tried, not queued for: only a writer that bypasses the
    /// gate can still make its `BEGIN IMMEDIATE` wait, up to `busy_timeout`), instead of
    /// sending it to the owner. A free gate means nobody else is writing, so there is nothing to batch the call
    /// with and a round trip to another process would only add to it; when the gate is busy
    /// the call goes to the owner and meets the others in its group commit.
    ///
    /// Default: on with [`Durability::Normal`](crate::Durability::Normal), where a commit
    /// costs less than a round trip to another process; off with
    /// [`Durability::Full`](crate::Durability::Full), where a call run here would pay an fsync
    /// of its own instead of sharing the owner's. Off too for a database without the write
    /// gate ([`Builder::write_gate`](crate::Builder::write_gate)): nothing then says whether
    /// another process writes.
    ///
    /// A call run here keeps the owner's semantics: its own error when the handler fails or
    /// panics (rolled back), a commit that failed answered as the owner's would be, applied
    /// exactly once (it is never sent anywhere, so nothing is recorded for it). What differs:
    /// it commits with this process's [`Durability`](crate::Durability), not the owner's; its
    /// response is the handler's value as it is, not passed through serde; the owner's
    /// [`after_commit`](ServiceBuilder::after_commit) does not count it. A transaction that
    /// cannot begin here (the database is read-only to this process, say) goes to the owner
    /// instead, as does one that fails with nothing of it written (a failed write of the log,
    /// a full disk). Calls go to the owner too while it runs another program version or
    /// schema than this process (a rolling deploy): the newest handler runs them.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let db = litekeep::Database::builder(tmp.path().join("app.db"))
    ///     .schema("CREATE TABLE notes (body TEXT NOT NULL);")
    ///     .open()?;
    /// // Every call goes to the owner, even when nobody else writes.
    /// let notes = db
    ///     .service(|conn, body: &String| conn.execute("INSERT INTO notes (body) VALUES (?1)", [body]).map(drop))
    ///     .here_when_free(false)
    ///     .join()?;
    /// notes.call("hello".to_owned())?;
    /// # Ok::<(), litekeep::Error>(())
    /// ```
    pub fn here_when_free(mut self, on: bool) -> Self {
        self.here = Some(on);
        self
    }

    /// Joins the database's service: becomes its owner if no process is, else a client.
    ///
    /// # Errors
    /// [`Error::Owner`] when the owner lock or the socket's directory cannot be opened, or
    /// this process became the owner and could not bind its socket.
    pub fn join(self) -> Result<Service<Req, Resp>, Error> {
        let fingerprint = *self
            .db
            .inner
            .fingerprint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut options = self.options.clone();
        if let Some(f) = fingerprint {
            options = options.fingerprint(f.to_string());
        }
        let path = self.db.path().to_path_buf();
        let node = Node::join(path, self.into_service(), options)?;
        Ok(Service { node })
    }

    /// The owner's side alone, for a service that wraps it (`litekeep serve`).
    pub(crate) fn into_service(self) -> SqliteService<Req, Resp> {
        let normal = self.db.inner.durability == crate::durability::Durability::Normal;
        let here = self.db.inner.gate.is_some() && self.here.unwrap_or(normal);
        SqliteService {
            db: self.db,
            handler: self.handler,
            created: AtomicBool::new(false),
            retention: self.retention,
            forgotten: Mutex::default(),
            batches: AtomicU64::new(0),
            after_commit: self.after_commit,
            here,
            _types: PhantomData,
        }
    }
}

impl Database {
    /// Starts joining this database's owner service with `handler` (see [`Service`]): every
    /// process of the program calls it with the same handler.
    pub fn service<Req, Resp>(&self, handler: impl Handler<Req, Resp>) -> ServiceBuilder<Req, Resp>
    where
        Req: Serialize + DeserializeOwned + Send + 'static,
        Resp: Serialize + DeserializeOwned + Send + 'static,
    {
        let program = std::env::args_os()
            .next()
            .map(std::path::PathBuf::from)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "litekeep".to_owned());
        ServiceBuilder {
            db: self.clone(),
            handler: Arc::new(handler),
            options: Options::new(program, "0"),
            retention: Duration::from_secs(3600),
            after_commit: None,
            here: None,
        }
    }
}
