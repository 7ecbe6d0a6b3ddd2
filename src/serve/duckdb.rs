//! The DuckDB engine of `litekeep serve` (feature `duckdb`): one database instance in the
//! owner, opened read-write once this process owns the file (DuckDB lets no other process
//! open it at all). Writes run in batches on one connection, in one transaction; reads, and
//! transactions held across calls, on connections of their own cloned from it (DuckDB runs
//! them at once, each on its own snapshot).
//!
//! DuckDB has no savepoints, and a failed statement leaves its transaction good only for a
//! rollback: so a batch in which a request fails is rolled back and run again without it, its
//! error recorded instead. Each request's outcome is recorded in `_litekeep_calls`, a table of
//! the DuckDB file, in the batch's transaction: a retry after a failover gets the outcome, never
//! a second run.
//!
//! The database is opened through DuckDB's C API (`duckdb_open_ext`) rather than
//! `duckdb::Connection::open`, for one reason: the `duckdb` crate's `prepare` runs every
//! statement of a text but the last one at once, so a request's `"SELECT 1; COMMIT"` would
//! commit the batch's transaction half-way. A parser connection of the same instance counts a
//! text's statements (`duckdb_extract_statements`) before anything is prepared.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use duckdb::ffi;
use duckdb::types::Value as Duck;
use litekeep_owner::{Applied, Batch, Call, ClientId, Failure, FailureKind};

use super::body::{Mode, Params, Request, Response, SqlError, Stmt, StmtResult};
use super::server::ServeOptions;
use super::service::Engine;
use super::sql_text::{
    controls_transactions, first_keyword, is_change, transaction_control_refused,
};
use super::value::Value;
use super::{ResultLimit, codes, unix_now};
use crate::duckdb_file::{self, DuckDbError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long opening waits for a previous owner (a process that is exiting) to let go of
/// DuckDB's own lock on the file.
const OPEN_PATIENCE: Duration = Duration::from_secs(10);
/// How often (in batches) records older than the retention are forgotten.
const SWEEP_EVERY: u64 = 1024;
/// How far a client's acknowledged sequence numbers move before its records are forgotten.
const FORGET_STEP: u64 = 32;
/// How long an outcome is kept for a retry.
const RETENTION: Duration = Duration::from_secs(3600);

const CREATE_CALLS: &str = "CREATE TABLE IF NOT EXISTS _litekeep_calls (
    client BLOB NOT NULL,
    seq BIGINT NOT NULL,
    outcome BLOB NOT NULL,
    written BIGINT NOT NULL,
    PRIMARY KEY (client, seq)
)";

/// A DuckDB database instance opened through the C API, and a connection of it that only
/// parses. Closed when the last holder lets it go (the engine and every session hold it).
struct RawDb {
    db: ffi::duckdb_database,
    parser: Mutex<ffi::duckdb_connection>,
}

// SAFETY: DuckDB's database handle may be used from any thread (connections are made from it
// under DuckDB's own locking); the parser connection is used under its mutex only; both are
// released once, in Drop.
unsafe impl Send for RawDb {}
// SAFETY: as above: shared use goes through DuckDB's locking or the mutex.
unsafe impl Sync for RawDb {}

impl Drop for RawDb {
    fn drop(&mut self) {
        let parser = self
            .parser
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        // SAFETY: both handles were made by duckdb_connect/duckdb_open_ext and are released
        // here once; no connection of the crate outlives this (each holds an Arc of it).
        unsafe {
            ffi::duckdb_disconnect(parser);
            ffi::duckdb_close(&mut self.db);
        }
    }
}

