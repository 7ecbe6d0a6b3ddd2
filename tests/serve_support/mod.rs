//! What the `litekeep serve` tests share: the built binary, clients that start it on demand,
//! finding the server's pid, and stopping the servers a test started.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litekeep::serve::{Client, ClientOptions, EngineKind, Request, Response, Value};

/// The `litekeep` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_litekeep"))
}

/// Client options that start `litekeep serve` on demand (leaving after 3 s without a
/// client), with a 30 s timeout.
pub fn options(engine: EngineKind) -> ClientOptions {
    ClientOptions::new(engine)
        .start_server(Some(bin()))
        .serve_args(["--idle", "3s"])
        .timeout(Duration::from_secs(30))
}

/// A client of `db`, starting a server when none serves it.
pub fn client(db: &Path, engine: EngineKind) -> Client {
    Client::connect(db, options(engine)).unwrap_or_else(|e| panic!("connect: {e}"))
}

/// The pid holding the owner lock of `db`, if any.
pub fn owner_pid(db: &Path) -> Option<u32> {
    litekeep::lock::FileLock::open(litekeep::owner::owner_lock_path(db))
        .ok()?
        .holder()
        .map(|h| h.pid)
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a server this test
    // started (read from its owner lock), the caller's to end.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Waits, at most `bound`, until `what` holds.
pub fn wait_until(bound: Duration, mut what: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    what()
}

/// Whether process `pid` is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Stops the server of `db` when dropped (SIGTERM to the owner, which steps down), so that no
/// test leaves a server behind.
pub struct StopServer(pub PathBuf);

impl Drop for StopServer {
    fn drop(&mut self) {
        if let Some(pid) = owner_pid(&self.0) {
            signal(pid, libc::SIGTERM);
            wait_until(Duration::from_secs(10), || !alive(pid));
        }
    }
}

/// Runs one write statement; panics on any error.
pub fn write(client: &mut Client, sql: &str, params: Vec<Value>) -> litekeep::serve::StmtResult {
    client
        .execute(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs one read statement; panics on any error.
pub fn read(client: &mut Client, sql: &str, params: Vec<Value>) -> Vec<Vec<Value>> {
    client
        .query(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

/// The one integer a query returns.
pub fn count(client: &mut Client, sql: &str) -> i64 {
    match read(client, sql, vec![]).as_slice() {
        [row] => match row.as_slice() {
            [Value::Integer(n)] => *n,
            other => panic!("{sql}: {other:?}"),
        },
        other => panic!("{sql}: {other:?}"),
    }
}

/// The error as data of `response`, which must be one.
pub fn sql_error(response: Response) -> litekeep::serve::SqlError {
    match response {
        Response::Error { error } => error,
        other => panic!("wanted an error, got {other:?}"),
    }
}

/// A request of several write statements.
pub fn writes(stmts: &[(&str, Vec<Value>)]) -> Request {
    Request {
        stmts: stmts
            .iter()
            .map(|(sql, params)| litekeep::serve::Stmt::new(*sql, params.clone()))
            .collect(),
        mode: litekeep::serve::Mode::Write,
        tx: None,
        in_tx: false,
    }
}
