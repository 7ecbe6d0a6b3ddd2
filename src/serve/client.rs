//! [`Client`]: a Rust client of `litekeep serve`, on one connection — what `PROTOCOL.md`
//! describes, in code: finding the owner, starting a server when there is none, calls with
//! sequence numbers, retries only where the outcome is recorded, transactions.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use litekeep_owner::wire::{self, Hello, PROTOCOL, Welcome};
use litekeep_owner::{Applied, CallError, ClientId, Connection, Failure, FailureKind, OwnerError};

use super::body::{Mode, Request, Response, SqlError, StmtResult, Tx};
use super::server::EngineKind;
use super::value::Value;
use super::{PROGRAM, codes};

/// `litekeep serve`'s exit status when the server it started died before it served, or did
/// not serve in time: try again.
const EXIT_AGAIN: i32 = 75;

/// How a [`Client`] connects and calls. Defaults: calls time out after 30 s; when no server
/// answers, `litekeep serve --db <db> --engine <engine>` is run (the binary named by the
/// `LITEKEEP` environment variable, else `litekeep` on `PATH`) and waited for.
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientOptions {
    engine: EngineKind,
    timeout: Duration,
    start: Option<PathBuf>,
    serve_args: Vec<OsString>,
}

impl ClientOptions {
    /// Options for a database of `engine`: the server found must serve it with that engine.
    pub fn new(engine: EngineKind) -> ClientOptions {
        let start = std::env::var_os("LITEKEEP")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("litekeep"), PathBuf::from);
        ClientOptions {
            engine,
            timeout: Duration::from_secs(30),
            start: Some(start),
            serve_args: Vec::new(),
        }
    }

    /// How long a call (connecting and starting a server included) may take.
    pub fn timeout(mut self, timeout: Duration) -> ClientOptions {
        self.timeout = timeout;
        self
    }

    /// The `litekeep` binary to start a server with when none answers; `None` never starts
    /// one (the client then waits for a server until the timeout).
    pub fn start_server(mut self, litekeep: Option<PathBuf>) -> ClientOptions {
        self.start = litekeep;
        self
    }

    /// More arguments for `litekeep serve` when this client starts it (`--idle 30s`, …).
    pub fn serve_args<I, S>(mut self, args: I) -> ClientOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.serve_args = args.into_iter().map(Into::into).collect();
        self
    }
}

