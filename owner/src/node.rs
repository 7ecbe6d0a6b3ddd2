//! [`Node`]: one process's membership of a file's service — its owner, or a client of it.

use std::collections::BTreeSet;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use litekeep_lock::{FileLock, LockError, LockGuard, Wait};

use crate::address::{Place, first_line};
use crate::client::{CallError, Conn};
use crate::connection::{Reach, reach};
use crate::error::OwnerError;
use crate::failure::FailureKind;
use crate::options::{Options, compare_versions};
use crate::queue::{Direct, Finished, Queue};
use crate::server::Server;
use crate::service::{Batch, Call, ClientId, Service};
use crate::wire::{self, Hello, PROTOCOL, Welcome};

/// The owner lock's label: this, then the generation.
const LABEL: &str = "litekeep owner gen=";

/// How many generations' socket names, taken by something other than a socket, an owner
/// passes over before it gives up.
const TAKEN_NAMES: u32 = 8;

/// After handing over to a newer version, how long a process leaves the election to it.
const HANDED_OVER_PAUSE: Duration = Duration::from_secs(2);

/// After an owner said it steps down, how long its clients leave the election to its
/// successor.
const STEPPING_DOWN_PAUSE: Duration = Duration::from_millis(250);

/// The generation a holder record or label names, if it is an owner's.
pub(crate) fn generation_in(text: &str) -> Option<u64> {
    let rest = &text[text.find(LABEL)? + LABEL.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One process's membership of the service of a file: the owner, which runs every process's
/// requests through the [`Service`], or a client, which sends them to the owner over its
/// socket and elects a new owner when it finds none.
///
/// Cheap to clone; `Send + Sync`. Dropping the last clone of the owner's node steps down:
/// it stops taking requests, answers those it took, removes its socket and releases the owner
/// lock.
///
/// ```
/// use litekeep_owner::{Batch, Node, Options, Service};
/// struct Echo;
/// impl Service for Echo {
///     type Request = String;
///     type Response = String;
///     fn run(&self, batch: &mut Batch<'_, String, String>) {
///         let mut i = 0;
///         while let Some(call) = batch.get(i) {
///             let r = call.request.to_uppercase();
///             call.answer(Ok(r));
///             i += 1;
///         }
///     }
/// }
/// # let dir = std::env::temp_dir().join(format!("lk-doc-node-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let node = Node::join(dir.join("app.db"), Echo, Options::new("echo", "1.0"))?;
/// assert!(node.is_owner(), "the first process to join owns");
/// assert_eq!(node.call("hi".to_owned())?, "HI");
/// # drop(node); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), litekeep_owner::OwnerError>(())
/// ```
pub struct Node<S: Service> {
    inner: Arc<NodeInner<S>>,
}

impl<S: Service> Clone for Node<S> {
    fn clone(&self) -> Self {
        Node {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Service> std::fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("path", &self.inner.place.file)
            .field("owner", &self.is_owner())
            .finish_non_exhaustive()
    }
}

struct Owned<S: Service> {
    server: Server<S>,
    queue: Arc<Queue<S>>,
    guard: LockGuard,
    generation: u64,
}

enum Role<S: Service> {
    Client,
    Owner(Owned<S>),
}

pub(crate) struct NodeInner<S: Service> {
    me: Weak<NodeInner<S>>,
    place: Place,
    lock: FileLock,
    service: Arc<S>,
    options: Options,
    client: ClientId,
    seq: AtomicU64,
    in_flight: Mutex<BTreeSet<u64>>,
    role: Mutex<Role<S>>,
    pool: Mutex<Vec<Conn>>,
    /// Not before this instant may this process take the owner lock (it just handed over).
    pause_until: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a call goes.
enum Target<S: Service> {
    Local(Arc<Queue<S>>),
    Remote(Conn),
}

impl<S: Service> Node<S> {
    /// Joins the service of the file at `path` (its owner lock is `<path>.owner.lock`, its
    /// socket `<path>.owner-<generation>.sock`): becomes the owner if no process is, else a
    /// client of the owner. The file itself is not opened; its directory must exist.
    ///
    /// # Errors
    /// [`OwnerError::Io`] when the directory cannot be opened; [`OwnerError::Lock`] when the
    /// owner lock file cannot be opened; becoming the owner failing (its socket cannot be
    /// bound) is [`OwnerError::Io`] too.
    pub fn join(
        path: impl AsRef<Path>,
        service: S,
        options: Options,
    ) -> Result<Node<S>, OwnerError> {
        let path = path.as_ref();
        let (place, lock) = crate::connection::open_place(path)?;
        let candidate = options.candidate;
        let inner = Arc::new_cyclic(|me| NodeInner {
            me: me.clone(),
            place,
            lock,
            service: Arc::new(service),
            options,
            client: client_id(),
            seq: AtomicU64::new(1),
            in_flight: Mutex::new(BTreeSet::new()),
            role: Mutex::new(Role::Client),
            pool: Mutex::new(Vec::new()),
            pause_until: Mutex::new(None),
        });
        if candidate {
            inner.try_own()?;
        }
        Ok(Node { inner })
    }

    /// Runs `request` through the service: in this process when it is the owner, else at the
    /// owner, electing a new one (possibly this process) when the owner is gone. A request
    /// whose owner died after it was sent is sent again, with the same client id and sequence
    /// number, only to an owner that records outcomes (it answers with the recorded outcome
    /// when the request had been applied).
    ///
    /// # Errors
    /// [`OwnerError::Failed`] with the owner's [`Failure`](crate::Failure) (the handler's
    /// error, a full queue, …); [`OwnerError::Timeout`] when no answer came within the
    /// options' timeout (outcome unknown); [`OwnerError::OutcomeUnknown`] when the owner died
    /// after the request was sent and does not record outcomes; [`OwnerError::Unreachable`]
    /// when no owner could be reached or become one; [`OwnerError::Codec`] when the request
    /// does not encode or the response does not decode.
    pub fn call(&self, request: S::Request) -> Result<S::Response, OwnerError> {
        let inner = &self.inner;
        let seq = inner.seq.fetch_add(1, Ordering::Relaxed);
        lock(&inner.in_flight).insert(seq);
        let result = inner.call(seq, request);
        lock(&inner.in_flight).remove(&seq);
        result
    }

    /// Reaches the owner now, within the options' timeout, so that the first call does not
    /// pay for it: connects and shakes hands with the owner (the connection is kept for the
    /// next call), or becomes the owner when no process is and this one is a candidate. For a
    /// process that wants to know at start-up that the service answers, or many processes
    /// starting at once (their first calls would otherwise all wait on connecting).
    ///
    /// # Errors
    /// As [`Node::call`] when no owner can be reached: [`OwnerError::Unreachable`],
    /// [`OwnerError::ProtocolVersion`], or [`OwnerError::Failed`] with a `refused` failure.
    ///
    /// ```
    /// # use litekeep_owner::{Batch, Node, Options, Service};
    /// # struct Echo;
    /// # impl Service for Echo {
    /// #     type Request = u64;
    /// #     type Response = u64;
    /// #     fn run(&self, batch: &mut Batch<'_, u64, u64>) {
    /// #         let mut i = 0;
    /// #         while let Some(call) = batch.get(i) {
    /// #             let n = call.request;
    /// #             call.answer(Ok(n));
    /// #             i += 1;
    /// #         }
    /// #     }
    /// # }
    /// # let dir = std::env::temp_dir().join(format!("lk-doc-connect-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let node = Node::join(dir.join("app.db"), Echo, Options::new("echo", "1.0"))?;
    /// node.connect()?; // the owner here: nobody else was
    /// assert!(node.is_owner());
    /// # drop(node); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), litekeep_owner::OwnerError>(())
    /// ```
    pub fn connect(&self) -> Result<(), OwnerError> {
        let inner = &self.inner;
        match inner.target(Instant::now() + inner.options.timeout)? {
            Target::Remote(conn) => lock(&inner.pool).push(conn),
            Target::Local(_) => {}
        }
        Ok(())
    }

    /// Whether this process is the owner now.
    pub fn is_owner(&self) -> bool {
        matches!(*lock(&self.inner.role), Role::Owner(_))
    }

    /// This process's generation while it owns.
    pub fn generation(&self) -> Option<u64> {
        match &*lock(&self.inner.role) {
            Role::Owner(o) => Some(o.generation),
            Role::Client => None,
        }
    }

    /// The owner this client last spoke to, as its welcome described it (`None` while this
    /// process owns or before its first remote call).
    pub fn owner(&self) -> Option<Welcome> {
        lock(&self.inner.pool).last().map(|c| c.welcome.clone())
    }

    /// The file the service is for.
    pub fn path(&self) -> &Path {
        &self.inner.place.file
    }

    /// The service this process runs when it owns.
    pub fn service(&self) -> &S {
        &self.inner.service
    }

    /// Steps down if this process owns: stops taking requests, answers those it took (waiting
    /// at most the call timeout), removes its socket, releases the owner lock. The node stays
    /// a client and may be elected again. Whether it owned.
    pub fn step_down(&self) -> bool {
        self.inner.step_down(None)
    }
}

/// 16 random bytes (from the kernel; from the clock and pid if it has none to give).
fn client_id() -> ClientId {
    let mut id = [0u8; 16];
    if rustix::rand::getrandom(&mut id, rustix::rand::GetRandomFlags::empty())
        .is_ok_and(|n| n == 16)
    {
        return id;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    id[..12].copy_from_slice(&nanos.to_le_bytes()[..12]);
    id[12..].copy_from_slice(&std::process::id().to_le_bytes());
    id
}

impl<S: Service> NodeInner<S> {
    fn acked_below(&self, current: u64) -> u64 {
        lock(&self.in_flight).first().copied().unwrap_or(current)
    }

    fn failed(&self, failure: crate::Failure) -> OwnerError {
        OwnerError::Failed {
            path: self.place.file.clone(),
            failure,
        }
    }

    fn codec(&self, what: &'static str, message: String) -> OwnerError {
        OwnerError::Codec {
            path: self.place.file.clone(),
            what,
            message,
        }
    }

    fn call(&self, seq: u64, request: S::Request) -> Result<S::Response, OwnerError> {
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        let mut request = Some(request);
        let mut body: Option<Vec<u8>> = None;
        // Once sent to another process, the request may have been applied there: wherever it
        // runs next (this process included, once it owns) its record is looked up.
        let mut sent = false;
        loop {
            match self.target(deadline)? {
                Target::Local(queue) => {
                    let req = match (request.take(), &body) {
                        (Some(r), _) => r,
                        (None, Some(b)) => {
                            wire::decode(b).map_err(|e| self.codec("decoding the request", e))?
                        }
                        (None, None) => unreachable!("a request or its encoding is kept"),
                    };
                    let call = Call {
                        client: self.client,
                        seq,
                        acked_below: self.acked_below(seq),
                        retry: sent,
                        request: req,
                        record: sent,
                        conn: None,
                        answer: None,
                    };
                    let call = match queue.try_direct(call, false) {
                        Ok(Direct::Done(finished, _ticket)) => {
                            return local_result(finished).map_err(|f| self.failed(f));
                        }
                        Ok(Direct::Queue(call)) => call,
                        Err((call, f)) if f.kind == FailureKind::SteppingDown => {
                            request = Some(call.request);
                            continue;
                        }
                        Err((_, f)) => return Err(self.failed(f)),
                    };
                    let (finished, _ticket) = match queue.submit_local(call) {
                        Ok(done) => done,
                        Err((call, f)) if f.kind == FailureKind::SteppingDown => {
                            // Stepped down meanwhile: the request goes to the next owner.
                            request = Some(call.request);
                            continue;
                        }
                        Err((_, f)) => return Err(self.failed(f)),
                    };
                    return local_result(finished).map_err(|f| self.failed(f));
                }
                Target::Remote(mut conn) => {
                    // Only beside an owner of this very program version and schema: a
                    // newer owner runs an older client's requests with its own handler.
                    if !sent
                        && conn.welcome.version == self.options.version
                        && conn.welcome.fingerprint == self.options.fingerprint
                        && let Some(req) = request.take()
                    {
                        match self.try_here(seq, req) {
                            Ok(done) => {
                                lock(&self.pool).push(conn);
                                return done;
                            }
                            Err(req) => request = Some(req),
                        }
                    }
                    let bytes = match body.take() {
                        Some(b) => b,
                        None => self.encode_kept(&mut request, None)?,
                    };
                    let answer = conn.call(seq, self.acked_below(seq), sent, &bytes, deadline);
                    sent = true;
                    body = Some(bytes);
                    match answer {
                        Ok(outcome) => match outcome.into_result() {
                            Ok(ok) => {
                                lock(&self.pool).push(conn);
                                return wire::decode(&ok)
                                    .map_err(|e| self.codec("decoding the response", e));
                            }
                            Err(f) if f.kind == FailureKind::SteppingDown => {
                                self.leave_election_to_successor();
                            }
                            Err(f) => {
                                lock(&self.pool).push(conn);
                                return Err(self.failed(f));
                            }
                        },
                        Err(CallError::NotSent) => lock(&self.pool).clear(),
                        Err(CallError::Lost) => {
                            lock(&self.pool).clear();
                            if !conn.welcome.records_outcomes {
                                return Err(OwnerError::OutcomeUnknown {
                                    path: self.place.file.clone(),
                                    pid: conn.welcome.pid,
                                });
                            }
                        }
                        Err(CallError::Timeout) => {
                            return Err(OwnerError::Timeout {
                                path: self.place.file.clone(),
                                waited: started.elapsed(),
                            });
                        }
                        Err(CallError::Refused(f)) if f.kind == FailureKind::SteppingDown => {
                            self.leave_election_to_successor();
                            lock(&self.pool).clear();
                        }
                        Err(CallError::Refused(f)) => return Err(self.failed(f)),
                        Err(CallError::Protocol(m)) => {
                            return Err(self.codec("reading the owner's answer", m));
                        }
                    }
                }
            }
        }
    }

    /// Offers a call that was never sent to the service to run in this process
    /// ([`Service::try_here`]): its outcome when the service ran it, else the request back.
    fn try_here(
        &self,
        seq: u64,
        request: S::Request,
    ) -> Result<Result<S::Response, OwnerError>, S::Request> {
        let call = Call {
            client: self.client,
            seq,
            acked_below: self.acked_below(seq),
            retry: false,
            request,
            record: false,
            conn: None,
            answer: None,
        };
        let mut nothing_more = || None;
        let mut batch = Batch {
            calls: vec![call],
            pull: &mut nothing_more,
            started: Instant::now(),
            max_calls: 1,
            max_time: Duration::ZERO,
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.service.try_here(&mut batch)
        }));
        let Some(call) = batch.calls.pop() else {
            unreachable!("a batch's calls are only ever added to")
        };
        match ran {
            Ok(true) => {
                Ok(local_result(crate::queue::finish(call.answer, false))
                    .map_err(|f| self.failed(f)))
            }
            Ok(false) => Err(call.request),
            Err(_) => Ok(Err(self.failed(
                crate::Failure::new(
                    FailureKind::Panicked,
                    "the service panicked running this request in the calling process",
                )
                .applied(crate::Applied::Unknown),
            ))),
        }
    }

    /// The request's encoding: `body` when kept, else `request` encoded.
    fn encode_kept(
        &self,
        request: &mut Option<S::Request>,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, OwnerError> {
        if let Some(b) = body {
            return Ok(b);
        }
        let r = request
            .as_ref()
            .ok_or_else(|| self.codec("encoding the request", "it was consumed".into()))?;
        let b = wire::encode(r).map_err(|e| self.codec("encoding the request", e))?;
        *request = None;
        Ok(b)
    }

    /// Finds where a call goes: this process's queue when it owns (or becomes the owner), else
    /// a connection to the owner, trying until `deadline`.
    fn target(&self, deadline: Instant) -> Result<Target<S>, OwnerError> {
        let started = Instant::now();
        let mut pause = Duration::from_micros(100);
        let mut why;
        let mut own_error = None;
        loop {
            if let Some(conn) = lock(&self.pool).pop() {
                return Ok(Target::Remote(conn));
            }
            if let Role::Owner(o) = &*lock(&self.role) {
                return Ok(Target::Local(o.queue.clone()));
            }
            if self.options.candidate && !self.pausing() {
                match self.try_own() {
                    Ok(Some(queue)) => return Ok(Target::Local(queue)),
                    Ok(None) => {}
                    Err(e) => own_error = Some(e.to_string()),
                }
            }
            match self.connect(deadline) {
                Ok(conn) => return Ok(Target::Remote(conn)),
                Err(Reach::Refused(f)) => return Err(self.failed(f)),
                Err(Reach::Protocol(theirs)) => {
                    return Err(OwnerError::ProtocolVersion {
                        path: self.place.file.clone(),
                        ours: PROTOCOL,
                        theirs,
                    });
                }
                Err(Reach::HandedOver) => continue,
                Err(Reach::Not(w)) => why = w,
            }
            if let Some(e) = &own_error {
                why = format!("{why}; becoming the owner failed: {e}");
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(OwnerError::Unreachable {
                    path: self.place.file.clone(),
                    waited: now - started,
                    why,
                });
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(4));
        }
    }

    /// An owner stepping down is handing over to a newer version, most likely: this process
    /// leaves it a moment to take the lock before it stands itself.
    fn leave_election_to_successor(&self) {
        let until = Instant::now() + STEPPING_DOWN_PAUSE;
        let mut pause = lock(&self.pause_until);
        if pause.is_none_or(|t| t < until) {
            *pause = Some(until);
        }
    }

    fn pausing(&self) -> bool {
        lock(&self.pause_until).is_some_and(|t| Instant::now() < t)
    }

    /// Becomes the owner if no process is: takes the owner lock without waiting, removes the
    /// sockets dead owners left, binds its own, starts serving. `None` when another process
    /// (or another node of this one) owns.
    fn try_own(&self) -> Result<Option<Arc<Queue<S>>>, OwnerError> {
        let mut role = lock(&self.role);
        if let Role::Owner(o) = &*role {
            return Ok(Some(o.queue.clone()));
        }
        let Some((guard, generation, listener)) = self.lock_and_bind()? else {
            return Ok(None);
        };
        let io = |op| {
            let path = self.place.socket_path(generation);
            move |source| OwnerError::Io { path, op, source }
        };
        let queue = Queue::new(self.service.clone(), self.options.limits);
        let welcome = Welcome {
            protocol: PROTOCOL,
            program: self.options.program.clone(),
            version: self.options.version.clone(),
            fingerprint: self.options.fingerprint.clone(),
            generation,
            pid: std::process::id(),
            max_frame: self.options.max_frame,
            records_outcomes: self.service.records_outcomes(),
            info: self.options.info.clone(),
        };
        let server = Server::start(
            listener,
            queue.clone(),
            welcome,
            self.options.clone(),
            self.me.clone(),
            self.place.file.clone(),
        )
        .map_err(|e| {
            self.place.remove_socket(generation);
            io("starting the owner's threads")(e)
        })?;
        *role = Role::Owner(Owned {
            server,
            queue: queue.clone(),
            guard,
            generation,
        });
        lock(&self.pool).clear();
        Ok(Some(queue))
    }

    /// Takes the owner lock without waiting (`None` when another process holds it), removes the
    /// sockets dead owners left and binds this generation's. A name that something other than
    /// a socket has taken (planted by whoever can write the directory) is left as it is, and
    /// the next generation's name is tried; the record of the lock names each generation
    /// tried, so the next one is always one more.
    fn lock_and_bind(&self) -> Result<Option<(LockGuard, u64, UnixListener)>, OwnerError> {
        let mut tries = 0;
        loop {
            let previous = generation_in(&first_line(self.lock.path())).unwrap_or(0);
            let generation = previous + 1;
            let labelled = self.lock.clone().with_label(format!("{LABEL}{generation}"));
            let guard = match labelled.exclusive(Wait::None) {
                Ok(g) => g,
                Err(LockError::WouldBlock { .. } | LockError::WouldDeadlock { .. }) => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let io = |op| {
                let path = self.place.socket_path(generation);
                move |source| OwnerError::Io { path, op, source }
            };
            self.place
                .remove_stale_sockets()
                .map_err(io("removing a dead owner's socket"))?;
            match self.place.listen(generation) {
                Ok(listener) => return Ok(Some((guard, generation, listener))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < TAKEN_NAMES => {
                    tries += 1;
                }
                Err(e) => return Err(io("binding the owner's socket")(e)),
            }
        }
    }

    /// Connects to the owner the owner lock names, checks that the process listening is that
    /// owner, and shakes hands; asks an older owner to hand over.
    fn connect(&self, deadline: Instant) -> Result<Conn, Reach> {
        let hello = Hello {
            protocol: PROTOCOL,
            client: self.client.to_vec(),
            program: self.options.program.clone(),
            version: self.options.version.clone(),
            fingerprint: self.options.fingerprint.clone(),
        };
        let mut conn = reach(
            &self.place,
            &self.lock,
            &hello,
            self.options.max_frame,
            deadline,
        )?;
        if self.options.take_over
            && self.options.candidate
            && compare_versions(&self.options.version, &conn.welcome.version).is_gt()
        {
            if conn.handover(&self.options.version, deadline) {
                return Err(Reach::HandedOver);
            }
            return Err(Reach::Not("the older owner did not hand over".into()));
        }
        Ok(conn)
    }

    /// Steps down for a newer version `version` asking on connection `conn`; whether it did.
    pub(crate) fn step_down_for(&self, version: &str, conn: u64) -> bool {
        if !compare_versions(version, &self.options.version).is_gt() {
            return false;
        }
        *lock(&self.pause_until) = Some(Instant::now() + HANDED_OVER_PAUSE);
        self.step_down(Some(conn))
    }

    /// Steps down (see [`Node::step_down`]); `except` is a connection to leave open.
    fn step_down(&self, except: Option<u64>) -> bool {
        let owned = match std::mem::replace(&mut *lock(&self.role), Role::Client) {
            Role::Owner(o) => o,
            Role::Client => return false,
        };
        stop(owned, &self.place, self.options.timeout, except);
        true
    }
}

/// A call of this process's outcome, as its caller gets it.
fn local_result<Resp: serde::de::DeserializeOwned>(
    finished: Finished<Resp>,
) -> Result<Resp, crate::Failure> {
    match finished {
        Finished::Local(r) => r,
        Finished::Remote(o) => o
            .into_result()
            .and_then(|b| wire::decode(&b).map_err(|e| crate::Failure::new(FailureKind::Other, e))),
    }
}

/// Stops an owner: no new requests, the taken ones answered (at most `bound`), the service
/// told ([`Service::stepping_down`]), its socket removed, then the owner lock released, then
/// its connections closed, each after telling its client (at most a second more, so that a
/// process that exits next lets them finish).
fn stop<S: Service>(mut owned: Owned<S>, place: &Place, bound: Duration, except: Option<u64>) {
    owned.queue.drain(bound);
    let service = owned.queue.service();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| service.stepping_down()));
    owned.server.stop_accepting();
    place.remove_socket(owned.generation);
    drop(owned.guard);
    owned.server.close_connections(except);
    owned
        .server
        .wait_connections(except, Duration::from_secs(1));
}

impl<S: Service> Drop for NodeInner<S> {
    fn drop(&mut self) {
        let role = std::mem::replace(&mut *lock(&self.role), Role::Client);
        if let Role::Owner(owned) = role {
            stop(owned, &self.place, self.options.timeout, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_read_from_labels_and_records() {
        assert_eq!(generation_in("litekeep owner gen=42"), Some(42));
        let record = "litekeep-lock v1 pid=1 host=h since=1.000001 label=litekeep owner gen=7";
        assert_eq!(generation_in(record), Some(7));
        assert_eq!(generation_in("litekeep-lock v1 pid=1 label=migrate"), None);
    }
}
