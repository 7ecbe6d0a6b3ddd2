//! [`Replies`]: what the owner writes to one connection, in order, from whichever thread
//! finished a call — never blocking a batch on a client that does not read.
//!
//! A reply is written at once when the socket takes it whole (it nearly always does: a client
//! has one call at a time, and a reply is small); what it does not take waits in the
//! connection's line, which a writer thread of its own empties with blocking writes bounded by
//! the connection's write timeout. A client that does not read within that time is cut off: its
//! calls were recorded, and a retry learns their outcome.

use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::queue::Ticket;
use crate::service::Service;
use crate::wire;

/// One connection's outgoing frames.
pub(crate) struct Replies<S: Service> {
    stream: Arc<UnixStream>,
    line: Mutex<Line<S>>,
}

struct Line<S: Service> {
    /// Frames not written whole yet, with how much of each is written and the ticket of the
    /// call each answers (dropped once it is written).
    waiting: VecDeque<(Vec<u8>, usize, Option<Ticket<S>>)>,
    /// A writer thread is emptying `waiting`.
    writing: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Service> Replies<S> {
    pub fn new(stream: Arc<UnixStream>) -> Arc<Replies<S>> {
        Arc::new(Replies {
            stream,
            line: Mutex::new(Line {
                waiting: VecDeque::new(),
                writing: false,
            }),
        })
    }

    /// Writes `frame` after the frames before it, without blocking; `ticket` is dropped once it
    /// is written (or the client is gone).
    pub fn send(self: &Arc<Self>, frame: Vec<u8>, ticket: Option<Ticket<S>>) {
        let mut line = lock(&self.line);
        if line.waiting.is_empty() {
            let written = match write_now(&self.stream, &frame) {
                Ok(n) => n,
                // The client is gone: nothing to write to (a retry of its call finds the
                // record).
                Err(_) => return,
            };
            if written == frame.len() {
                return;
            }
            line.waiting.push_back((frame, written, ticket));
        } else {
            line.waiting.push_back((frame, 0, ticket));
        }
        if line.writing {
            return;
        }
        line.writing = true;
        drop(line);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("litekeep-owner-reply".into())
            .spawn(move || me.write_line());
        if spawned.is_err() {
            // No thread to wait for the client: cut it off (its retries find the records).
            self.cut_off();
        }
    }

    /// Empties the line with blocking writes (bounded by the socket's write timeout).
    fn write_line(&self) {
        loop {
            let mut line = lock(&self.line);
            let Some((frame, written, _)) = line.waiting.front() else {
                line.writing = false;
                return;
            };
            let rest = frame[*written..].to_vec();
            drop(line);
            if wire::send_all(&*self.stream, &rest).is_err() {
                self.cut_off();
                return;
            }
            lock(&self.line).waiting.pop_front();
        }
    }

    /// Gives up on a client that does not read: drops what waits for it and shuts the
    /// connection down (its thread sees the end and leaves).
    fn cut_off(&self) {
        let mut line = lock(&self.line);
        line.waiting.clear();
        line.writing = false;
        drop(line);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Writes what the socket takes of `bytes` now; how much.
fn write_now(stream: &UnixStream, bytes: &[u8]) -> std::io::Result<usize> {
    use rustix::net::SendFlags;
    let mut written = 0;
    while written < bytes.len() {
        match rustix::net::send(
            stream,
            &bytes[written..],
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}
