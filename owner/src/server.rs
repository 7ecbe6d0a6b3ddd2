//! The owner's side of the socket: the accepting thread and one thread per connection, which
//! checks the peer and reads the hello; then, for a service that runs calls directly, reads
//! calls and queues each (whoever runs its batch writes its reply: see `queue.rs` and
//! `reply.rs`), or hands the connection to the poller (`poller.rs`), which reads them all.

use std::collections::HashMap;
use std::io::BufReader;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::failure::{Failure, FailureKind};
use crate::node::NodeInner;
use crate::options::Options;
use crate::poller::{Handed, Poller};
use crate::queue::{Direct, Finished, Queue, Replier};
use crate::reply::Replies;
use crate::service::{Call, ConnId, Service};
use crate::wire::{self, FromOwner, Outcome, PROTOCOL, ReadError, ToOwner, Welcome};

/// What the accepting thread and the connection threads share.
pub(crate) struct Shared<S: Service> {
    pub queue: Arc<Queue<S>>,
    pub welcome: Welcome,
    pub options: Options,
    pub node: Weak<NodeInner<S>>,
    pub file: std::path::PathBuf,
    pub(crate) stopping: AtomicBool,
    /// The connections' descriptors, to shut them down when the owner stops. A connection
    /// thread (or the poller) removes its own before closing it, under this lock, so a number
    /// here is never another file's.
    pub(crate) conns: Mutex<HashMap<u64, RawFd>>,
    /// Reads the connections past their handshake, when the service runs no call directly.
    poller: std::sync::OnceLock<Arc<Poller<S>>>,
}

/// The next connection's number: process-wide, so that a connection of a later ownership of
/// this process never takes the number of an earlier one's.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A connection accepted, until it ends: the service hears of both ([`Service::connected`],
/// [`Service::disconnected`]), a panic in either kept from the connection's thread.
pub(crate) struct Connected<S: Service> {
    queue: Arc<Queue<S>>,
    id: ConnId,
}

impl<S: Service> Connected<S> {
    fn new(queue: &Arc<Queue<S>>, id: ConnId) -> Connected<S> {
        let service = queue.service();
        let _ = catch_unwind(AssertUnwindSafe(|| service.connected(id)));
        Connected {
            queue: queue.clone(),
            id,
        }
    }
}

impl<S: Service> Drop for Connected<S> {
    fn drop(&mut self) {
        let (service, id) = (self.queue.service(), self.id);
        let _ = catch_unwind(AssertUnwindSafe(|| service.disconnected(id)));
    }
}

/// A running server: its socket and threads.
pub(crate) struct Server<S: Service> {
    pub shared: Arc<Shared<S>>,
    listener_fd: RawFd,
    accept: Option<JoinHandle<()>>,
    _listener_owner: Arc<UnixListener>,
}

impl<S: Service> Server<S> {
    pub fn start(
        listener: UnixListener,
        queue: Arc<Queue<S>>,
        welcome: Welcome,
        options: Options,
        node: Weak<NodeInner<S>>,
        file: std::path::PathBuf,
    ) -> std::io::Result<Server<S>> {
        let shared = Arc::new(Shared {
            queue,
            welcome,
            options,
            node,
            file,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            poller: std::sync::OnceLock::new(),
        });
        if !shared.queue.service().runs_direct() {
            // Without a poller each connection keeps a thread of its own.
            if let Ok(poller) = Poller::start(&shared) {
                let _ = shared.poller.set(poller);
            }
        }
        let listener = Arc::new(listener);
        let listener_fd = listener.as_raw_fd();
        let accept = {
            let shared = shared.clone();
            let listener = listener.clone();
            thread::Builder::new()
                .name("litekeep-owner-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Server {
            shared,
            listener_fd,
            accept: Some(accept),
            _listener_owner: listener,
        })
    }

    /// Stops accepting and wakes the accepting thread; joins it.
    pub fn stop_accepting(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(poller) = self.shared.poller.get() {
            poller.ring();
        }
        // SAFETY: `listener_fd` belongs to `_listener_owner`, which this server keeps alive;
        // shutdown(2) on it wakes the thread blocked in accept(2) and touches no memory.
        unsafe { shutdown(self.listener_fd, rustix::net::Shutdown::Both) };
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }

