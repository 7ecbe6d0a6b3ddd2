//! [`SqlService`]: the owner service of `litekeep serve`, over either engine — group commits of
//! writes, reads at once on readers, and transactions held by connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use litekeep_owner::{Batch, Call, ClientId, ConnId, Failure, FailureKind};

use super::body::{Mode, Request, Response, SqlError, Stmt, StmtResult, Tx};
use super::codes;
use super::sessions::{Sessions, Slot};

/// What `litekeep serve` needs of a database engine.
pub(crate) trait Engine: Send + Sync + 'static {
    /// A transaction held across calls: a connection of its own, inside `BEGIN`.
    type Session: Send + 'static;

    /// Runs a batch of write calls in one transaction, each call all or nothing, recording
    /// each outcome with it; answers every call it takes.
    fn run_batch(&self, batch: &mut Batch<'_, Request, Response>);

    /// Runs a read call's statements on one snapshot.
    fn read(&self, stmts: &[Stmt]) -> Response;

    /// Opens a transaction: a write one (`Mode::Write`) or a read-only snapshot.
    fn begin(&self, mode: Mode) -> Result<Self::Session, SqlError>;

    /// Runs statements in a transaction. On an error the transaction can only be rolled back.
    fn run_in(
        &self,
        session: &mut Self::Session,
        stmts: &[Stmt],
    ) -> Result<Vec<StmtResult>, SqlError>;

    /// Records `record` ((client, seq), encoded outcome) in the transaction, when given, and
    /// commits it; on an error it is rolled back.
    fn commit(
        &self,
        session: Self::Session,
        record: Option<(&ClientId, u64, &[u8])>,
    ) -> Result<(), SqlError>;

    /// Rolls a transaction back.
    fn rollback(&self, session: Self::Session);

    /// The outcome recorded for (client, seq), if any.
    fn recorded(&self, client: &ClientId, seq: u64) -> Option<Vec<u8>>;

    /// Lets go of the database (the server steps down; no call runs any more): what the next
    /// owner must be able to open. Default: nothing.
    fn close(&self) {}

    /// Why the engine can serve no more, once it cannot (DuckDB invalidated its database after
    /// a fatal error, say a failed `fsync`): the server steps down so that the next one opens
    /// the file afresh. Default: never.
    fn failed(&self) -> Option<String> {
        None
    }
}

/// Bounds on transactions held across calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TxLimits {
    /// Rolled back after this long without a call.
    pub idle: Duration,
    /// Rolled back after this long open.
    pub open: Duration,
}

