//! [`Service`]: what the owner runs on the requests; [`Batch`] and [`Call`]: one group commit's
//! requests and their outcomes.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::failure::Failure;

/// A client's id: 16 random bytes, the same for all of one [`Node`](crate::Node)'s calls.
pub type ClientId = [u8; 16];

/// A connection's number at its owner: unique among the connections this process has served,
/// never given twice.
pub type ConnId = u64;

/// What the owner runs on the requests its clients send: the application's handler, batched.
///
/// Every process of a program joins with the same service (the owner runs the handler on the
/// client's request, so the requests are the program's own types). The owner hands the
/// service one [`Batch`] at a time: the requests waiting, at most `max_batch` of them, pulled
/// while the batch has run for less than `max_batch_time`. The service answers every call it
/// pulled ([`Call::answer`]); the answers are sent only after [`Service::run`] returns, so a
/// service that commits once per batch answers nothing before its commit.
///
/// ```
/// use litekeep_owner::{Batch, Service};
/// /// Doubles numbers: no state, nothing to commit.
/// struct Double;
/// impl Service for Double {
///     type Request = u64;
///     type Response = u64;
///     fn run(&self, batch: &mut Batch<'_, u64, u64>) {
///         let mut i = 0;
///         while let Some(call) = batch.get(i) {
///             let n = call.request * 2;
///             call.answer(Ok(n));
///             i += 1;
///         }
///     }
/// }
/// ```
pub trait Service: Send + Sync + 'static {
    /// The application's request.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// The application's response.
    type Response: Serialize + DeserializeOwned + Send + 'static;

    /// Runs one batch: answers every call it takes with [`Batch::get`].
    fn run(&self, batch: &mut Batch<'_, Self::Request, Self::Response>);

    /// Whether this service records each call's outcome (client id, sequence number, encoded
    /// outcome) durably with the call's effects, and answers a call it has recorded with the
    /// recorded outcome instead of running it again. A client whose owner dies after it sent a
    /// request sends it again to the next owner only when this is true; otherwise it reports
    /// [`OwnerError::OutcomeUnknown`](crate::OwnerError::OutcomeUnknown). Default: false.
    fn records_outcomes(&self) -> bool {
        false
    }

    /// Runs `call` at once, on the thread that brought it, outside the batches — or leaves it
    /// to the queue. A service that answers the call here ([`Call::answer`] or
    /// [`Call::answer_recorded`]) returns true; false sends it on to the next batch, as
    /// every call goes by default. For calls that must not wait for, or hold up, a group
    /// commit: reads, or a call that belongs to a transaction its connection holds
    /// ([`Call::conn`]). Calls of one connection come one at a time; calls of different
    /// connections come at once, on their own threads.
    ///
    /// A service that overrides this must say so with [`runs_direct`](Service::runs_direct):
    /// otherwise its clients' calls are read by one thread for all connections, and a call run
    /// here holds up every other connection's.
    ///
    /// A panic here fails the call (`panicked`, outcome unknown) and nothing else.
    fn direct(&self, call: &mut Call<Self::Request, Self::Response>) -> bool {
        let _ = call;
        false
    }

    /// Whether [`direct`](Service::direct) may run calls. When false (the default) the owner
    /// reads every client connection on one thread (epoll) and only queues their calls: a
    /// thread wake-up per group of calls instead of one per call. When true each connection
    /// has a thread of its own, on which its direct calls run. Asked once per ownership.
    fn runs_direct(&self) -> bool {
        false
    }

    /// In a client process, before a call goes to the owner: runs it here and now, if that
    /// takes no waiting for anyone, and returns true once it has answered it
    /// ([`Call::answer`]); or returns false, and the call goes to the owner as usual (an answer
    /// given before returning false is dropped). `batch` holds that one call, not recorded
    /// ([`Call::record`] is false: it was never sent anywhere, and nobody can ask for it again
    /// once this process is gone). For a service whose clients can do the work themselves
    /// while nobody else is doing any (a database whose write lock is free), so that an idle
    /// owner costs no round trip, and the calls meet at the owner only when they would have
    /// waited for each other. Called only for a call's first attempt, before it is sent, and
    /// only while the owner runs the same program version and schema fingerprint as this
    /// process (during a rolling deploy the calls go to the owner, whose handler is the
    /// newest).
    ///
    /// A panic here fails the call (`panicked`, outcome unknown). Default: false.
    fn try_here(&self, batch: &mut Batch<'_, Self::Request, Self::Response>) -> bool {
        let _ = batch;
        false
    }

    /// A client's connection was accepted (its hello answered with the welcome). Called on
    /// the connection's thread, before any of its calls. Default: nothing.
    fn connected(&self, conn: ConnId) {
        let _ = conn;
    }

    /// The owner is stepping down: it has stopped taking calls and answered those it took
    /// (within its bound), and is about to release the owner lock. The place to let go of
    /// what the next owner will need — a file only one process may open. Called once per
    /// ownership, on the thread that steps down; calls that come after it are refused
    /// (`stepping_down`) before they reach the service, but for connections ending
    /// ([`disconnected`](Service::disconnected)). Default: nothing.
    fn stepping_down(&self) {}

    /// A connection that was [`connected`](Service::connected) ended: its client hung up, it
    /// broke a rule of the protocol, or the owner is stepping down. Called once: the place to
    /// let go at once of what the service holds for it (a transaction). Default: nothing.
    ///
    /// A service that [runs calls directly](Service::runs_direct) hears it on the
    /// connection's thread, after the connection's last call was answered. Otherwise it
    /// hears it on the thread that reads every connection (or its stand-in, while a batch
    /// runs long), as soon as the connection is closed, which may be while a call of that
    /// connection still waits in the queue or runs in a batch (its answer then goes
    /// nowhere): such a service must expect a call of a connection it has heard end.
    fn disconnected(&self, conn: ConnId) {
        let _ = conn;
    }
}

