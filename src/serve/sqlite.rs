//! The SQLite engine of `litekeep serve`: writes in the facade's group commit
//! ([`SqliteService`]: one `BEGIN IMMEDIATE` through the write gate, a savepoint per call, the
//! outcomes recorded in `_litekeep_calls`), reads at once on the pool's read-only connections
//! (WAL: they never wait for the writer), and transactions held across calls on connections
//! of their own.

use std::path::Path;
use std::time::Duration;

use litekeep_owner::{Batch, ClientId, Service as _};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};

use super::body::{Mode, Params, Request, Response, SqlError, Stmt, StmtResult};
use super::service::Engine;
use super::sql_text::{controls_transactions, first_keyword, transaction_control_refused};
use super::value::Value;
use super::{ResultLimit, codes};
use crate::service::SqliteService;
use crate::{Database, Durability};

/// A statement's failure: an error to answer with as data, or one that breaks the
/// transaction it ran in (busy, or SQLite rolled it back), which the caller must pass up.
enum Failed {
    Data(SqlError),
    Fatal(rusqlite::Error),
}

/// The SQLite engine.
pub(crate) struct SqliteEngine {
    db: Database,
    batch: SqliteService<Request, Response>,
    limit: ResultLimit,
    busy: Duration,
    durability: Durability,
}

impl SqliteEngine {
    /// The engine over `db`, whose writes commit in groups; `after_commit` is called after
    /// each group's commit.
    pub fn new(
        db: Database,
        limit: ResultLimit,
        busy: Duration,
        durability: Durability,
        after_commit: Option<std::sync::Arc<dyn Fn(usize) + Send + Sync>>,
    ) -> SqliteEngine {
        let mut builder = db
            .service(move |conn: &Connection, request: &Request| run_request(conn, request, limit));
        if let Some(hook) = after_commit {
            builder = builder.after_commit(move |n| hook(n));
        }
        SqliteEngine {
            batch: builder.into_service(),
            db,
            limit,
            busy,
            durability,
        }
    }
}

/// A write call in the group commit: its statements in a savepoint of their own, rolled back
/// whole when one fails (the error is the call's answer, as data).
fn run_request(
    conn: &Connection,
    request: &Request,
    limit: ResultLimit,
) -> rusqlite::Result<Response> {
    if request.tx.is_some() || request.in_tx {
        return Ok(SqlError::litekeep(
            codes::NO_TRANSACTION,
            "a transaction needs a connection of its own: send it over the socket",
        )
        .into());
    }
    conn.execute_batch("SAVEPOINT litekeep_request")?;
    match run_stmts(conn, &request.stmts, limit) {
        // Its rows would fail the batch's COMMIT, and every other request of the batch.
        Ok(_) if crate::deferred::violations(conn) => {
            conn.execute_batch("ROLLBACK TO litekeep_request; RELEASE litekeep_request")?;
            Ok(SqlError {
                index: -1,
                sql: "COMMIT".into(),
                message: "FOREIGN KEY constraint failed (a deferred foreign key, checked at \
                          COMMIT); the request was rolled back"
                    .into(),
                code: Some("SQLITE_CONSTRAINT_FOREIGNKEY".into()),
            }
            .into())
        }
        Ok(results) => {
            conn.execute_batch("RELEASE litekeep_request")?;
            Ok(results.into())
        }
        Err(Failed::Data(e)) => {
            conn.execute_batch("ROLLBACK TO litekeep_request; RELEASE litekeep_request")?;
            Ok(e.into())
        }
        Err(Failed::Fatal(e)) => Err(e),
    }
}

/// Runs statements in order; stops at the first that fails.
fn run_stmts(
    conn: &Connection,
    stmts: &[Stmt],
    limit: ResultLimit,
) -> Result<Vec<StmtResult>, Failed> {
    let mut budget = limit.bytes();
    let mut results = Vec::with_capacity(stmts.len());
    for (i, stmt) in stmts.iter().enumerate() {
        let result = run_stmt(conn, stmt, &mut budget).map_err(|f| match f {
            Failed::Data(e) => Failed::Data(e.at(i, &stmt.sql)),
            fatal => fatal,
        })?;
        results.push(result);
    }
    Ok(results)
}

/// Whether `e` breaks the transaction it happened in: busy (the whole transaction is run
/// again), or SQLite rolled the transaction back (a full disk, an I/O error).
fn fatal(conn: &Connection, e: rusqlite::Error) -> Failed {
    if crate::retry::is_transient(&e) {
        return Failed::Fatal(e);
    }
    if conn.is_autocommit() {
        return Failed::Fatal(e);
    }
    Failed::Data(sql_error(&e))
}

