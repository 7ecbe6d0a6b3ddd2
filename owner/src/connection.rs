//! Reaching the owner of a file: [`reach`], which a [`Node`](crate::Node) uses, and
//! [`Connection`], one connection for a client that runs no service of its own and speaks the
//! protocol itself (a `litekeep serve` client, a test sending its own frames).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litekeep_lock::FileLock;

use crate::address::{Place, owner_lock_path};
use crate::client::{CallError, Conn};
use crate::error::OwnerError;
use crate::failure::{Failure, FailureKind};
use crate::node::generation_in;
use crate::wire::{Hello, Outcome, PROTOCOL, Welcome};

/// Why no connection to an owner was made.
pub(crate) enum Reach {
    /// None yet (no owner, not bound yet, gone): try again.
    Not(String),
    /// The owner refused this process (its credentials).
    Refused(Failure),
    /// The owner speaks another protocol version.
    Protocol(u32),
    /// The owner handed over to this process: elect again.
    HandedOver,
}

/// Connects to the owner the owner lock `lock` names, checks that the process listening is
/// that owner, and shakes hands with `hello`.
pub(crate) fn reach(
    place: &Place,
    lock: &FileLock,
    hello: &Hello,
    max_frame: u32,
    deadline: Instant,
) -> Result<Conn, Reach> {
    let holder = lock
        .holder()
        .ok_or_else(|| Reach::Not("no process owns it (the owner lock is free)".into()))?;
    let generation = holder
        .label
        .as_deref()
        .and_then(generation_in)
        .ok_or_else(|| {
            Reach::Not(format!(
                "pid {} holds the owner lock but has not named its socket yet",
                holder.pid
            ))
        })?;
    let address = place.socket_path(generation);
    let stream = place
        .connect(generation)
        .map_err(|e| Reach::Not(format!("connecting to {}: {e}", address.display())))?;
    // A socket of that name bound by anyone but the owner (a squatter) is refused.
    let listening = crate::address::peer(&stream)
        .map_err(|e| Reach::Not(format!("reading the peer of {}: {e}", address.display())))?
        .pid
        .as_raw_nonzero()
        .get() as u32;
    if holder.verified && listening != holder.pid {
        return Err(Reach::Not(format!(
            "{} is bound by pid {listening}, not by the owner (pid {}); not calling it",
            address.display(),
            holder.pid
        )));
    }
    let conn = match Conn::handshake(stream, hello, max_frame, deadline) {
        Ok(c) => c,
        Err(CallError::Refused(f)) if f.kind == FailureKind::ProtocolVersion => {
            return Err(Reach::Protocol(protocol_in(&f.message)));
        }
        Err(CallError::Refused(f)) if f.kind == FailureKind::Refused => {
            return Err(Reach::Refused(f));
        }
        Err(e) => {
            return Err(Reach::Not(format!(
                "handshake with {}: {e:?}",
                address.display()
            )));
        }
    };
    if conn.welcome.protocol != PROTOCOL {
        return Err(Reach::Protocol(conn.welcome.protocol));
    }
    Ok(conn)
}