/// The owner service of `litekeep serve`.
pub(crate) struct SqlService<E: Engine> {
    /// Set once the engine is open (after this process became the owner); an error when it
    /// could not be.
    engine: OnceLock<Result<E, String>>,
    sessions: Sessions<E::Session>,
    limits: TxLimits,
    started: Instant,
    /// Milliseconds since `started` of the last call or disconnection.
    last_active: AtomicU64,
    connections: AtomicUsize,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<E: Engine> SqlService<E> {
    pub fn new(limits: TxLimits) -> SqlService<E> {
        SqlService {
            engine: OnceLock::new(),
            sessions: Sessions::default(),
            limits,
            started: Instant::now(),
            last_active: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
        }
    }

    /// Sets the engine (or why it could not be opened); calls waiting for it go on.
    pub fn set_engine(&self, engine: Result<E, String>) {
        let _ = self.engine.set(engine);
    }

    /// The engine, once set; the owner's failure when it could not be opened.
    fn engine(&self) -> Result<&E, Failure> {
        self.engine
            .wait()
            .as_ref()
            .map_err(|why| Failure::new(FailureKind::Other, why.clone()))
    }

    /// Why the engine can serve no more, once it cannot ([`Engine::failed`]).
    pub fn failed(&self) -> Option<String> {
        match self.engine.get() {
            Some(Ok(engine)) => engine.failed(),
            _ => None,
        }
    }

    /// How many client connections are open.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// How long since the last call or disconnection.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// Rolls back the transactions idle or open past their bounds.
    pub fn reap(&self) {
        if let Some(Ok(engine)) = self.engine.get() {
            self.sessions
                .reap(self.limits.idle, self.limits.open, |s| engine.rollback(s));
        }
    }

    /// A call on connection `conn` that belongs to its transaction (or opens or ends one).
    fn in_session(&self, engine: &E, conn: ConnId, call: &mut Call<Request, Response>) {
        let key = (call.client, call.seq);
        let request = &call.request;
        if request.tx == Some(Tx::Commit) && call.retry && !self.sessions.has(conn) {
            // A commit sent again after its connection broke: the first copy may still be
            // committing on its old connection; its record says how it went.
            self.sessions.wait_finished(&key, self.limits.open);
            if let Some(recorded) = engine.recorded(&call.client, call.seq) {
                call.answer_recorded(recorded);
                return;
            }
        }
        let _running = self.sessions.running(key);
        let slot = self.sessions.slot(conn);
        let mut slot = lock(&slot);
        let outcome = self.step(engine, &mut slot, request, call.record.then_some(key));
        match outcome {
            Step::Answer(response) => call.answer(Ok(response)),
            Step::Recorded(bytes) => call.answer_recorded(bytes),
        }
    }

    /// One call's effect on its connection's transaction `slot`.
    fn step(
        &self,
        engine: &E,
        slot: &mut Option<Slot<E::Session>>,
        request: &Request,
        record: Option<(ClientId, u64)>,
    ) -> Step {
        let answer = |r: Response| Step::Answer(r);
        match (slot.take(), request.tx) {
            (None, Some(Tx::Begin)) => match engine.begin(request.mode) {
                Err(e) => answer(e.into()),
                Ok(mut session) => match engine.run_in(&mut session, &request.stmts) {
                    Ok(results) => {
                        let now = Instant::now();
                        *slot = Some(Slot::Open {
                            session,
                            write: request.mode == Mode::Write,
                            began: now,
                            used: now,
                        });
                        answer(results.into())
                    }
                    Err(e) => {
                        engine.rollback(session);
                        answer(e.into())
                    }
                },
            },
            (None, _) => answer(
                SqlError::litekeep(
                    codes::NO_TRANSACTION,
                    "no transaction is open on this connection (it was rolled back when its connection closed, or never begun); nothing of this call was applied",
                )
                .into(),
            ),
            (Some(Slot::Open { session, write, began, .. }), Some(Tx::Begin)) => {
                *slot = Some(Slot::Open {
                    session,
                    write,
                    began,
                    used: Instant::now(),
                });
                answer(
                    SqlError::litekeep(
                        codes::TRANSACTION_OPEN,
                        "a transaction is already open on this connection; commit or roll it back first (the open one is unchanged)",
                    )
                    .into(),
                )
            }
            (Some(Slot::Open { mut session, write, began, .. }), tx) => {
                match engine.run_in(&mut session, &request.stmts) {
                    Err(e) => {
                        engine.rollback(session);
                        let e = rolled_back(e);
                        if tx.is_none() {
                            *slot = Some(Slot::Aborted(e.message.clone()));
                        }
                        answer(e.into())
                    }
                    Ok(results) => match tx {
                        None => {
                            *slot = Some(Slot::Open {
                                session,
                                write,
                                began,
                                used: Instant::now(),
                            });
                            answer(results.into())
                        }
                        Some(Tx::Rollback) => {
                            engine.rollback(session);
                            answer(results.into())
                        }
                        Some(_) => self.commit(engine, session, write, results, record),
                    },
                }
            }
            (Some(Slot::Aborted(_)), Some(Tx::Rollback)) => {
                // Already rolled back: the statements are not run.
                answer(vec![StmtResult::default(); request.stmts.len()].into())
            }
            (Some(Slot::Aborted(why)), tx) => {
                if tx.is_none() || tx == Some(Tx::Begin) {
                    *slot = Some(Slot::Aborted(why.clone()));
                }
                answer(
                    SqlError::litekeep(
                        codes::TRANSACTION_ABORTED,
                        format!(
                            "{why}; nothing of this call was applied — end it with \"tx\": \"rollback\""
                        ),
                    )
                    .into(),
                )
            }
        }
    }

    /// Commits a write transaction with the record of the commit's outcome in it.
    fn commit(
        &self,
        engine: &E,
        session: E::Session,
        write: bool,
        results: Vec<StmtResult>,
        record: Option<(ClientId, u64)>,
    ) -> Step {
        let response = Response::from(results);
        let encoded = match litekeep_owner::encode_outcome(&Ok::<_, Failure>(&response)) {
            Ok(bytes) if write => Some(bytes),
            _ => None,
        };
        let to_record = record
            .as_ref()
            .zip(encoded.as_deref())
            .map(|((client, seq), bytes)| (client, *seq, bytes));
        match engine.commit(session, to_record) {
            Err(e) => Step::Answer(rolled_back(e).into()),
            Ok(()) => match encoded {
                Some(bytes) if to_record.is_some() => Step::Recorded(bytes),
                _ => Step::Answer(response),
            },
        }
    }
}

/// How a call in a transaction is answered.
enum Step {
    /// With this response.
    Answer(Response),
    /// With this recorded outcome (the commit's, as the record says it).
    Recorded(Vec<u8>),
}

/// The answer to a call that comes after the engine failed: not applied, for the next server.
fn leaving(why: &str) -> Failure {
    Failure::new(
        FailureKind::SteppingDown,
        format!(
            "the server's database failed ({why}); the server steps down so that the next one opens it afresh: this request was not applied, send it there"
        ),
    )
}

/// The error, saying that the transaction it happened in was rolled back.
fn rolled_back(mut e: SqlError) -> SqlError {
    e.message
        .push_str(" (the transaction was rolled back: nothing of it was applied)");
    e
}

impl<E: Engine> litekeep_owner::Service for SqlService<E> {
    type Request = Request;
    type Response = Response;