impl RawDb {
    /// Opens the file read-write, waiting up to [`OPEN_PATIENCE`] while another process
    /// holds DuckDB's lock on it (a previous owner that is exiting).
    fn open(path: &Path) -> Result<RawDb, DuckDbError> {
        duckdb_file::check_library_version()?;
        let failed = |message: String| {
            duckdb_file::opening_error(
                path,
                duckdb::Error::DuckDBFailure(
                    ffi::Error::new(ffi::duckdb_state_DuckDBError),
                    Some(message),
                ),
            )
        };
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| failed("the path holds a NUL byte".into()))?;
        let started = Instant::now();
        loop {
            let mut db: ffi::duckdb_database = ptr::null_mut();
            let mut error: *mut std::os::raw::c_char = ptr::null_mut();
            // SAFETY: the path is NUL-terminated; db and error are out-parameters DuckDB
            // fills; a null config asks for the defaults.
            let state = unsafe {
                ffi::duckdb_open_ext(c_path.as_ptr(), &mut db, ptr::null_mut(), &mut error)
            };
            if state == ffi::DuckDBSuccess {
                let mut parser: ffi::duckdb_connection = ptr::null_mut();
                // SAFETY: db is the open database just made; parser is an out-parameter.
                if unsafe { ffi::duckdb_connect(db, &mut parser) } != ffi::DuckDBSuccess {
                    // SAFETY: closing the database this function opened, once.
                    unsafe { ffi::duckdb_close(&mut db) };
                    return Err(failed(
                        "could not connect to the database just opened".into(),
                    ));
                }
                return Ok(RawDb {
                    db,
                    parser: Mutex::new(parser),
                });
            }
            let message = if error.is_null() {
                "DuckDB could not open it".to_owned()
            } else {
                // SAFETY: DuckDB gives a NUL-terminated message, valid until it is freed below.
                let m = unsafe { CStr::from_ptr(error) }
                    .to_string_lossy()
                    .into_owned();
                // SAFETY: the caller frees the message with duckdb_free, once, after the copy.
                unsafe { ffi::duckdb_free(error.cast()) };
                m
            };
            let locked = message.contains("Could not set lock on file");
            if locked && started.elapsed() < OPEN_PATIENCE {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            return Err(failed(message));
        }
    }

    /// A crate connection to this instance, which does not close it.
    fn connect(self: &Arc<Self>) -> duckdb::Result<duckdb::Connection> {
        // SAFETY: `db` is open, and stays open while the returned connection lives: every
        // holder of one keeps an Arc of this RawDb and drops the connection first.
        unsafe { duckdb::Connection::open_from_raw(self.db) }
    }

    /// How many statements `sql` holds, or DuckDB's parser error.
    fn count_statements(&self, sql: &str) -> Result<u64, String> {
        let text = CString::new(sql).map_err(|_| "the SQL holds a NUL byte".to_owned())?;
        let parser = lock(&self.parser);
        let mut extracted: ffi::duckdb_extracted_statements = ptr::null_mut();
        // SAFETY: the parser connection is open and used under its mutex; the text is
        // NUL-terminated; `extracted` is destroyed below whatever the outcome.
        let n = unsafe { ffi::duckdb_extract_statements(*parser, text.as_ptr(), &mut extracted) };
        let result = if n == 0 {
            // SAFETY: the error of the extraction just made, valid until it is destroyed.
            let e = unsafe { ffi::duckdb_extract_statements_error(extracted) };
            Err(if e.is_null() {
                "no statement".to_owned()
            } else {
                // SAFETY: a NUL-terminated string owned by `extracted`, copied before it goes.
                unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
            })
        } else {
            Ok(n)
        };
        // SAFETY: destroys the extraction made above, once.
        unsafe { ffi::duckdb_destroy_extracted(&mut extracted) };
        result
    }
}

/// A connection of the engine, with the instance it belongs to (dropped after it).
struct Conn {
    conn: duckdb::Connection,
    _db: Arc<RawDb>,
}

/// A transaction held across calls: a connection of its own, inside `BEGIN TRANSACTION`.
pub(crate) struct DuckSession(Conn);

/// The DuckDB engine.
pub(crate) struct DuckEngine {
    path: PathBuf,
    limit: ResultLimit,
    after_commit: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    /// The batches' connection; `None` once closed.
    main: Mutex<Option<Conn>>,
    /// Connections for reads, made as needed and kept when idle.
    readers: Mutex<Vec<Conn>>,
    /// The instance; `None` once closed.
    db: Mutex<Option<Arc<RawDb>>>,
    batches: AtomicU64,
    /// Texts known to hold one statement.
    single: Mutex<std::collections::HashSet<String>>,
    /// Per client, below which sequence number its records were last forgotten.
    forgotten: Mutex<HashMap<ClientId, u64>>,
    /// DuckDB's first fatal error: it has invalidated the database, which serves nothing more
    /// until it is opened again.
    fatal: OnceLock<String>,
}