    /// Shuts down the reading side of every connection but `except`: each thread sees the end,
    /// tells its client the owner stepped down (so a request the thread never read is known
    /// not applied) and leaves.
    pub fn close_connections(&self, except: Option<u64>) {
        let conns = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (&id, &fd) in conns.iter() {
            if Some(id) != except {
                // SAFETY: the descriptor is open: its thread removes it from this map, under
                // this lock, before closing it.
                unsafe { shutdown(fd, rustix::net::Shutdown::Read) };
            }
        }
    }
}

impl<S: Service> Server<S> {
    /// Waits, at most `bound`, until every connection's thread has left (having told its
    /// client the owner stepped down), but `except`'s.
    pub fn wait_connections(&self, except: Option<u64>, bound: Duration) {
        let deadline = std::time::Instant::now() + bound;
        while std::time::Instant::now() < deadline {
            let left = self
                .shared
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .keys()
                .any(|&id| Some(id) != except);
            if !left {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// shutdown(2) on a raw descriptor.
///
/// # Safety
/// `fd` must be an open descriptor of this process.
unsafe fn shutdown(fd: RawFd, how: rustix::net::Shutdown) {
    // SAFETY: the caller promises `fd` is open; the borrow lasts for the call only.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = rustix::net::shutdown(fd, how);
}

fn accept_loop<S: Service>(listener: &UnixListener, shared: &Arc<Shared<S>>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection that went away: go on, without
                // spinning.
                let pause = if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) {
                    Duration::from_millis(10)
                } else {
                    Duration::from_micros(100)
                };
                thread::sleep(pause);
                continue;
            }
        };
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        {
            let mut conns = shared.conns.lock().unwrap_or_else(PoisonError::into_inner);
            if conns.len() >= shared.options.max_connections {
                drop(conns);
                let f = Failure::new(
                    FailureKind::TooManyConnections,
                    format!(
                        "the owner serves {} connections, its limit; try again later",
                        shared.options.max_connections
                    ),
                );
                refuse(&stream, f);
                continue;
            }
            conns.insert(id, stream.as_raw_fd());
        }
        let stream = Arc::new(stream);
        let conn_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name("litekeep-owner-conn".into())
            .spawn(move || {
                if serve(&stream, id, &conn_shared) == Served::Handed {
                    return;
                }
                let mut conns = conn_shared
                    .conns
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                conns.remove(&id);
                drop(stream);
            });
        if spawned.is_err() {
            // The closure (and the stream in it) is gone; forget the descriptor.
            shared
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }
}

/// Sends a connection-ending failure (best effort: the peer may be gone) and lets the stream
/// close.
fn refuse(stream: &UnixStream, failure: Failure) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = wire::send_all(stream, &wire::frame(&FromOwner::Error { error: failure }));
}

/// How a connection's thread left it.
#[derive(PartialEq, Eq)]
enum Served {
    /// Done with: the connection is closed.
    Done,
    /// Handed to the poller, which closes it.
    Handed,
}

fn serve<S: Service>(stream: &Arc<UnixStream>, id: u64, shared: &Arc<Shared<S>>) -> Served {
    serve_hello(stream, id, shared).map_or(Served::Done, |handed| match shared.poller.get() {
        Some(poller) => {
            poller.hand(handed);
            Served::Handed
        }
        None => Served::Done,
    })
}