    fn run(&self, batch: &mut Batch<'_, Request, Response>) {
        self.touch();
        match self.engine() {
            Ok(engine) => match engine.failed() {
                Some(why) => batch.fail_all(&leaving(&why)),
                None => engine.run_batch(batch),
            },
            Err(f) => batch.fail_all(&f),
        }
    }

    fn records_outcomes(&self) -> bool {
        true
    }

    fn runs_direct(&self) -> bool {
        true
    }

    fn direct(&self, call: &mut Call<Request, Response>) -> bool {
        self.touch();
        let request = &call.request;
        let session_call = call.conn.is_some_and(|c| self.sessions.has(c))
            || request.tx.is_some()
            || request.in_tx;
        if !session_call && request.mode == Mode::Write {
            return false;
        }
        let engine = match self.engine() {
            Ok(engine) => engine,
            Err(f) => {
                call.answer(Err(f));
                return true;
            }
        };
        if let Some(why) = engine.failed() {
            call.answer(Err(leaving(&why)));
            return true;
        }
        let commit = request.tx == Some(Tx::Commit);
        match (session_call, call.conn) {
            (true, Some(conn)) => self.in_session(engine, conn, call),
            (true, None) => call.answer(Ok(SqlError::litekeep(
                codes::NO_TRANSACTION,
                "a transaction needs a connection of its own: send it over the socket",
            )
            .into())),
            (false, _) => {
                let response = engine.read(&request.stmts);
                call.answer(Ok(response));
            }
        }
        if let Some(why) = engine.failed() {
            // The engine failed in this call (or beside it): a read goes to the next server;
            // a commit may have reached the engine's log, and its retry there learns how it
            // went from the record.
            let mut f = leaving(&why);
            if commit {
                f = Failure::new(
                    FailureKind::SteppingDown,
                    format!(
                        "the server's database failed ({why}) while this transaction committed; the server steps down. The commit may have reached the database's log: send it again with the same seq as a retry, and the next server answers from its record (or says no transaction is open: nothing applied)"
                    ),
                )
                .applied(litekeep_owner::Applied::Unknown);
            }
            call.unanswer();
            call.answer(Err(f));
        }
        true
    }

    fn stepping_down(&self) {
        if let Some(Ok(engine)) = self.engine.get() {
            self.sessions.clear(|s| engine.rollback(s));
            engine.close();
        }
    }

    fn connected(&self, _conn: ConnId) {
        self.connections.fetch_add(1, Ordering::SeqCst);
        self.touch();
    }

    fn disconnected(&self, conn: ConnId) {
        if let Some(Slot::Open { session, .. }) = self.sessions.remove(conn)
            && let Some(Ok(engine)) = self.engine.get()
        {
            engine.rollback(session);
        }
        self.touch();
        self.connections.fetch_sub(1, Ordering::SeqCst);
    }
}