/// Whether DuckDB's error `message` is a fatal one, after which the database instance is
/// invalidated ("FATAL Error: fsync failed!", "… database has been invalidated …").
fn is_fatal(message: &str) -> bool {
    message.starts_with("FATAL Error") || message.contains("database has been invalidated")
}

/// A DuckDB error as data: its message, and its type (the words before " Error: ") as code.
fn duck_error(e: &duckdb::Error) -> SqlError {
    let message = match e {
        duckdb::Error::DuckDBFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    };
    let code = message
        .split_once(" Error: ")
        .map(|(kind, _)| kind.to_owned())
        .filter(|k| k.len() < 40 && !k.contains('\n'));
    SqlError {
        index: -1,
        sql: String::new(),
        message,
        code,
    }
}

impl DuckEngine {
    /// Opens the DuckDB file of `options` (created when missing) and the outcome table.
    pub fn open(options: &ServeOptions) -> Result<DuckEngine, DuckDbError> {
        let path = options.db().to_path_buf();
        let raw = Arc::new(RawDb::open(&path)?);
        let failed = |source| DuckDbError::Open {
            path: path.clone(),
            source,
        };
        let main = Conn {
            conn: raw.connect().map_err(failed)?,
            _db: raw.clone(),
        };
        main.conn.execute_batch(CREATE_CALLS).map_err(failed)?;
        Ok(DuckEngine {
            limit: ResultLimit::new(options.max_frame),
            after_commit: options.after_commit.clone(),
            main: Mutex::new(Some(main)),
            readers: Mutex::new(Vec::new()),
            db: Mutex::new(Some(raw)),
            batches: AtomicU64::new(0),
            single: Mutex::default(),
            forgotten: Mutex::default(),
            fatal: OnceLock::new(),
            path,
        })
    }

    /// Notes a fatal error among `e`, if it is one; gives `e` back.
    fn noted(&self, e: SqlError) -> SqlError {
        if is_fatal(&e.message) {
            let _ = self.fatal.set(e.message.clone());
        }
        e
    }

    /// A connection of its own (an idle reader, or a new one).
    fn connection(&self) -> Result<Conn, SqlError> {
        if let Some(conn) = lock(&self.readers).pop() {
            return Ok(conn);
        }
        let closed = || SqlError::litekeep(codes::ENGINE, "the server is stepping down");
        let db = lock(&self.db).clone().ok_or_else(closed)?;
        let conn = db.connect().map_err(|e| duck_error(&e))?;
        Ok(Conn { conn, _db: db })
    }

    /// Gives a reader back (at most 32 are kept). After an error its transaction may be
    /// aborted while DuckDB says it is in none: it is rolled back unless `clean`.
    fn give_back(&self, conn: Conn, clean: bool) {
        if !clean || !conn.conn.is_autocommit() {
            let _ = conn.conn.execute_batch("ROLLBACK");
        }
        let mut readers = lock(&self.readers);
        if readers.len() < 32 && lock(&self.db).is_some() {
            readers.push(conn);
        }
    }

    /// Checks that `sql` is one statement (before it may be prepared: see the module docs),
    /// remembering the texts that were.
    fn check_single(&self, sql: &str) -> Result<(), SqlError> {
        if lock(&self.single).contains(sql) {
            return Ok(());
        }
        let raw = lock(&self.db)
            .clone()
            .ok_or_else(|| SqlError::litekeep(codes::ENGINE, "the server is stepping down"))?;
        match raw.count_statements(sql) {
            Ok(1) => {
                let mut single = lock(&self.single);
                if single.len() >= 4096 {
                    single.clear();
                }
                single.insert(sql.to_owned());
                Ok(())
            }
            Ok(n) => Err(SqlError {
                code: Some("Parser".into()),
                ..SqlError::litekeep(
                    "Parser",
                    format!(
                        "one statement per \"sql\", this text holds {n}: send them as several statements of the request"
                    ),
                )
            }),
            Err(message) => Err(duck_error(&duckdb::Error::DuckDBFailure(
                ffi::Error::new(ffi::duckdb_state_DuckDBError),
                Some(message),
            ))),
        }
    }