/// Checks the peer and reads its hello; then, for a poller, gives the connection up to be
/// handed over, or reads its calls until it ends.
fn serve_hello<S: Service>(
    stream: &Arc<UnixStream>,
    id: u64,
    shared: &Arc<Shared<S>>,
) -> Option<Handed<S>> {
    let options = &shared.options;
    match crate::address::peer(stream) {
        Ok(cred) => {
            if let Err(why) = crate::peer::may_write(&shared.file, &cred) {
                refuse(stream, Failure::new(FailureKind::Refused, why));
                return None;
            }
        }
        Err(e) => {
            let why = format!("the peer's credentials could not be read: {e}");
            refuse(stream, Failure::new(FailureKind::Refused, why));
            return None;
        }
    }
    let _ = stream.set_write_timeout(Some(options.frame_timeout));
    let _ = stream.set_read_timeout(Some(options.handshake_timeout));
    let mut reader = BufReader::with_capacity(64 * 1024, &**stream);
    let set = |t: Option<Duration>| {
        let _ = stream.set_read_timeout(t);
    };
    let hello = match wire::read_frame(
        &mut reader,
        options.max_frame,
        |_| {},
        Some(options.handshake_timeout),
    ) {
        Ok(bytes) => bytes,
        Err(e) => {
            if let Some(f) = frame_error(e, "the hello") {
                refuse(stream, f);
            }
            return None;
        }
    };
    let hello = match wire::decode::<ToOwner>(&hello) {
        Ok(ToOwner::Hello(hello)) => hello,
        _ => {
            let f = Failure::new(
                FailureKind::BadFrame,
                "the first frame of a connection must be a hello (see litekeep_owner's protocol docs)",
            );
            refuse(stream, f);
            return None;
        }
    };
    if hello.protocol != PROTOCOL {
        let f = Failure::new(
            FailureKind::ProtocolVersion,
            format!(
                "the client speaks protocol version {}, this owner speaks {PROTOCOL}; run the same litekeep version on both sides",
                hello.protocol
            ),
        );
        refuse(stream, f);
        return None;
    }
    let Ok(client) = <[u8; 16]>::try_from(hello.client.as_slice()) else {
        let f = Failure::new(
            FailureKind::BadFrame,
            "the hello's client id must be 16 bytes",
        );
        refuse(stream, f);
        return None;
    };
    if wire::send_all(
        stream,
        &wire::frame(&FromOwner::Welcome(shared.welcome.clone())),
    )
    .is_err()
    {
        return None;
    }
    set(None);
    let connected = Connected::new(&shared.queue, id);
    if shared.poller.get().is_some() {
        let _ = stream.set_read_timeout(None);
        return Some(Handed {
            id,
            client,
            stream: stream.clone(),
            read: reader.buffer().to_vec(),
            connected,
        });
    }
    let _connected = connected;
    // Replies go through the connection's line: the batch that answers a call writes them.
    let replies = Replies::new(stream.clone());
    let end = |f: Failure| replies.send(wire::frame(&FromOwner::Error { error: f }), None);
    loop {
        // Asleep in poll(2) until the next request (or the end) comes: see wait_readable.
        if reader.buffer().is_empty() {
            let _ = wire::wait_readable(stream, None);
        }
        let frame = match wire::read_frame(
            &mut reader,
            options.max_frame,
            set,
            Some(options.frame_timeout),
        ) {
            Ok(frame) => frame,
            // A frame cut off is never applied: nothing of it reached the queue.
            Err(e) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    end(stepped_down());
                    return None;
                }
                if let Some(f) = frame_error(e, "a frame") {
                    end(f);
                }
                return None;
            }
        };
        match handle(shared, &replies, id, client, &frame, true) {
            Handled::Queued | Handled::Answered => {}
            Handled::End => return None,
            Handled::HandOver(version) => {
                handover(shared, stream, id, &version);
                return None;
            }
        }
    }
}

/// What the owner tells a connection whose reading side it shut down as it stepped down.
pub(crate) fn stepped_down() -> Failure {
    Failure::new(
        FailureKind::SteppingDown,
        "the owner stepped down; a request it did not answer on this connection was not applied",
    )
}

/// What one frame of a connection came to.
pub(crate) enum Handled {
    /// A call, run or queued.
    Queued,
    /// Answered with an error; the connection stays.
    Answered,
    /// Ended with an error: the connection closes.
    End,
    /// A handover asked for by a newer version: the caller answers it.
    HandOver(String),
}

/// Handles one frame of connection `conn` (of client `client`) past its hello: a call is run
/// directly or queued (its batch started when `kick`: see [`call`]); a second hello or a
/// message type this owner does not know is answered with an error; bytes that are not a
/// message of this protocol end the connection with an error.
pub(crate) fn handle<S: Service>(
    shared: &Arc<Shared<S>>,
    replies: &Arc<Replies<S>>,
    conn: ConnId,
    client: [u8; 16],
    frame: &[u8],
    kick: bool,
) -> Handled {
    let error = |error: Failure| replies.send(wire::frame(&FromOwner::Error { error }), None);
    match wire::decode_to_owner(frame) {
        Ok(ToOwner::Call {
            seq,
            acked_below,
            retry,
            body,
        }) => {
            let ids = Ids {
                conn,
                client,
                seq,
                acked_below,
                retry,
            };
            call(shared, replies, ids, &body, kick);
            Handled::Queued
        }
        Ok(ToOwner::Handover { version }) => Handled::HandOver(version),
        Ok(ToOwner::Hello(_)) => {
            error(Failure::new(FailureKind::Unsupported, "a second hello"));
            Handled::Answered
        }
        Err(e) if has_tag(frame) => {
            error(Failure::new(
                FailureKind::Unsupported,
                format!("a message this owner does not support: {e}"),
            ));
            Handled::Answered
        }
        Err(e) => {
            error(Failure::new(
                FailureKind::BadFrame,
                format!("a frame that is not a message of this protocol: {e}"),
            ));
            Handled::End
        }
    }
}