/// What a [`Client`] call can fail with. `Display` is one line that names the database and
/// says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The engine refused a statement (or litekeep refused the call, [`super::codes`]);
    /// nothing of the call was applied.
    #[error("{}: {error}", path.display())]
    Sql {
        /// The database.
        path: PathBuf,
        /// Which statement, and the engine's message.
        error: SqlError,
    },
    /// The server answered with a failure of the owner protocol (a full queue, a refusal, …).
    #[error("{}: the server answered {failure}", path.display())]
    Failed {
        /// The database.
        path: PathBuf,
        /// What it said.
        failure: Failure,
    },
    /// No server answered within the timeout, and none could be started.
    #[error("{}: no litekeep server could be reached within {:.1} s: {why}", path.display(), waited.as_secs_f64())]
    Unreachable {
        /// The database.
        path: PathBuf,
        /// How long it tried.
        waited: Duration,
        /// The last obstacle.
        why: String,
    },
    /// `litekeep serve` was run to start a server and failed.
    #[error("{}: `{command}` failed ({status}): {stderr}", path.display())]
    StartFailed {
        /// The database.
        path: PathBuf,
        /// The command run.
        command: String,
        /// How it ended.
        status: String,
        /// What it said on stderr (its last lines).
        stderr: String,
    },
    /// No answer within the timeout: the request may or may not have been applied.
    #[error(
        "{}: no answer within {:.1} s; outcome unknown: read back what it would have written before sending it again",
        path.display(), waited.as_secs_f64()
    )]
    Timeout {
        /// The database.
        path: PathBuf,
        /// How long the call waited.
        waited: Duration,
    },
    /// The connection broke after the request was sent, and the server keeps no record to
    /// ask: the request may or may not have been applied.
    #[error("{}: the connection to the server broke after the request was sent; outcome unknown", path.display())]
    OutcomeUnknown {
        /// The database.
        path: PathBuf,
    },
    /// The connection broke during a transaction held across calls: the server rolled it
    /// back; nothing of it was applied.
    #[error("{}: the connection to the server broke during a transaction; it was rolled back, nothing of it was applied — begin it again", path.display())]
    TransactionLost {
        /// The database.
        path: PathBuf,
    },
    /// The server found serves the database with another engine.
    #[error("{}: the server (pid {pid}) serves it with {serving}, not {wanted}", path.display())]
    EngineMismatch {
        /// The database.
        path: PathBuf,
        /// The engine asked for.
        wanted: EngineKind,
        /// The server's.
        serving: String,
        /// The server's process id.
        pid: u32,
    },
    /// The server said something this client does not understand.
    #[error("{}: {message}", path.display())]
    Protocol {
        /// The database.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Finding the owner failed otherwise (its lock file, its directory, another protocol
    /// version).
    #[error(transparent)]
    Owner(#[from] OwnerError),
}

/// A client of `litekeep serve` on one connection: calls one at a time, in order.
/// Not `Sync`; one per thread.
///
/// A write whose connection broke after it was sent is sent again, with the same sequence
/// number, to the next server (which answers with its recorded outcome when it had been
/// applied); a call inside a transaction is not (the transaction died with its connection:
/// [`ClientError::TransactionLost`]), except a commit, whose outcome the next server knows.
pub struct Client {
    path: PathBuf,
    options: ClientOptions,
    conn: Option<Connection>,
    id: ClientId,
    seq: u64,
    in_tx: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.path)
            .field("engine", &self.options.engine)
            .field("server", &self.conn.as_ref().map(|c| c.welcome().pid))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the server of the database at `path`, starting one when none answers
    /// (see [`ClientOptions`]).
    ///
    /// # Errors
    /// [`ClientError::Unreachable`], [`ClientError::StartFailed`],
    /// [`ClientError::EngineMismatch`], or [`ClientError::Owner`] (a refusal of this user, another
    /// protocol version).
    pub fn connect(path: impl AsRef<Path>, options: ClientOptions) -> Result<Client, ClientError> {
        let mut id = [0u8; 16];
        id.copy_from_slice(&fastrand::u128(..).to_le_bytes());
        let mut client = Client {
            path: path.as_ref().to_path_buf(),
            options,
            conn: None,
            id,
            seq: 0,
            in_tx: false,
        };
        let deadline = Instant::now() + client.options.timeout;
        client.conn = Some(client.open(deadline)?);
        Ok(client)
    }

    /// The welcome of the server this client is connected to.
    pub fn server(&self) -> Option<&Welcome> {
        self.conn.as_ref().map(Connection::welcome)
    }

    /// Whether a transaction is open on this client's connection (as far as it knows).
    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    /// Sends `request` and gives the server's response: results, or an error as data.
    ///
    /// # Errors
    /// Everything but the error as data: see [`ClientError`].
    pub fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut request = request.clone();
        request.in_tx |= self.in_tx;
        let body = wire::encode(&request).map_err(|message| self.protocol(message))?;
        self.seq += 1;
        let seq = self.seq;
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        let mut sent = false;
        loop {
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => self.open(deadline)?,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = conn.call(seq, seq, sent, &body, left);
            match answer {
                Ok(outcome) => match outcome.into_result() {
                    Ok(bytes) => {
                        self.conn = Some(conn);
                        let response: Response =
                            wire::decode(&bytes).map_err(|m| self.protocol(m))?;
                        self.follow(&request, &response);
                        return Ok(response);
                    }
                    // Not applied: the next owner takes it. Or, when the owner's database
                    // failed in its commit, maybe applied: the next owner answers the retry
                    // from its record.
                    Err(f) if f.kind == FailureKind::SteppingDown => {
                        if f.applied == Applied::Unknown {
                            sent = true;
                            if request.tx == Some(Tx::Commit) {
                                self.in_tx = false;
                            }
                        }
                    }
                    Err(failure) => {
                        self.conn = Some(conn);
                        return Err(ClientError::Failed {
                            path: self.path.clone(),
                            failure,
                        });
                    }
                },
                Err(CallError::NotSent) => {}
                Err(CallError::Refused(f)) if f.kind == FailureKind::SteppingDown => {}
                Err(CallError::Lost) => {
                    sent = true;
                    if request.tx == Some(Tx::Commit) {
                        // The next server knows whether it was committed (its record).
                        self.in_tx = false;
                    } else if request.in_tx || request.tx.is_some() {
                        self.in_tx = false;
                        return Err(ClientError::TransactionLost {
                            path: self.path.clone(),
                        });
                    } else if !conn.welcome().records_outcomes {
                        return Err(ClientError::OutcomeUnknown {
                            path: self.path.clone(),
                        });
                    }
                }
                Err(CallError::Timeout) => {
                    return Err(ClientError::Timeout {
                        path: self.path.clone(),
                        waited: started.elapsed(),
                    });
                }
                Err(CallError::Refused(failure)) => {
                    return Err(ClientError::Failed {
                        path: self.path.clone(),
                        failure,
                    });
                }
                Err(other) => return Err(self.protocol(format!("{other:?}"))),
            }
        }
    }

    /// Runs one statement as a write and gives its result.
    ///
    /// # Errors
    /// [`ClientError::Sql`] with the engine's error; the others of [`Client::call`].
    pub fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<StmtResult, ClientError> {
        self.one(Request::write(sql, params))
    }

    /// Runs one statement as a read and gives its rows.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<StmtResult, ClientError> {
        self.one(Request::read(sql, params))
    }

    /// Opens a transaction on this connection: a write one, or (`Mode::Read`) a read-only
    /// snapshot. Calls run in it until [`Client::commit`] or [`Client::rollback`].
    ///
    /// # Errors
    /// As [`Client::call`], and [`ClientError::Sql`] (`litekeep_transaction_open`, or the
    /// engine's: busy past the server's wait).
    pub fn begin(&mut self, mode: Mode) -> Result<(), ClientError> {
        let request = Request {
            stmts: Vec::new(),
            mode,
            tx: Some(Tx::Begin),
            in_tx: false,
        };
        self.results(request).map(drop)
    }

    /// Commits this connection's transaction.
    ///
    /// # Errors
    /// As [`Client::call`]; [`ClientError::Sql`] when the commit failed (the transaction was
    /// rolled back) or there was none.
    pub fn commit(&mut self) -> Result<(), ClientError> {
        self.end(Tx::Commit)
    }

    /// Rolls this connection's transaction back.
    ///
    /// # Errors
    /// As [`Client::commit`].
    pub fn rollback(&mut self) -> Result<(), ClientError> {
        self.end(Tx::Rollback)
    }

    fn end(&mut self, tx: Tx) -> Result<(), ClientError> {
        let request = Request {
            stmts: Vec::new(),
            mode: Mode::Write,
            tx: Some(tx),
            in_tx: false,
        };
        self.results(request).map(drop)
    }

    fn one(&mut self, request: Request) -> Result<StmtResult, ClientError> {
        let mut results = self.results(request)?;
        results
            .pop()
            .ok_or_else(|| self.protocol("a response without a result".into()))
    }

    fn results(&mut self, request: Request) -> Result<Vec<StmtResult>, ClientError> {
        match self.call(&request)? {
            Response::Results { results } => Ok(results),
            Response::Error { error } => Err(ClientError::Sql {
                path: self.path.clone(),
                error,
            }),
        }
    }

    /// What a response means for this connection's transaction.
    fn follow(&mut self, request: &Request, response: &Response) {
        let failed = matches!(response, Response::Error { .. });
        match request.tx {
            Some(Tx::Begin) => self.in_tx = !failed || self.in_tx,
            Some(Tx::Commit | Tx::Rollback) => self.in_tx = false,
            None => {
                if let Response::Error { error } = response
                    && error.code.as_deref() == Some(codes::NO_TRANSACTION)
                {
                    self.in_tx = false;
                }
            }
        }
    }

    fn protocol(&self, message: String) -> ClientError {
        ClientError::Protocol {
            path: self.path.clone(),
            message,
        }
    }

    /// Connects to the server, starting one when none answers, until `deadline`.
    fn open(&mut self, deadline: Instant) -> Result<Connection, ClientError> {
        let started = Instant::now();
        let hello = Hello {
            protocol: PROTOCOL,
            client: self.id.to_vec(),
            program: format!("{PROGRAM}-client"),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            fingerprint: None,
        };
        let mut pause = Duration::from_millis(1);
        let mut last_start: Option<String> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut why =
                match Connection::open(&self.path, &hello, left.max(Duration::from_millis(1))) {
                    Ok(conn) => return self.check_engine(conn),
                    Err(OwnerError::Unreachable { why, .. }) => why,
                    Err(e) => return Err(e.into()),
                };
            if let Some(died) = &last_start {
                why = format!("{why}; the last server started died before it served: {died}");
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Unreachable {
                    path: self.path.clone(),
                    waited: started.elapsed(),
                    why,
                });
            }
            match self.options.start.clone() {
                // A server that died before it served (killed while starting, say): again.
                Some(litekeep) => match self.start_server(&litekeep)? {
                    Some(died) => {
                        last_start = Some(died);
                        std::thread::sleep(pause.min(left));
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    None => last_start = None,
                },
                None => {
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    fn check_engine(&self, conn: Connection) -> Result<Connection, ClientError> {
        let serving = conn
            .welcome()
            .info
            .get("engine")
            .cloned()
            .unwrap_or_default();
        if serving == self.options.engine.name() {
            return Ok(conn);
        }
        Err(ClientError::EngineMismatch {
            path: self.path.clone(),
            wanted: self.options.engine,
            serving,
            pid: conn.welcome().pid,
        })
    }

    /// Runs `litekeep serve --db <db> --engine <engine>` and waits for it: it returns once a
    /// server serves the database (the one it started, or another that won the election).
    /// `Some(why)` when the server it started died before it served (exit status 75): worth
    /// another try.
    fn start_server(&self, litekeep: &Path) -> Result<Option<String>, ClientError> {
        let mut command = Command::new(litekeep);
        command
            .arg("serve")
            .arg("--db")
            .arg(&self.path)
            .arg("--engine")
            .arg(self.options.engine.name())
            .args(&self.options.serve_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let shown = format!(
            "{} serve --db {} --engine {}",
            litekeep.display(),
            self.path.display(),
            self.options.engine
        );
        let output = command.output().map_err(|e| ClientError::StartFailed {
            path: self.path.clone(),
            command: shown.clone(),
            status: "not started".into(),
            stderr: format!("{e}; set LITEKEEP to the litekeep binary, or put it on PATH"),
        })?;
        if output.status.success() {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let stderr = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        if output.status.code() == Some(EXIT_AGAIN) {
            return Ok(Some(stderr));
        }
        Err(ClientError::StartFailed {
            path: self.path.clone(),
            command: shown,
            status: output.status.to_string(),
            stderr,
        })
    }
}