/// A call's answer as the service gives it: a value, or the bytes of a recorded
/// [`Outcome`](crate::wire::Outcome).
pub(crate) enum Answer<Resp> {
    Value(Result<Resp, Failure>),
    Encoded(Vec<u8>),
}

/// One request in a batch.
pub struct Call<Req, Resp> {
    /// The calling client.
    pub client: ClientId,
    /// The client's sequence number for this request (a retry keeps it).
    pub seq: u64,
    /// The client will send no request numbered below this again.
    pub acked_below: u64,
    /// The client may have sent this request before (to this or an earlier owner): only then
    /// can an outcome be recorded for it already.
    pub retry: bool,
    /// The request.
    pub request: Req,
    /// Whether the outcome should be looked up and recorded: false for a call of the owner's
    /// own process that was never sent elsewhere (it cannot outlive the owner, so nobody could
    /// ask again), true for every other.
    pub record: bool,
    /// The connection the call came on; `None` for a call of the owner's own process.
    pub conn: Option<ConnId>,
    pub(crate) answer: Option<Answer<Resp>>,
}

impl<Req, Resp> Call<Req, Resp> {
    /// Answers the call.
    pub fn answer(&mut self, outcome: Result<Resp, Failure>) {
        self.answer = Some(Answer::Value(outcome));
    }

    /// Answers the call with a recorded outcome: the CBOR encoding of an
    /// [`Outcome`](crate::wire::Outcome), as [`encode_outcome`](crate::encode_outcome) made it.
    /// (A service that records outcomes stores these bytes and answers a retry with them.)
    pub fn answer_recorded(&mut self, outcome: Vec<u8>) {
        self.answer = Some(Answer::Encoded(outcome));
    }

    /// Whether the call has been answered.
    pub fn answered(&self) -> bool {
        self.answer.is_some()
    }

    /// Forgets the answer (a transaction that is run again answers again).
    pub fn unanswer(&mut self) {
        self.answer = None;
    }

    /// The answer given, if it is a value.
    pub fn outcome(&self) -> Option<&Result<Resp, Failure>> {
        match &self.answer {
            Some(Answer::Value(v)) => Some(v),
            _ => None,
        }
    }
}

/// The calls of one group commit: the service takes them one by one with [`Batch::get`].
pub struct Batch<'q, Req, Resp> {
    pub(crate) calls: Vec<Call<Req, Resp>>,
    pub(crate) pull: &'q mut dyn FnMut() -> Option<Call<Req, Resp>>,
    pub(crate) started: Instant,
    pub(crate) max_calls: usize,
    pub(crate) max_time: Duration,
}

impl<Req, Resp> Batch<'_, Req, Resp> {
    /// The `i`-th call of the batch. At `i == len()` it takes the next waiting request into
    /// the batch, if the batch's bounds allow (fewer than `max_batch` calls, less than
    /// `max_batch_time` since it began) and one is waiting; otherwise `None`. A service that
    /// runs its transaction again (after a transient error) walks the batch from 0 again.
    pub fn get(&mut self, i: usize) -> Option<&mut Call<Req, Resp>> {
        let room = self.calls.is_empty()
            || (self.calls.len() < self.max_calls && self.started.elapsed() < self.max_time);
        if i == self.calls.len()
            && room
            && let Some(call) = (self.pull)()
        {
            self.calls.push(call);
        }
        self.calls.get_mut(i)
    }

    /// How many calls the batch has taken so far.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether the batch has taken no call yet.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Answers every call taken with `failure` (a commit that failed); takes the first
    /// waiting call first if none was taken yet, so that the failure reaches somebody.
    pub fn fail_all(&mut self, failure: &Failure) {
        if self.calls.is_empty() {
            let _ = self.get(0);
        }
        for call in &mut self.calls {
            call.answer(Err(failure.clone()));
        }
    }
}
