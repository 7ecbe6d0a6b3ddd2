//! `litekeep serve`: one process owns a database file — SQLite, or DuckDB with the `duckdb`
//! feature — and runs every other process's SQL, sent over the owner service's socket
//! (`litekeep_owner`) in a body of SQL statements and values. The protocol, for clients in any
//! language, is `PROTOCOL.md` at the root of the repository; [`Client`] is the Rust client.
//!
//! ```
//! use litekeep::serve::{Client, ClientOptions, EngineKind, Request, ServeOptions, Started, Value};
//! # let tmp = tempfile::tempdir().unwrap();
//! let db = tmp.path().join("notes.db");
//! // The owner: usually `litekeep serve --db notes.db --engine sqlite`, here in this process.
//! let Started::Serving(server) = litekeep::serve::start(&ServeOptions::new(&db, EngineKind::Sqlite))? else {
//!     unreachable!("nobody else serves a new file")
//! };
//! // Any other process (here the same one): no server is started, one serves already.
//! let mut client = Client::connect(&db, ClientOptions::new(EngineKind::Sqlite).start_server(None))?;
//! client.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)", vec![])?;
//! let r = client.execute("INSERT INTO notes (body) VALUES (?)", vec![Value::Blob(vec![0, 255])])?;
//! assert_eq!(r.last_rowid, Some(1));
//! let rows = client.query("SELECT body FROM notes", vec![])?.rows;
//! assert_eq!(rows, [[Value::Blob(vec![0, 255])]]);
//! drop(client);
//! server.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How requests run
//!
//! - **Writes** (`"mode": "write"`, the default) go through group commit: the requests waiting
//!   run in one transaction, each all or nothing, each one's outcome recorded in
//!   `_litekeep_calls` in the same transaction (so a retry after a failover gets the outcome
//!   instead of a second run), one commit, then the answers. SQLite: the facade's service —
//!   `BEGIN IMMEDIATE` through the write gate, a savepoint per request. DuckDB has no
//!   savepoints: a request that fails aborts the transaction, which is rolled back and run
//!   again without it (its error is recorded instead).
//! - **Reads** (`"mode": "read"`) run at once, on the connection's own thread, on one snapshot,
//!   beside other reads and the group commits: SQLite on the pool's read-only connections,
//!   DuckDB in a read-only transaction of a connection of its own (a clone of the owner's
//!   database instance: DuckDB runs them at once).
//! - **Transactions held across calls** (`"tx": "begin"` … `"commit"` / `"rollback"`) live on
//!   a connection of their own, tied to the client's socket connection: when it ends, the
//!   transaction is rolled back at once. A statement that fails in one rolls it back (DuckDB
//!   can do nothing else after an error); the connection then refuses calls until the client
//!   ends the transaction with `rollback`. A transaction idle for `tx_idle` or open for
//!   `tx_timeout` is rolled back too: a SQLite write transaction holds up every other writer.
//!   Other clients' reads never wait for one.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

mod body;
mod client;
#[cfg(feature = "duckdb")]
mod duckdb;
mod server;
mod service;
mod sessions;
mod sql_text;
mod sqlite;
mod value;

pub use body::{Mode, Params, Request, Response, SqlError, Stmt, StmtResult, Tx};
pub use client::{Client, ClientError, ClientOptions};
pub use server::{Ended, EngineKind, ServeError, ServeOptions, Server, Started, start};
pub use value::Value;

/// The program name `litekeep serve` gives in its welcome.
pub const PROGRAM: &str = "litekeep-serve";

/// The `code`s of the errors litekeep itself answers with, as data ([`SqlError::code`]).
pub mod codes {
    /// A call in a transaction (`"tx"`: `"commit"`/`"rollback"`, or `"in_tx": true`) on a
    /// connection that has none: it was rolled back when an earlier connection closed, or
    /// never begun. Nothing of the call was applied.
    pub const NO_TRANSACTION: &str = "litekeep_no_transaction";
    /// `"tx": "begin"` on a connection whose transaction is still open.
    pub const TRANSACTION_OPEN: &str = "litekeep_transaction_open";
    /// The connection's transaction was rolled back (a statement failed, or it was idle or
    /// open too long); calls fail until the client sends `"tx": "rollback"`.
    pub const TRANSACTION_ABORTED: &str = "litekeep_transaction_aborted";
    /// A statement that controls transactions (`BEGIN`, `COMMIT`, `SAVEPOINT`, …): refused,
    /// transactions are the request's `"tx"`.
    pub const TRANSACTION_STATEMENT: &str = "litekeep_transaction_statement";
    /// The parameters do not match the statement's (count, names, a list as a parameter).
    pub const PARAMS: &str = "litekeep_params";
    /// The result is larger than a reply may be (the server's maximum frame).
    pub const TOO_LARGE: &str = "litekeep_too_large";
    /// The engine failed outside any one statement (a read that stayed busy, say).
    pub const ENGINE: &str = "litekeep_engine";
}