/// The owner's protocol version in its `protocol_version` failure's message.
fn protocol_in(message: &str) -> u32 {
    message
        .split("this owner speaks ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// One connection to the owner of a file, for a client that speaks the protocol itself: it
/// finds the owner as a [`Node`](crate::Node) does (the owner lock's holder, its socket, the
/// `SO_PEERCRED` check), shakes hands, and sends calls one at a time. It never becomes the
/// owner, never sends a request twice on its own, and keeps no pool: what to do when the
/// connection breaks is the caller's (see the crate docs' "Exactly once").
///
/// ```
/// use std::time::Duration;
/// use litekeep_owner::wire::{Hello, PROTOCOL};
/// use litekeep_owner::{Batch, Connection, Node, Options, Service};
/// struct Len;
/// impl Service for Len {
///     type Request = String;
///     type Response = usize;
///     fn run(&self, batch: &mut Batch<'_, String, usize>) {
///         let mut i = 0;
///         while let Some(call) = batch.get(i) {
///             let n = call.request.len();
///             call.answer(Ok(n));
///             i += 1;
///         }
///     }
/// }
/// # let dir = std::env::temp_dir().join(format!("lk-doc-conn-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("app.db");
/// # std::fs::write(&path, b"").unwrap();
/// let owner = Node::join(&path, Len, Options::new("len", "1.0"))?;
/// let hello = Hello {
///     protocol: PROTOCOL,
///     client: vec![7; 16],
///     program: "len-client".into(),
///     version: "1.0".into(),
///     fingerprint: None,
/// };
/// let mut conn = Connection::open(&path, &hello, Duration::from_secs(5))?;
/// assert_eq!(conn.welcome().pid, std::process::id());
/// let body = litekeep_owner::wire::encode("four").unwrap();
/// let outcome = conn.call(1, 1, false, &body, Duration::from_secs(5)).unwrap();
/// let n: usize = litekeep_owner::wire::decode(&outcome.into_result().unwrap()).unwrap();
/// assert_eq!(n, 4);
/// # drop(conn); drop(owner); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), litekeep_owner::OwnerError>(())
/// ```
pub struct Connection {
    conn: Conn,
    path: PathBuf,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("path", &self.path)
            .field("owner", &self.conn.welcome.pid)
            .field("generation", &self.conn.welcome.generation)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the owner of the file at `path` and shakes hands with `hello`, within
    /// `timeout`; one attempt. Frames from the owner may be as long as its welcome's
    /// `max_frame`, and at most 16 MiB until the welcome came.
    ///
    /// # Errors
    /// [`OwnerError::Unreachable`] when no process owns the file, or its owner cannot be
    /// reached (not bound yet, gone, a socket bound by another process); [`OwnerError::Failed`]
    /// with a `refused` failure when the owner refuses this process's credentials;
    /// [`OwnerError::ProtocolVersion`] when it speaks another version; [`OwnerError::Io`] or
    /// [`OwnerError::Lock`] when the file's directory or owner lock cannot be opened.
    pub fn open(path: &Path, hello: &Hello, timeout: Duration) -> Result<Connection, OwnerError> {
        let started = Instant::now();
        let place = Place::new(path).map_err(|source| OwnerError::Io {
            path: path.to_path_buf(),
            op: "opening the file's directory",
            source,
        })?;
        let lock = FileLock::open_beside(owner_lock_path(path), path)?;
        let max = crate::wire::DEFAULT_MAX_FRAME;
        match reach(&place, &lock, hello, max, started + timeout) {
            Ok(mut conn) => {
                conn.set_max_frame(conn.welcome.max_frame.max(max));
                Ok(Connection {
                    conn,
                    path: path.to_path_buf(),
                })
            }
            Err(Reach::Refused(failure)) => Err(OwnerError::Failed {
                path: path.to_path_buf(),
                failure,
            }),
            Err(Reach::Protocol(theirs)) => Err(OwnerError::ProtocolVersion {
                path: path.to_path_buf(),
                ours: PROTOCOL,
                theirs,
            }),
            Err(Reach::Not(why)) => Err(OwnerError::Unreachable {
                path: path.to_path_buf(),
                waited: started.elapsed(),
                why,
            }),
            Err(Reach::HandedOver) => Err(OwnerError::Unreachable {
                path: path.to_path_buf(),
                waited: started.elapsed(),
                why: "the owner handed over".into(),
            }),
        }
    }

    /// The owner's welcome.
    pub fn welcome(&self) -> &Welcome {
        &self.conn.welcome
    }

    /// Sends call `seq` with `body` (the service's request, one CBOR item) and reads its
    /// outcome, within `timeout`. `acked_below` and `retry` are the call frame's (see the
    /// crate docs' "Protocol").
    ///
    /// # Errors
    /// A [`CallError`]: whether the request may have reached the owner is in its kind
    /// ([`CallError::NotSent`] never did; after [`CallError::Lost`] or [`CallError::Timeout`]
    /// the outcome is unknown).
    pub fn call(
        &mut self,
        seq: u64,
        acked_below: u64,
        retry: bool,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Outcome, CallError> {
        self.conn
            .call(seq, acked_below, retry, body, Instant::now() + timeout)
    }

    /// The socket, to set options on or to close early (`shutdown`).
    pub fn stream(&self) -> &UnixStream {
        self.conn.stream()
    }
}