    /// Runs statements in order on `conn`; stops at the first that fails (after which a
    /// transaction `conn` is in can only be rolled back).
    fn run_stmts(
        &self,
        conn: &duckdb::Connection,
        stmts: &[Stmt],
    ) -> Result<Vec<StmtResult>, SqlError> {
        let mut budget = self.limit.bytes();
        let mut results = Vec::with_capacity(stmts.len());
        for (i, stmt) in stmts.iter().enumerate() {
            results.push(
                self.run_stmt(conn, stmt, &mut budget)
                    .map_err(|e| e.at(i, &stmt.sql))?,
            );
        }
        Ok(results)
    }

    fn run_stmt(
        &self,
        conn: &duckdb::Connection,
        stmt: &Stmt,
        budget: &mut usize,
    ) -> Result<StmtResult, SqlError> {
        let keyword = first_keyword(&stmt.sql);
        if controls_transactions(&keyword) {
            return Err(transaction_control_refused(&keyword));
        }
        self.check_single(&stmt.sql)?;
        let mut st = conn.prepare_cached(&stmt.sql).map_err(|e| duck_error(&e))?;
        bind(&mut st, &stmt.params)?;
        let changes = st.raw_execute().map_err(|e| duck_error(&e))?;
        let columns = st.column_names();
        let change = is_change(&keyword);
        if change && columns == ["Count"] {
            return Ok(StmtResult {
                changes: changes as u64,
                ..StmtResult::default()
            });
        }
        let mut rows = Vec::new();
        let mut cursor = st.raw_query();
        while let Some(row) = cursor.next().map_err(|e| duck_error(&e))? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let v: Duck = row.get(i).map_err(|e| duck_error(&e))?;
                values.push(value_of(v));
            }
            super::charge(budget, &values)?;
            rows.push(values);
        }
        Ok(StmtResult {
            changes: if change { rows.len() as u64 } else { 0 },
            columns,
            rows,
            last_rowid: None,
        })
    }

    /// One attempt at a batch: `failed` are the calls (by position) whose statements failed
    /// in an earlier attempt, answered with their error now.
    fn attempt(
        &self,
        conn: &duckdb::Connection,
        batch: &mut Batch<'_, Request, Response>,
        failed: &mut HashMap<usize, SqlError>,
    ) -> Attempt {
        if let Err(e) = conn.execute_batch("BEGIN TRANSACTION") {
            return Attempt::Failed(duck_error(&e).message);
        }
        let fail = |e: duckdb::Error| {
            let _ = conn.execute_batch("ROLLBACK");
            Attempt::Failed(duck_error(&e).message)
        };
        if self
            .batches
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            let before = unix_now() - RETENTION.as_secs() as i64;
            if let Err(e) = conn.execute("DELETE FROM _litekeep_calls WHERE written < ?", [before])
            {
                return fail(e);
            }
        }
        let mut i = 0;
        while let Some(call) = batch.get(i) {
            call.unanswer();
            if call.record && call.retry {
                match recorded(conn, &call.client, call.seq) {
                    Ok(Some(outcome)) => {
                        call.answer_recorded(outcome);
                        i += 1;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => return fail(e),
                }
            }
            let response = match failed.get(&i) {
                Some(e) => Response::from(e.clone()),
                None => match self.request(conn, &call.request) {
                    Ok(results) => Response::from(results),
                    Err(e) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        failed.insert(i, e);
                        return Attempt::Again;
                    }
                },
            };
            if let Err(e) = self.answer(conn, call, response) {
                return fail(e);
            }
            i += 1;
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => Attempt::Committed,
            Err(e) => fail(e),
        }
    }

    /// A write call's statements, refused when it asks for a transaction.
    fn request(
        &self,
        conn: &duckdb::Connection,
        request: &Request,
    ) -> Result<Vec<StmtResult>, SqlError> {
        if request.tx.is_some() || request.in_tx {
            return Err(SqlError::litekeep(
                codes::NO_TRANSACTION,
                "a transaction needs a connection of its own: send it over the socket",
            ));
        }
        self.run_stmts(conn, &request.stmts)
    }

    /// Answers `call` with `response`, recorded in the batch's transaction when it is to be.
    fn answer(
        &self,
        conn: &duckdb::Connection,
        call: &mut Call<Request, Response>,
        response: Response,
    ) -> duckdb::Result<()> {
        if !call.record {
            call.answer(Ok(response));
            return Ok(());
        }
        let encoded = litekeep_owner::encode_outcome(&Ok::<_, Failure>(&response))
            .map_err(|e| duckdb::Error::ToSqlConversionFailure(e.into()))?;
        conn.execute(
            "INSERT INTO _litekeep_calls (client, seq, outcome, written) VALUES (?, ?, ?, ?)",
            duckdb::params![&call.client[..], call.seq as i64, &encoded, unix_now()],
        )?;
        self.forget(conn, call)?;
        call.answer_recorded(encoded);
        Ok(())
    }

    /// Forgets a client's records below its acknowledged mark, every [`FORGET_STEP`].
    fn forget(
        &self,
        conn: &duckdb::Connection,
        call: &Call<Request, Response>,
    ) -> duckdb::Result<()> {
        let mut forgotten = lock(&self.forgotten);
        let last = forgotten.get(&call.client).copied().unwrap_or(0);
        if call.acked_below < last + FORGET_STEP {
            return Ok(());
        }
        conn.execute(
            "DELETE FROM _litekeep_calls WHERE client = ? AND seq < ?",
            duckdb::params![&call.client[..], call.acked_below as i64],
        )?;
        if forgotten.len() > 65_536 {
            forgotten.clear();
        }
        forgotten.insert(call.client, call.acked_below);
        Ok(())
    }
}