fn run_stmt(conn: &Connection, stmt: &Stmt, budget: &mut usize) -> Result<StmtResult, Failed> {
    let keyword = first_keyword(&stmt.sql);
    if controls_transactions(&keyword) {
        return Err(Failed::Data(transaction_control_refused(&keyword)));
    }
    let mut st = conn.prepare_cached(&stmt.sql).map_err(|e| fatal(conn, e))?;
    bind(&mut st, &stmt.params).map_err(Failed::Data)?;
    let columns: Vec<String> = st.column_names().map(str::to_owned).collect();
    let readonly = st.readonly();
    let (rowid_before, total_before) = (conn.last_insert_rowid(), conn.total_changes());
    let mut rows = Vec::new();
    let mut cursor = st.raw_query();
    loop {
        let row = match cursor.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => return Err(fatal(conn, e)),
        };
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let v = row.get_ref(i).map_err(|e| fatal(conn, e))?;
            values.push(value_of(v));
        }
        super::charge(budget, &values).map_err(Failed::Data)?;
        rows.push(values);
    }
    drop(cursor);
    let changed = !readonly && conn.total_changes() != total_before;
    let rowid = conn.last_insert_rowid();
    Ok(StmtResult {
        columns,
        rows,
        changes: if changed { conn.changes() } else { 0 },
        last_rowid: (changed && rowid != rowid_before).then_some(rowid),
    })
}

fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        // Text that is not UTF-8 (SQLite stores what it is given) comes as its bytes.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Blob(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// A parameter as SQLite takes it.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::List(_) | Value::Map(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "a list or map cannot be a SQLite parameter".into(),
                ));
            }
        }))
    }
}

fn bind(st: &mut rusqlite::Statement<'_>, params: &Params) -> Result<(), SqlError> {
    let count = st.parameter_count();
    let bound = |e: rusqlite::Error| SqlError::litekeep(codes::PARAMS, e.to_string());
    match params {
        Params::Positional(values) => {
            super::check_count(values.len(), count)?;
            for (i, v) in values.iter().enumerate() {
                st.raw_bind_parameter(i + 1, Param(v)).map_err(bound)?;
            }
        }
        Params::Named(map) => {
            let names: Vec<Option<String>> = (1..=count)
                .map(|i| st.parameter_name(i).map(str::to_owned))
                .collect();
            let values = super::by_name(map, &names)?;
            for (i, v) in values.into_iter().enumerate() {
                st.raw_bind_parameter(i + 1, Param(v)).map_err(bound)?;
            }
        }
    }
    Ok(())
}

/// SQLite's error as data: its message and its (extended) result code's name.
fn sql_error(e: &rusqlite::Error) -> SqlError {
    let (message, code) = match e {
        rusqlite::Error::SqliteFailure(f, message) => (
            message.clone().unwrap_or_else(|| f.to_string()),
            Some(code_name(f.extended_code)),
        ),
        other => (other.to_string(), None),
    };
    SqlError {
        index: -1,
        sql: String::new(),
        message,
        code,
    }
}

/// The name of a SQLite result code (`SQLITE_CONSTRAINT_UNIQUE`), or `SQLITE_<n>`.
fn code_name(extended: i32) -> String {
    const NAMES: &[(i32, &str)] = &[
        (1, "SQLITE_ERROR"),
        (2, "SQLITE_INTERNAL"),
        (3, "SQLITE_PERM"),
        (4, "SQLITE_ABORT"),
        (5, "SQLITE_BUSY"),
        (6, "SQLITE_LOCKED"),
        (7, "SQLITE_NOMEM"),
        (8, "SQLITE_READONLY"),
        (9, "SQLITE_INTERRUPT"),
        (10, "SQLITE_IOERR"),
        (11, "SQLITE_CORRUPT"),
        (12, "SQLITE_NOTFOUND"),
        (13, "SQLITE_FULL"),
        (14, "SQLITE_CANTOPEN"),
        (15, "SQLITE_PROTOCOL"),
        (17, "SQLITE_SCHEMA"),
        (18, "SQLITE_TOOBIG"),
        (19, "SQLITE_CONSTRAINT"),
        (20, "SQLITE_MISMATCH"),
        (21, "SQLITE_MISUSE"),
        (23, "SQLITE_AUTH"),
        (25, "SQLITE_RANGE"),
        (26, "SQLITE_NOTADB"),
        (275, "SQLITE_CONSTRAINT_CHECK"),
        (531, "SQLITE_CONSTRAINT_COMMITHOOK"),
        (787, "SQLITE_CONSTRAINT_FOREIGNKEY"),
        (1043, "SQLITE_CONSTRAINT_FUNCTION"),
        (1299, "SQLITE_CONSTRAINT_NOTNULL"),
        (1555, "SQLITE_CONSTRAINT_PRIMARYKEY"),
        (1811, "SQLITE_CONSTRAINT_TRIGGER"),
        (2067, "SQLITE_CONSTRAINT_UNIQUE"),
        (2323, "SQLITE_CONSTRAINT_VTAB"),
        (2579, "SQLITE_CONSTRAINT_ROWID"),
        (3091, "SQLITE_CONSTRAINT_DATATYPE"),
        (264, "SQLITE_READONLY_RECOVERY"),
        (1032, "SQLITE_READONLY_DBMOVED"),
        (517, "SQLITE_BUSY_SNAPSHOT"),
    ];
    let found = |code: i32| NAMES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n);
    found(extended)
        .or_else(|| found(extended & 0xff))
        .map_or_else(|| format!("SQLITE_{extended}"), str::to_owned)
}