/// Whether `frame` is a CBOR map with a text `t` (a message of some version of this protocol).
fn has_tag(frame: &[u8]) -> bool {
    let Ok(ciborium::Value::Map(entries)) = wire::decode::<ciborium::Value>(frame) else {
        return false;
    };
    entries
        .iter()
        .any(|(k, v)| k.as_text() == Some("t") && v.is_text())
}

/// The failure to tell a client whose frame could not be read, if any (none when it just left).
pub(crate) fn frame_error(e: ReadError, what: &str) -> Option<Failure> {
    match e {
        ReadError::Closed => None,
        ReadError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Some(Failure::new(
                FailureKind::HandshakeTimeout,
                format!("{what} did not arrive whole in time; the connection is closed"),
            ))
        }
        ReadError::Io(_) => None,
        ReadError::TooLarge(len) => Some(Failure::new(
            FailureKind::TooLarge,
            format!(
                "{what} announced {len} bytes, over this owner's limit; the connection is closed"
            ),
        )),
    }
}

/// Who sent a call, and its numbers.
struct Ids {
    conn: ConnId,
    client: [u8; 16],
    seq: u64,
    acked_below: u64,
    retry: bool,
}

/// Runs a client's call at once when the service takes it ([`Service::direct`]), else queues
/// it, and starts its batch when none runs if `kick` (else the caller kicks the queue); its
/// reply is written by whoever finishes it (here, at once, when it ran here or was refused).
fn call<S: Service>(
    shared: &Arc<Shared<S>>,
    replies: &Arc<Replies<S>>,
    ids: Ids,
    body: &[u8],
    kick: bool,
) {
    let seq = ids.seq;
    let failed = |f: Failure| {
        replies.send(wire::reply_frame(seq, &Outcome::from_result(Err(f))), None);
    };
    let request = match wire::decode::<S::Request>(body) {
        Ok(r) => r,
        Err(e) => {
            return failed(Failure::new(
                FailureKind::BadRequest,
                format!("the request does not decode as this service's request: {e}"),
            ));
        }
    };
    let call = Call {
        client: ids.client,
        seq,
        acked_below: ids.acked_below,
        retry: ids.retry,
        request,
        record: true,
        conn: Some(ids.conn),
        answer: None,
    };
    let call = match shared.queue.try_direct(call, true) {
        Ok(Direct::Done(Finished::Remote(outcome), ticket)) => {
            return replies.send(wire::reply_frame(seq, &outcome), Some(ticket));
        }
        Ok(Direct::Done(Finished::Local(_), _)) => {
            return failed(Failure::new(
                FailureKind::Other,
                "the service answered a client's call as a local one",
            ));
        }
        Ok(Direct::Queue(call)) => call,
        Err((_, f)) => return failed(f),
    };
    let to = replies.clone();
    let reply: Replier<S> = Box::new(move |outcome, ticket| {
        // The call counts as done for a drain only once its client has the answer.
        to.send(wire::reply_frame(seq, outcome), Some(ticket));
    });
    match shared.queue.queue_remote(call, reply) {
        Err((_, f, _)) => failed(f),
        Ok(()) if kick => shared.queue.kick(true),
        Ok(()) => {}
    }
}

pub(crate) fn handover<S: Service>(
    shared: &Arc<Shared<S>>,
    stream: &UnixStream,
    id: u64,
    version: &str,
) {
    let Some(node) = shared.node.upgrade() else {
        return;
    };
    let generation = shared.welcome.generation;
    if node.step_down_for(version, id) {
        let _ = wire::send_all(stream, &wire::frame(&FromOwner::SteppedDown { generation }));
    } else {
        let f = Failure::new(
            FailureKind::Unsupported,
            "this owner does not hand over to that version",
        );
        let _ = wire::send_all(stream, &wire::frame(&FromOwner::Error { error: f }));
    }
}