/// How an attempt at a batch ended.
enum Attempt {
    Committed,
    /// A call's statements failed: run the batch again, answering it with its error.
    Again,
    /// The transaction failed as a whole (its commit, the outcome table): nothing applied.
    Failed(String),
}

/// Runs a statement of litekeep's own that returns nothing, prepared once per connection.
fn run_cached(conn: &duckdb::Connection, sql: &str) -> Result<(), SqlError> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(drop)
        .map_err(|e| duck_error(&e))
}

fn recorded(
    conn: &duckdb::Connection,
    client: &ClientId,
    seq: u64,
) -> duckdb::Result<Option<Vec<u8>>> {
    let mut st =
        conn.prepare_cached("SELECT outcome FROM _litekeep_calls WHERE client = ? AND seq = ?")?;
    let mut rows = st.query(duckdb::params![&client[..], seq as i64])?;
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

/// A parameter as DuckDB takes it.
fn duck_value(v: &Value) -> Result<Duck, SqlError> {
    Ok(match v {
        Value::Null => Duck::Null,
        Value::Integer(i) => Duck::BigInt(*i),
        Value::Real(f) => Duck::Double(*f),
        Value::Text(t) => Duck::Text(t.clone()),
        Value::Blob(b) => Duck::Blob(b.clone()),
        Value::List(_) | Value::Map(_) => {
            return Err(SqlError::litekeep(
                codes::PARAMS,
                format!(
                    "a {} cannot be a parameter; pass null, an integer, a float, text or bytes",
                    v.kind()
                ),
            ));
        }
    })
}

fn bind(st: &mut duckdb::Statement<'_>, params: &Params) -> Result<(), SqlError> {
    let count = st.parameter_count();
    let values: Vec<&Value> = match params {
        Params::Positional(values) => {
            super::check_count(values.len(), count)?;
            values.iter().collect()
        }
        Params::Named(map) => {
            let names: Vec<Option<String>> =
                (1..=count).map(|i| st.parameter_name(i).ok()).collect();
            super::by_name(map, &names)?
        }
    };
    for (i, v) in values.into_iter().enumerate() {
        st.raw_bind_parameter(i + 1, duck_value(v)?)
            .map_err(|e| SqlError::litekeep(codes::PARAMS, e.to_string()))?;
    }
    Ok(())
}

/// A DuckDB value as the body carries it (see PROTOCOL.md's values).
fn value_of(v: Duck) -> Value {
    let int =
        |i: i128| i64::try_from(i).map_or_else(|_| Value::Text(i.to_string()), Value::Integer);
    match v {
        Duck::Null => Value::Null,
        Duck::Boolean(b) => Value::Integer(i64::from(b)),
        Duck::TinyInt(i) => Value::Integer(i.into()),
        Duck::SmallInt(i) => Value::Integer(i.into()),
        Duck::Int(i) => Value::Integer(i.into()),
        Duck::BigInt(i) => Value::Integer(i),
        Duck::HugeInt(i) => int(i),
        Duck::UHugeInt(i) => {
            i64::try_from(i).map_or_else(|_| Value::Text(i.to_string()), Value::Integer)
        }
        Duck::UTinyInt(i) => Value::Integer(i.into()),
        Duck::USmallInt(i) => Value::Integer(i.into()),
        Duck::UInt(i) => Value::Integer(i.into()),
        Duck::UBigInt(i) => int(i.into()),
        Duck::Float(f) => Value::Real(f.into()),
        Duck::Double(f) => Value::Real(f),
        Duck::Decimal(d) => Value::Real(d.to_string().parse().unwrap_or(f64::NAN)),
        Duck::Timestamp(unit, t) => Value::Text(timestamp(unit.to_micros(t))),
        Duck::Text(t) => Value::Text(t),
        Duck::Blob(b) | Duck::Geometry(b) => Value::Blob(b),
        Duck::Date32(days) => Value::Text(date(days.into())),
        Duck::Time64(unit, t) => Value::Text(time_of_day(unit.to_micros(t))),
        Duck::Interval {
            months,
            days,
            nanos,
        } => Value::Text(format!(
            "{months} months {days} days {} microseconds",
            nanos / 1000
        )),
        Duck::List(items) | Duck::Array(items) => {
            Value::List(items.into_iter().map(value_of).collect())
        }
        Duck::Enum(t) => Value::Text(t),
        Duck::Struct(fields) => Value::Map(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_of(v.clone())))
                .collect(),
        ),
        Duck::Map(entries) => Value::List(
            entries
                .iter()
                .map(|(k, v)| Value::List(vec![value_of(k.clone()), value_of(v.clone())]))
                .collect(),
        ),
        Duck::Union(v) => value_of(*v),
        #[allow(unreachable_patterns)]
        other => Value::Text(format!("{other:?}")),
    }
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (the proleptic Gregorian calendar).
fn date(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `HH:MM:SS[.ffffff]` of microseconds since midnight.
fn time_of_day(micros: i64) -> String {
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let text = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        text
    } else {
        format!("{text}.{frac:06}")
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` of microseconds since 1970-01-01 00:00:00.
fn timestamp(micros: i64) -> String {
    let day = micros.div_euclid(86_400_000_000);
    format!(
        "{} {}",
        date(day),
        time_of_day(micros.rem_euclid(86_400_000_000))
    )
}

impl Engine for DuckEngine {
    type Session = DuckSession;

    fn run_batch(&self, batch: &mut Batch<'_, Request, Response>) {
        let main = lock(&self.main);
        let Some(conn) = main.as_ref() else {
            batch.fail_all(&Failure::new(
                FailureKind::SteppingDown,
                "the server is stepping down; the request goes to the next one",
            ));
            return;
        };
        let mut failed = HashMap::new();
        loop {
            match self.attempt(&conn.conn, batch, &mut failed) {
                Attempt::Committed => {
                    if let Some(hook) = &self.after_commit {
                        hook(batch.len());
                    }
                    return;
                }
                Attempt::Again => {}
                Attempt::Failed(why) if is_fatal(&why) => {
                    // DuckDB invalidated the database in this batch, maybe in its COMMIT after
                    // the log was written: whether the batch is in shows when the file is
                    // opened again. The clients send the calls again (as retries) to the next
                    // server, which answers each from its record or runs it.
                    let _ = self.fatal.set(why.clone());
                    let f = Failure::new(
                        FailureKind::SteppingDown,
                        format!(
                            "{}: DuckDB failed ({why}) and must open the file again; this server steps down. This request's batch may have reached DuckDB's log: send it again with the same seq as a retry, and the next server answers from its record or runs it",
                            self.path.display()
                        ),
                    )
                    .applied(Applied::Unknown);
                    batch.fail_all(&f);
                    return;
                }
                Attempt::Failed(why) => {
                    let f = Failure::new(
                        FailureKind::CommitFailed,
                        format!(
                            "{}: {why}; nothing of this request's batch was applied",
                            self.path.display()
                        ),
                    );
                    batch.fail_all(&f);
                    return;
                }
            }
        }
    }

    fn read(&self, stmts: &[Stmt]) -> Response {
        let conn = match self.connection() {
            Ok(c) => c,
            Err(e) => return self.noted(e).into(),
        };
        let ran = run_cached(&conn.conn, "BEGIN TRANSACTION READ ONLY")
            .and_then(|()| self.run_stmts(&conn.conn, stmts))
            .and_then(|results| run_cached(&conn.conn, "COMMIT").map(|()| results))
            .map_err(|e| self.noted(e));
        self.give_back(conn, ran.is_ok());
        ran.map_or_else(Response::from, Response::from)
    }

    fn begin(&self, mode: Mode) -> Result<DuckSession, SqlError> {
        let conn = self.connection().map_err(|e| self.noted(e))?;
        let begin = match mode {
            Mode::Write => "BEGIN TRANSACTION",
            Mode::Read => "BEGIN TRANSACTION READ ONLY",
        };
        conn.conn.execute_batch(begin).map_err(|e| {
            self.noted(SqlError {
                sql: begin.into(),
                ..duck_error(&e)
            })
        })?;
        Ok(DuckSession(conn))
    }

    fn run_in(
        &self,
        session: &mut DuckSession,
        stmts: &[Stmt],
    ) -> Result<Vec<StmtResult>, SqlError> {
        self.run_stmts(&session.0.conn, stmts)
            .map_err(|e| self.noted(e))
    }

    fn commit(
        &self,
        session: DuckSession,
        record: Option<(&ClientId, u64, &[u8])>,
    ) -> Result<(), SqlError> {
        let conn = &session.0.conn;
        let committed = (|| {
            if let Some((client, seq, outcome)) = record {
                conn.execute(
                    "INSERT INTO _litekeep_calls (client, seq, outcome, written) VALUES (?, ?, ?, ?)",
                    duckdb::params![&client[..], seq as i64, outcome, unix_now()],
                )?;
            }
            conn.execute_batch("COMMIT")
        })();
        let result = committed.map_err(|e| {
            self.noted(SqlError {
                sql: "COMMIT".into(),
                ..duck_error(&e)
            })
        });
        self.give_back(session.0, result.is_ok());
        result
    }

    fn rollback(&self, session: DuckSession) {
        self.give_back(session.0, false);
    }

    fn recorded(&self, client: &ClientId, seq: u64) -> Option<Vec<u8>> {
        let conn = self.connection().ok()?;
        let found = recorded(&conn.conn, client, seq);
        self.give_back(conn, found.is_ok());
        found.ok().flatten()
    }

    fn failed(&self) -> Option<String> {
        self.fatal.get().cloned()
    }

    fn close(&self) {
        lock(&self.readers).clear();
        lock(&self.main).take();
        lock(&self.db).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_written_as_duckdb_writes_them() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_724), "2024-01-02");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(time_of_day(3_723_000_001), "01:02:03.000001");
        assert_eq!(timestamp(86_400_000_000 + 1_000_000), "1970-01-02 00:00:01");
    }

    #[test]
    fn error_codes_are_duckdbs_error_types() {
        let e = duckdb::Error::DuckDBFailure(
            ffi::Error::new(ffi::duckdb_state_DuckDBError),
            Some("Constraint Error: Duplicate key \"id: 5\"".into()),
        );
        assert_eq!(duck_error(&e).code.as_deref(), Some("Constraint"));
    }
}
