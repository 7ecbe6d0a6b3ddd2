//! The SQL body of `litekeep serve`: the request a client puts in a call's `body` and the
//! response the server puts in its reply's `ok`, each one CBOR map (see `PROTOCOL.md`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::value::Value;

/// One call's SQL: statements run in order, as one unit — all applied or none.
///
/// On the wire: `{"stmts": [{"sql": text, "params": [value, …] | {name: value, …}}, …],
/// "mode": "write" | "read", "tx": null | "begin" | "commit" | "rollback", "in_tx": bool}`;
/// `mode` defaults to `"write"`, `tx` to null, `in_tx` to false.
///
/// ```
/// use litekeep::serve::{Request, Value};
/// let r = Request::write("INSERT INTO docs (body) VALUES (?)", vec![Value::from("hi")]);
/// let bytes = litekeep::owner::wire::encode(&r).unwrap();
/// let back: Request = litekeep::owner::wire::decode(&bytes).unwrap();
/// assert_eq!(back, r);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The statements, run in order.
    pub stmts: Vec<Stmt>,
    /// Whether the call writes (the default) or only reads.
    #[serde(default)]
    pub mode: Mode,
    /// What the call does to its connection's transaction.
    #[serde(default)]
    pub tx: Option<Tx>,
    /// The client believes a transaction is open on this connection: the server fails the
    /// call (`litekeep_no_transaction`, nothing applied) when none is, instead of running it
    /// alone. A client that may reconnect in the middle of a transaction sets it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_tx: bool,
}

impl Request {
    /// A write of one statement.
    pub fn write(sql: impl Into<String>, params: Vec<Value>) -> Request {
        Request {
            stmts: vec![Stmt::new(sql, params)],
            mode: Mode::Write,
            tx: None,
            in_tx: false,
        }
    }

    /// A read of one statement.
    pub fn read(sql: impl Into<String>, params: Vec<Value>) -> Request {
        Request {
            mode: Mode::Read,
            ..Request::write(sql, params)
        }
    }

    /// The same request with `tx`.
    pub fn with_tx(mut self, tx: Tx) -> Request {
        self.tx = Some(tx);
        self
    }
}

/// One statement and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stmt {
    /// One SQL statement (a second one in the same text is an error).
    pub sql: String,
    /// Its parameters: by position (`?`, `?1`, `$1`), or by name (`:name`, `@name`, `$name`
    /// for SQLite; `$name` for DuckDB), the names given without their sign.
    #[serde(default)]
    pub params: Params,
}

impl Stmt {
    /// A statement with positional parameters.
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Stmt {
        Stmt {
            sql: sql.into(),
            params: Params::Positional(params),
        }
    }
}

/// A statement's parameters: a CBOR array (by position) or a map of names to values.
#[derive(Clone, Debug, PartialEq)]
pub enum Params {
    /// `[value, …]`: the first binds `?1`.
    Positional(Vec<Value>),
    /// `{name: value, …}`: names without their sign (`"id"` binds `:id`); a name given with
    /// its sign (`":id"`) is accepted too.
    Named(BTreeMap<String, Value>),
}

impl Default for Params {
    fn default() -> Params {
        Params::Positional(Vec::new())
    }
}

impl Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Params::Positional(v) => v.serialize(s),
            Params::Named(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Params, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of values, a map of names to values, or null")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Params, E> {
                Ok(Params::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<Params, E> {
                Ok(Params::default())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params, A::Error> {
                let mut v = Vec::new();
                while let Some(item) = seq.next_element()? {
                    v.push(item);
                }
                Ok(Params::Positional(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let mut m = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    m.insert(k, v);
                }
                Ok(Params::Named(m))
            }
        }
        d.deserialize_any(ParamsVisitor)
    }
}

/// Whether a call writes or only reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Runs in the owner's next group commit (SQLite: a savepoint of its transaction; DuckDB:
    /// its transaction), recorded for a retry. The default.
    #[default]
    Write,
    /// Runs at once on a reader (SQLite: a read-only connection of the pool; DuckDB: a
    /// read-only transaction of a connection of its own), beside other reads and the group
    /// commits; a statement that writes fails.
    Read,
}

/// What a call does to its connection's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tx {
    /// Opens a transaction on this connection before the call's statements (a write
    /// transaction for mode `write`, a read-only snapshot for mode `read`).
    Begin,
    /// Commits the connection's transaction after the call's statements.
    Commit,
    /// Rolls the connection's transaction back after the call's statements.
    Rollback,
}

/// What a call gives back: one result per statement, or the error of the statement that
/// failed (then none of the call's statements is applied).
///
/// On the wire: `{"results": [result, …]}` or `{"error": {"index", "sql", "message",
/// "code"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    /// Every statement ran.
    Results {
        /// One per statement, in order.
        results: Vec<StmtResult>,
    },
    /// A statement failed; nothing of the call was applied.
    Error {
        /// What failed.
        error: SqlError,
    },
}