/// A connection of a transaction held across calls.
pub(crate) struct SqliteSession(Connection);

impl SqliteEngine {
    fn open_session(&self, mode: Mode) -> rusqlite::Result<Connection> {
        let flags = match mode {
            Mode::Write => OpenFlags::SQLITE_OPEN_READ_WRITE,
            Mode::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(self.db.path(), flags)?;
        crate::builder::configure_writer(&conn, self.busy, self.durability)?;
        conn.execute_batch(match mode {
            Mode::Write => "BEGIN IMMEDIATE",
            Mode::Read => "BEGIN",
        })?;
        Ok(conn)
    }

    fn path(&self) -> &Path {
        self.db.path()
    }
}

impl Engine for SqliteEngine {
    type Session = SqliteSession;

    fn run_batch(&self, batch: &mut Batch<'_, Request, Response>) {
        self.batch.run(batch);
    }

    fn read(&self, stmts: &[Stmt]) -> Response {
        let limit = self.limit;
        let read = self.db.read(|conn| {
            conn.execute_batch("BEGIN")?;
            let ran = run_stmts(conn, stmts, limit);
            let _ = conn.execute_batch("COMMIT");
            match ran {
                Ok(results) => Ok(Response::from(results)),
                Err(Failed::Data(e)) => Ok(e.into()),
                Err(Failed::Fatal(e)) => Err(e),
            }
        });
        read.unwrap_or_else(|e| {
            SqlError {
                code: Some(codes::ENGINE.to_owned()),
                ..SqlError::litekeep(codes::ENGINE, e.to_string())
            }
            .into()
        })
    }

    fn begin(&self, mode: Mode) -> Result<SqliteSession, SqlError> {
        self.open_session(mode)
            .map(SqliteSession)
            .map_err(|e| SqlError {
                sql: "BEGIN".into(),
                message: format!("{}: {}", self.path().display(), sql_error(&e).message),
                ..sql_error(&e)
            })
    }

    fn run_in(
        &self,
        session: &mut SqliteSession,
        stmts: &[Stmt],
    ) -> Result<Vec<StmtResult>, SqlError> {
        run_stmts(&session.0, stmts, self.limit).map_err(|f| match f {
            Failed::Data(e) => e,
            Failed::Fatal(e) => sql_error(&e),
        })
    }

    fn commit(
        &self,
        session: SqliteSession,
        record: Option<(&ClientId, u64, &[u8])>,
    ) -> Result<(), SqlError> {
        let conn = &session.0;
        let committed = (|| {
            if let Some((client, seq, outcome)) = record {
                conn.execute_batch(crate::calls::CREATE)?;
                let record = (*client, seq, outcome.to_vec());
                crate::calls::record_all(conn, &[record], super::unix_now())?;
            }
            conn.execute_batch("COMMIT")
        })();
        committed.map_err(|e| {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            SqlError {
                sql: "COMMIT".into(),
                ..sql_error(&e)
            }
        })
    }

    fn rollback(&self, session: SqliteSession) {
        // Closing the connection rolls back whatever ROLLBACK could not.
        let _ = session.0.execute_batch("ROLLBACK");
    }

    fn recorded(&self, client: &ClientId, seq: u64) -> Option<Vec<u8>> {
        self.db
            .read(|conn| crate::calls::recorded(conn, client, seq))
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_are_named_extended_first() {
        assert_eq!(code_name(2067), "SQLITE_CONSTRAINT_UNIQUE");
        assert_eq!(code_name(19), "SQLITE_CONSTRAINT");
        assert_eq!(code_name(6410), "SQLITE_IOERR");
        assert_eq!(code_name(99), "SQLITE_99");
    }
}
