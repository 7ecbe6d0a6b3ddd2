//! The owner's side of the socket: the accepting thread and one thread per connection, which
//! checks the peer, reads the hello, then reads calls and runs each through the queue.

use std::collections::HashMap;
use std::io::BufReader;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::failure::{Failure, FailureKind};
use crate::node::NodeInner;
use crate::options::Options;
use crate::queue::{Finished, Queue, Ticket};
use crate::service::{Call, Service};
use crate::wire::{self, FromOwner, Outcome, PROTOCOL, ReadError, ToOwner, Welcome};

/// What the accepting thread and the connection threads share.
pub(crate) struct Shared<S: Service> {
    pub queue: Arc<Queue<S>>,
    pub welcome: Welcome,
    pub options: Options,
    pub node: Weak<NodeInner<S>>,
    pub file: std::path::PathBuf,
    stopping: AtomicBool,
    /// The connections' descriptors, to shut them down when the owner stops. A connection
    /// thread removes its own before closing it, under this lock, so a number here is never
    /// another file's.
    conns: Mutex<HashMap<u64, RawFd>>,
}

/// The next connection's number: process-wide, so that a connection of a later ownership of
/// this process never takes the number of an earlier one's.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

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
        });
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
        let conn_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name("litekeep-owner-conn".into())
            .spawn(move || {
                serve(&stream, id, &conn_shared);
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

fn serve<S: Service>(stream: &UnixStream, id: u64, shared: &Arc<Shared<S>>) {
    let options = &shared.options;
    match crate::address::peer(stream) {
        Ok(cred) => {
            if let Err(why) = crate::peer::may_write(&shared.file, &cred) {
                refuse(stream, Failure::new(FailureKind::Refused, why));
                return;
            }
        }
        Err(e) => {
            let why = format!("the peer's credentials could not be read: {e}");
            refuse(stream, Failure::new(FailureKind::Refused, why));
            return;
        }
    }
    let _ = stream.set_write_timeout(Some(options.frame_timeout));
    let _ = stream.set_read_timeout(Some(options.handshake_timeout));
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
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
        Err(e) => return frame_error(stream, e, "the hello"),
    };
    let hello = match wire::decode::<ToOwner>(&hello) {
        Ok(ToOwner::Hello(hello)) => hello,
        _ => {
            let f = Failure::new(
                FailureKind::BadFrame,
                "the first frame of a connection must be a hello (see litekeep_owner's protocol docs)",
            );
            return refuse(stream, f);
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
        return refuse(stream, f);
    }
    let Ok(client) = <[u8; 16]>::try_from(hello.client.as_slice()) else {
        let f = Failure::new(
            FailureKind::BadFrame,
            "the hello's client id must be 16 bytes",
        );
        return refuse(stream, f);
    };
    if wire::send_all(
        stream,
        &wire::frame(&FromOwner::Welcome(shared.welcome.clone())),
    )
    .is_err()
    {
        return;
    }
    set(None);
    let service = shared.queue.service();
    let hook = |f: &dyn Fn()| {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    };
    hook(&|| service.connected(id));
    calls(stream, &mut reader, id, client, shared);
    hook(&|| service.disconnected(id));
}

/// Reads and answers a connection's calls, one at a time, until it ends.
fn calls<S: Service>(
    stream: &UnixStream,
    reader: &mut BufReader<&UnixStream>,
    id: u64,
    client: [u8; 16],
    shared: &Arc<Shared<S>>,
) {
    let options = &shared.options;
    let set = |t: Option<Duration>| {
        let _ = stream.set_read_timeout(t);
    };
    loop {
        let frame = match wire::read_frame(
            reader,
            options.max_frame,
            set,
            Some(options.frame_timeout),
        ) {
            Ok(frame) => frame,
            // A frame cut off is never applied: nothing of it reached the queue.
            Err(e) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    let f = Failure::new(
                        FailureKind::SteppingDown,
                        "the owner stepped down; a request it did not answer on this connection was not applied",
                    );
                    return refuse(stream, f);
                }
                return frame_error(stream, e, "a frame");
            }
        };
        let reply = match wire::decode::<ToOwner>(&frame) {
            Ok(ToOwner::Call {
                seq,
                acked_below,
                retry,
                body,
            }) => call(shared, id, client, seq, acked_below, retry, &body),
            Ok(ToOwner::Handover { version }) => {
                handover(shared, stream, id, &version);
                return;
            }
            Ok(ToOwner::Hello(_)) => (
                FromOwner::Error {
                    error: Failure::new(FailureKind::Unsupported, "a second hello"),
                },
                None,
            ),
            Err(e) => {
                if has_tag(&frame) {
                    let error = Failure::new(
                        FailureKind::Unsupported,
                        format!("a message this owner does not support: {e}"),
                    );
                    (FromOwner::Error { error }, None)
                } else {
                    let f = Failure::new(
                        FailureKind::BadFrame,
                        format!("a frame that is not a message of this protocol: {e}"),
                    );
                    return refuse(stream, f);
                }
            }
        };
        let (reply, ticket) = reply;
        let sent = wire::send_all(stream, &wire::frame(&reply));
        // The call counts as done for a drain only once its client has the answer.
        drop(ticket);
        if sent.is_err() {
            return;
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

fn frame_error(stream: &UnixStream, e: ReadError, what: &str) {
    match e {
        ReadError::Closed | ReadError::Io(_) => {
            if let ReadError::Io(e) = &e
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            {
                let f = Failure::new(
                    FailureKind::HandshakeTimeout,
                    format!("{what} did not arrive whole in time; the connection is closed"),
                );
                refuse(stream, f);
            }
        }
        ReadError::TooLarge(len) => {
            let f = Failure::new(
                FailureKind::TooLarge,
                format!(
                    "{what} announced {len} bytes, over this owner's limit; the connection is closed"
                ),
            );
            refuse(stream, f);
        }
    }
}

fn call<S: Service>(
    shared: &Arc<Shared<S>>,
    conn: u64,
    client: [u8; 16],
    seq: u64,
    acked_below: u64,
    retry: bool,
    body: &[u8],
) -> (FromOwner, Option<Ticket<S>>) {
    let request = match wire::decode::<S::Request>(body) {
        Ok(r) => r,
        Err(e) => {
            let f = Failure::new(
                FailureKind::BadRequest,
                format!("the request does not decode as this service's request: {e}"),
            );
            return (FromOwner::reply(seq, Outcome::from_result(Err(f))), None);
        }
    };
    let call = Call {
        client,
        seq,
        acked_below,
        retry,
        request,
        record: true,
        conn: Some(conn),
        answer: None,
    };
    let (finished, ticket) = match shared.queue.submit(call, true) {
        Ok(done) => done,
        Err((_, f)) => return (FromOwner::reply(seq, Outcome::from_result(Err(f))), None),
    };
    let reply = match finished {
        Finished::Remote(outcome) => FromOwner::reply(seq, outcome),
        Finished::Local(r) => FromOwner::reply(
            seq,
            Outcome::from_result(
                r.and_then(|v| wire::encode(&v).map_err(|e| Failure::new(FailureKind::Other, e))),
            ),
        ),
    };
    (reply, ticket)
}

fn handover<S: Service>(shared: &Arc<Shared<S>>, stream: &UnixStream, id: u64, version: &str) {
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