/// One statement's result: its rows (a query) or how many rows it changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StmtResult {
    /// The result's column names (empty for a statement that returns no rows).
    pub columns: Vec<String>,
    /// The rows, each one value per column.
    pub rows: Vec<Vec<Value>>,
    /// How many rows the statement inserted, updated or deleted (0 for a query).
    pub changes: u64,
    /// SQLite: the rowid of the last row the statement inserted, when it inserted one; null
    /// otherwise, and always with DuckDB.
    pub last_rowid: Option<i64>,
}

/// A call's error as data: which statement failed and the engine's message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SqlError {
    /// The failing statement's position in the call (from 0); -1 when the error is not one
    /// statement's (the transaction's `COMMIT`, a call refused as a whole).
    pub index: i64,
    /// The failing statement's SQL (or what litekeep ran: `COMMIT`), or empty.
    pub sql: String,
    /// The engine's message, word for word, or litekeep's.
    pub message: String,
    /// A code to match on: SQLite's (`SQLITE_CONSTRAINT_UNIQUE`), DuckDB's error type
    /// (`Constraint`, `Catalog`, `Parser`, …), or litekeep's own (`litekeep_…`, see
    /// [`codes`](super::codes)); null when there is none.
    pub code: Option<String>,
}

impl SqlError {
    /// An error of litekeep's own with `code`, not about one statement.
    pub(crate) fn litekeep(code: &str, message: impl Into<String>) -> SqlError {
        SqlError {
            index: -1,
            sql: String::new(),
            message: message.into(),
            code: Some(code.to_owned()),
        }
    }

    /// The same error about statement `index`.
    pub(crate) fn at(mut self, index: usize, sql: &str) -> SqlError {
        self.index = i64::try_from(index).unwrap_or(i64::MAX);
        self.sql = sql.to_owned();
        self
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index >= 0 {
            write!(f, "statement {} ({:?}): ", self.index, self.sql)?;
        }
        f.write_str(&self.message)?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

impl From<SqlError> for Response {
    fn from(error: SqlError) -> Response {
        Response::Error { error }
    }
}

impl From<Vec<StmtResult>> for Response {
    fn from(results: Vec<StmtResult>) -> Response {
        Response::Results { results }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use litekeep_owner::wire::{decode, encode};

    #[test]
    fn a_minimal_request_takes_the_defaults() {
        #[derive(Serialize)]
        struct Minimal {
            stmts: Vec<BTreeMap<&'static str, &'static str>>,
        }
        let bytes = encode(&Minimal {
            stmts: vec![[("sql", "SELECT 1")].into()],
        })
        .unwrap();
        let r: Request = decode(&bytes).unwrap();
        assert_eq!((r.mode, r.tx, r.in_tx), (Mode::Write, None, false));
        assert_eq!(r.stmts[0].params, Params::Positional(vec![]));
    }

    #[test]
    fn named_parameters_and_responses_round_trip() {
        let mut r = Request::read("SELECT :a", vec![]).with_tx(Tx::Begin);
        r.stmts[0].params = Params::Named([("a".to_owned(), Value::Blob(vec![1]))].into());
        assert_eq!(decode::<Request>(&encode(&r).unwrap()).unwrap(), r);
        for resp in [
            Response::from(vec![StmtResult {
                columns: vec!["x".into()],
                rows: vec![vec![Value::Integer(1)]],
                changes: 0,
                last_rowid: None,
            }]),
            Response::from(SqlError::litekeep("litekeep_no_transaction", "none")),
        ] {
            assert_eq!(decode::<Response>(&encode(&resp).unwrap()).unwrap(), resp);
        }
    }

    /// The example of PROTOCOL.md's section 8.1, byte for byte.
    #[test]
    fn the_protocol_documents_example_bytes_are_these() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let body = encode(&Request {
            stmts: vec![Stmt {
                sql: "SELECT 1".into(),
                params: Params::default(),
            }],
            mode: Mode::Write,
            tx: None,
            in_tx: false,
        })
        .unwrap();
        // The encoder writes every key; the documented minimal form reads the same.
        let minimal = "a16573746d747381a16373716c6853454c4543542031";
        let bytes: Vec<u8> = (0..minimal.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&minimal[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            decode::<Request>(&bytes).unwrap(),
            decode::<Request>(&body).unwrap()
        );
        let frame = litekeep_owner::wire::call_frame(1, 1, false, &bytes);
        assert_eq!(
            hex(&frame),
            format!(
                "0000003d{}{minimal}",
                "a561746463616c6c63736571016b61636b65645f62656c6f7701657265747279f464626f647956"
            )
        );
    }

    #[test]
    fn an_unknown_mode_is_refused_by_name() {
        #[derive(Serialize)]
        struct Bad {
            stmts: Vec<u8>,
            mode: &'static str,
        }
        let e = decode::<Request>(
            &encode(&Bad {
                stmts: vec![],
                mode: "fast",
            })
            .unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("fast"), "{e}");
    }
}
