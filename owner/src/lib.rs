//! One process owns a file, the others call it: owner election, failover and group commit
//! over a local socket, on [`litekeep_lock`]. Knows nothing of SQLite (the `litekeep` facade
//! builds its SQLite service on it).
//!
//! ```
//! use litekeep_owner::{Batch, Node, Options, Service};
//! /// Adds up what it is sent; answers the running total.
//! struct Sum(std::sync::Mutex<u64>);
//! impl Service for Sum {
//!     type Request = u64;
//!     type Response = u64;
//!     fn run(&self, batch: &mut Batch<'_, u64, u64>) {
//!         let mut total = self.0.lock().unwrap();
//!         let mut i = 0;
//!         while let Some(call) = batch.get(i) {
//!             *total += call.request;
//!             call.answer(Ok(*total));
//!             i += 1;
//!         }
//!     }
//! }
//! # let dir = std::env::temp_dir().join(format!("lk-doc-owner-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! // Every process of the program joins with the same service; the first one owns.
//! let node = Node::join(dir.join("totals.db"), Sum(Default::default()), Options::new("sum", "1.0"))?;
//! assert_eq!(node.call(2)?, 2);
//! assert_eq!(node.call(3)?, 5);
//! # drop(node); std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), litekeep_owner::OwnerError>(())
//! ```
//!
//! # Election and failover
//!
//! Every process that uses the service [joins](Node::join) it. The owner is the process that
//! holds an exclusive [`FileLock`](litekeep_lock::FileLock) on `<file>.owner.lock`
//! ([`owner_lock_path`]) — a kernel `flock`, freed the instant its holder dies, SIGKILL
//! included; never an `O_EXCL` file or a pid. A process takes it without waiting when it
//! joins and whenever a call finds no owner to reach, so the next caller after an owner's
//! death becomes the owner. The lock's holder record names the owner's generation (its label
//! is `litekeep owner gen=<n>`, one more than the record it found); the owner binds
//! `<file>.owner-<n>.sock` beside the file. A client reads the holder (pid from the kernel's
//! `/proc/locks`, generation from the record), connects, and checks with `SO_PEERCRED` that
//! the process listening is that pid: a socket bound by anyone else (a squatter) is never
//! called. The new owner removes, while holding the lock, every socket of this file's name
//! pattern that it finds (a dead owner's), before binding its own; an owner removes only its
//! own socket, by its generation, before it releases the lock. Anything else at a socket's
//! name (a link or a file someone planted) is never followed, changed or removed: the owner
//! passes over that generation (the lock's record names each one tried) and binds the next
//! one's name, up to eight times.
//!
//! # The socket's place
//!
//! The socket lives in the file's own directory, so that exactly the users who can reach the
//! file can reach it (a database shared by a group works as the file does); its mode gives
//! read and write to whoever the file's write bits allow. A Unix socket address holds 107
//! bytes of path: a longer one is reached through `/proc/self/fd/<fd>/<name>`, with `<fd>` a
//! descriptor of the directory (Linux). The owner checks each peer's credentials
//! (`SO_PEERCRED`): a user who could not write the file by its permission bits is refused
//! (`refused`), and never writes through the owner.
//!
//! # Group commit
//!
//! One thread at the owner reads every client connection (epoll) and queues the requests that
//! came; the owner's committer thread runs a batch ([`Service::run`]) whenever requests wait and
//! none runs: it takes the requests waiting, up to `max_batch` of them and for up to
//! `max_batch_time`, including those that arrive while it runs (the reading thread goes on
//! queueing meanwhile); when the service has committed, every call of the batch is answered —
//! whoever ran the batch writes the replies. With one request waiting the batch is that
//! request, at once: the reading thread runs it itself (no hand-off to the committer when the
//! owner is idle) and reads again, without waiting, whenever the batch looks for more. A
//! batch of its that runs past 25–50 ms (waiting for the write gate a migration holds, say)
//! has a stand-in thread read the connections meanwhile, so that the others' calls still
//! queue, or are answered `queue_full`. Under load neither thread sleeps much: a wake-up per
//! group of requests, not per request. A process that owns runs its own calls in the same queue, without the
//! socket: such a call that finds no batch running runs one itself, on its own thread. A full
//! queue answers `queue_full`, naming its depth. A service that runs calls directly
//! ([`Service::runs_direct`]) has a thread per connection instead, which reads its requests,
//! runs the direct ones and queues the others (starting a batch itself when none runs).
//!
//! # Exactly once
//!
//! Each call carries the client's id (16 random bytes per [`Node`]) and a sequence number; a
//! retry keeps both. A client whose owner dies after it sent a request cannot know whether it
//! was applied. If the owner's service [records outcomes](Service::records_outcomes) (as
//! litekeep's SQLite service does, in the same transaction as the request's writes), the client
//! sends the request again to the next owner, which answers with the recorded outcome when it
//! had been applied, and runs it otherwise. If not, the call fails with
//! [`OwnerError::OutcomeUnknown`] and is never sent again silently. A request cut off in the
//! middle of its frame is never applied; a call that gets no answer within its timeout fails
//! with [`OwnerError::Timeout`] (outcome unknown). A request that is sent again while the first
//! copy is still queued or running at the same owner waits for that copy's outcome.
//!
//! What is not promised: exactly once for a service that does not record outcomes; an
//! outcome recorded past the retention of the service's records; anything across hosts (the
//! lock and socket are local).
//!
//! # Rolling deploys
//!
//! A process whose [`Options`] version is higher than the owner's asks it to hand over: the
//! owner stops taking requests (they are answered `stepping_down`, never applied, and sent to
//! the next owner), answers those it took, removes its socket, releases the lock and says so;
//! the newer process takes the lock. The older process stays a client. A client speaking
//! another protocol version gets [`OwnerError::ProtocolVersion`], naming both.
//!
//! # Bad input
//!
//! A connection that sends no hello within the handshake timeout, bytes that are not a frame
//! of this protocol, a frame over the size limit, or a request that does not decode as the
//! service's request gets a failure (and, but for the last, its connection closed); a panic in
//! the service fails the calls of its batch (`panicked`); more connections than the limit are
//! refused (`too_many_connections`). The owner goes on serving everyone else.
//!
//! # Protocol
//!
//! Language-neutral, for clients in any language. `PROTOCOL.md`, at the root of litekeep's
//! repository, is the full reference — finding the owner step by step, starting a server on
//! demand, what to send again, and the SQL body of `litekeep serve`; in short:
//!
//! - **Framing.** A frame is a 4-byte big-endian unsigned length `n`, then `n` bytes: one CBOR
//!   data item (RFC 8949), always a map with text keys. A receiver refuses `n` over its limit
//!   (the owner's is in its welcome, `max_frame`, 16 MiB by default) without reading further.
//!   Unknown keys are ignored.
//! - **Encoding.** Integers are CBOR unsigned integers, texts CBOR text strings, byte strings
//!   CBOR byte strings (major type 2). The application's request and response are each one
//!   CBOR item carried *inside a byte string* (`body`, `ok`), so the envelope is read without
//!   knowing the application's types. Floats are CBOR floats (NaN and infinities included).
//! - **Handshake.** The client's first frame: `{"t": "hello", "protocol": 1, "client": bytes
//!   (16), "program": text, "version": text, "fingerprint": text or null}`. The owner answers
//!   `{"t": "welcome", "protocol": 1, "program", "version", "fingerprint", "generation": uint,
//!   "pid": uint, "max_frame": uint, "records_outcomes": bool}` or an error frame and closes.
//! - **Calls.** `{"t": "call", "seq": uint, "acked_below": uint, "body": bytes}`: `seq` is the
//!   client's sequence number of the request (a retry keeps it) and is the request id the
//!   reply carries; `acked_below` says every request of this client numbered below it was
//!   answered and will not be sent again. One call at a time per connection: a client sends
//!   the next call once it has the reply (an owner answers a connection's calls in the order
//!   they came). The reply: `{"t": "reply", "seq": uint, "ok": bytes}` or
//!   `{"t": "reply", "seq": uint, "error": failure}`.
//! - **Errors.** A failure is `{"kind": text, "message": text, "applied": "no" | "unknown"}`;
//!   kinds are [`FailureKind`]'s snake_case names. `{"t": "error", "error": failure}` ends a
//!   connection (a refusal, a bad frame, a timeout) or answers a message the owner does not
//!   support (kind `unsupported`, the connection stays).
//! - **Handover.** `{"t": "handover", "version": text}`, answered `{"t": "stepped_down",
//!   "generation": uint}` once the owner has released the lock.
//! - **Finding the owner.** The owner lock `<file>.owner.lock`: its holder's pid is in
//!   `/proc/locks` (a `FLOCK WRITE` on the file's inode), its generation in the file's first
//!   line, after `label=litekeep owner gen=`. The socket: `<dir>/<name>.owner-<gen>.sock`, or
//!   `/proc/self/fd/<dirfd>/<name>.owner-<gen>.sock` when the path is over 107 bytes. Check
//!   `SO_PEERCRED`'s pid against the holder's.
//! - **Services' hooks.** A service may run some calls at once on their connection's thread
//!   instead of in a batch ([`Service::direct`], with [`Service::runs_direct`]: reads, calls of
//!   a transaction the connection holds), learns which connection a call came on ([`Call::conn`]) and when a connection
//!   ends ([`Service::disconnected`]), may let a client run a call itself, without the owner,
//!   when that takes no waiting ([`Service::try_here`]), and may add text keys to the welcome
//!   ([`Options::info`]). [`Connection`] is one connection for a client that speaks the
//!   protocol itself.
//! - **Versioning.** `protocol` is 1. A later version that only adds keys or message types
//!   keeps it; anything else raises it, and the owner refuses other versions by name.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod address;
mod client;
mod connection;
mod error;
mod failure;
mod node;
mod options;
mod peer;
mod poller;
mod queue;
mod reply;
mod server;
mod service;
mod standin;
pub mod wire;