/// The most bytes of values a response may carry: the frame limit, less room for the
/// envelope.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResultLimit(usize);

impl ResultLimit {
    pub fn new(max_frame: u32) -> ResultLimit {
        ResultLimit((max_frame as usize).saturating_sub(64 * 1024).max(1024))
    }

    pub fn bytes(self) -> usize {
        self.0
    }
}

/// About how many bytes `v` takes in CBOR.
fn encoded_size(v: &Value) -> usize {
    match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 9,
        Value::Text(t) => t.len() + 9,
        Value::Blob(b) => b.len() + 9,
        Value::List(items) => 9 + items.iter().map(encoded_size).sum::<usize>(),
        Value::Map(entries) => {
            9 + entries
                .iter()
                .map(|(k, v)| k.len() + 9 + encoded_size(v))
                .sum::<usize>()
        }
    }
}

/// Takes a row's size from what the response may still carry.
pub(crate) fn charge(budget: &mut usize, row: &[Value]) -> Result<(), SqlError> {
    let size = 1 + row.iter().map(encoded_size).sum::<usize>();
    match budget.checked_sub(size) {
        Some(left) => {
            *budget = left;
            Ok(())
        }
        None => Err(SqlError::litekeep(
            codes::TOO_LARGE,
            "the result is larger than one reply may carry (the server's --max-frame); select fewer rows (LIMIT/OFFSET, a narrower WHERE) or fewer columns, over several calls",
        )),
    }
}

/// Checks a positional parameter count.
pub(crate) fn check_count(given: usize, wanted: usize) -> Result<(), SqlError> {
    if given == wanted {
        return Ok(());
    }
    Err(SqlError::litekeep(
        codes::PARAMS,
        format!("the statement takes {wanted} parameter(s), the request gives {given}"),
    ))
}

/// The values of named parameters, in the statement's order: `names` are the statement's
/// (with or without their sign: `:id`, `$id`, `id`); `given` the request's.
pub(crate) fn by_name<'a>(
    given: &'a BTreeMap<String, Value>,
    names: &[Option<String>],
) -> Result<Vec<&'a Value>, SqlError> {
    let bare = |n: &str| n.trim_start_matches([':', '@', '$', '?']).to_owned();
    let mut used = Vec::new();
    let mut values = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else {
            return Err(SqlError::litekeep(
                codes::PARAMS,
                format!(
                    "parameter {} of the statement has no name; give the parameters as an array",
                    i + 1
                ),
            ));
        };
        let key = bare(name);
        let found = given.iter().find(|(k, _)| bare(k) == key).ok_or_else(|| {
            SqlError::litekeep(codes::PARAMS, format!("no value for the parameter {name}"))
        })?;
        used.push(found.0.clone());
        values.push(found.1);
    }
    if let Some(extra) = given.keys().find(|k| !used.contains(k)) {
        return Err(SqlError::litekeep(
            codes::PARAMS,
            format!("the statement has no parameter named {extra}"),
        ));
    }
    Ok(values)
}

/// Now, in unix seconds (the outcome records' time).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_parameters_match_with_or_without_their_sign() {
        let given: BTreeMap<String, Value> = [
            ("id".to_owned(), Value::Integer(1)),
            (":b".to_owned(), Value::Null),
        ]
        .into();
        let names = [Some(":b".to_owned()), Some("$id".to_owned())];
        let values = by_name(&given, &names).unwrap();
        assert_eq!(values, [&Value::Null, &Value::Integer(1)]);
        let e = by_name(&given, &[Some(":b".to_owned())]).unwrap_err();
        assert!(e.message.contains("no parameter named id"), "{e}");
        assert!(by_name(&given, &[None]).is_err());
    }

    #[test]
    fn a_response_is_bounded_by_the_frame_limit() {
        let mut budget = ResultLimit::new(0).bytes();
        assert_eq!(budget, 1024);
        let row = [Value::Blob(vec![0; 600])];
        assert!(charge(&mut budget, &row).is_ok());
        let e = charge(&mut budget, &row).unwrap_err();
        assert_eq!(e.code.as_deref(), Some(codes::TOO_LARGE));
    }
}