pub use address::{owner_lock_path, socket_name};
pub use client::CallError;
pub use connection::Connection;
pub use error::OwnerError;
pub use failure::{Applied, Failure, FailureKind};
pub use node::Node;
pub use options::{Options, compare_versions};
pub use service::{Batch, Call, ClientId, ConnId, Service};

/// The CBOR encoding of a call's outcome, as a service that records outcomes stores it and
/// answers a retry with ([`Call::answer_recorded`]).
///
/// ```
/// use litekeep_owner::{decode_outcome, encode_outcome};
/// let bytes = encode_outcome(&Ok::<_, litekeep_owner::Failure>(42u32)).unwrap();
/// assert_eq!(decode_outcome::<u32>(&bytes).unwrap(), Ok(42));
/// ```
///
/// # Errors
/// When the response does not encode (a map with keys CBOR cannot take).
pub fn encode_outcome<T: serde::Serialize>(
    outcome: &Result<T, Failure>,
) -> Result<Vec<u8>, String> {
    let outcome = match outcome {
        Ok(v) => wire::Outcome::from_result(Ok(wire::encode(v)?)),
        Err(f) => wire::Outcome::from_result(Err(f.clone())),
    };
    wire::encode(&outcome)
}

/// Decodes what [`encode_outcome`] made.
///
/// # Errors
/// When `bytes` are not an encoded outcome of a `T`.
pub fn decode_outcome<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<Result<T, Failure>, String> {
    let outcome: wire::Outcome = wire::decode(bytes)?;
    match outcome.into_result() {
        Ok(ok) => wire::decode(&ok).map(Ok),
        Err(f) => Ok(Err(f)),
    }
}
