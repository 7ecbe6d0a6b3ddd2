//! One thread that reads every client connection past its handshake (epoll), for services that
//! run no call directly ([`Service::runs_direct`] false).
//!
//! A thread per connection costs a wake-up per call: the connection's thread sleeps in
//! `poll(2)` between calls. Here one thread sleeps for all of them: when it wakes, it reads
//! every frame that came from every ready connection and queues their calls. One call, and no
//! batch running: it runs the batch itself, at once (no hand-off when the owner is idle), and
//! when that batch looks for more calls it reads the connections again (without waiting), so
//! that calls that came meanwhile join it. More calls: the committer thread runs the batch while
//! this one reads on. Under load neither thread sleeps much.
//!
//! The rules are the per-connection thread's (`server.rs`): a frame cut off is never applied;
//! one over the limit, one that is not of this protocol, or the rest of a frame that does not
//! come within the frame timeout ends the connection with an error saying why; replies go
//! through the connection's [`Replies`]; a handover is answered on a thread of its own; a
//! connection whose reading side is shut down while the owner stops is told it stepped down.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};
use rustix::net::RecvFlags;

use crate::failure::Failure;
use crate::queue::with_refill;
use crate::reply::Replies;
use crate::server::{Connected, Handled, Shared, frame_error, handle, handover, stepped_down};
use crate::service::{ClientId, ConnId, Service};
use crate::standin::{self, Lone};
use crate::wire::{self, FromOwner, ReadError};

/// The token of the poller's bell in its epoll set (connections use their ids, from 1).
const BELL: u64 = 0;

/// At most this many bytes are read from one connection per wake-up, so that one busy client
/// cannot keep the others waiting.
const READ_PER_ROUND: usize = 256 * 1024;

/// A connection handed to the poller after its welcome.
pub(crate) struct Handed<S: Service> {
    pub id: ConnId,
    pub client: ClientId,
    pub stream: Arc<UnixStream>,
    /// Bytes read past the hello.
    pub read: Vec<u8>,
    pub connected: Connected<S>,
}

/// One connection the poller reads.
struct Conn<S: Service> {
    id: ConnId,
    client: ClientId,
    stream: Arc<UnixStream>,
    replies: Arc<Replies<S>>,
    /// Bytes read that do not make a whole frame yet.
    buf: Vec<u8>,
    /// When the frame at the head of `buf` began to arrive, while it is not whole.
    since: Option<Instant>,
    _connected: Connected<S>,
}

/// The poller: its epoll set, its bell, and the connections handed to it.
pub(crate) struct Poller<S: Service> {
    epoll: OwnedFd,
    bell: OwnedFd,
    inbox: Mutex<Vec<Handed<S>>>,
    /// The connections it reads: by its thread, by a batch that thread runs (refill), and by
    /// the stand-in while that batch runs long.
    conns: Mutex<HashMap<ConnId, Conn<S>>>,
    /// Connections that ended while a batch read for more calls: closed once it is done (the
    /// service hears of their end outside its batch).
    closing: Mutex<Vec<Conn<S>>>,
    /// The lone batches its thread runs, watched by the stand-in (`standin.rs`).
    lone: Arc<Lone>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Service> Poller<S> {
    /// Starts the poller's thread.
    pub fn start(shared: &Arc<Shared<S>>) -> std::io::Result<Arc<Poller<S>>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let bell = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &bell,
            epoll::EventData::new_u64(BELL),
            epoll::EventFlags::IN,
        )?;
        let poller = Arc::new(Poller {
            epoll,
            bell,
            inbox: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            closing: Mutex::new(Vec::new()),
            lone: Arc::new(Lone::default()),
        });
        let (me, weak) = (Arc::downgrade(&poller), Arc::downgrade(shared));
        standin::spawn(poller.lone.clone(), move |seq| {
            me.upgrade().is_some_and(|p| p.stand_in(&weak, seq))
        })?;
        let (me, weak) = (poller.clone(), Arc::downgrade(shared));
        let spawned = std::thread::Builder::new()
            .name("litekeep-owner-poll".into())
            .spawn(move || {
                me.run(&weak);
                me.lone.stop();
            });
        if let Err(e) = spawned {
            poller.lone.stop();
            return Err(e);
        }
        Ok(poller)
    }

    /// Hands a connection over (from its handshake thread).
    pub fn hand(&self, conn: Handed<S>) {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        self.ring();
    }

    /// Wakes the poller: new connections, or the owner stops.
    pub fn ring(&self) {
        let _ = rustix::io::write(&self.bell, &1u64.to_ne_bytes());
    }

    fn run(self: &Arc<Self>, weak: &std::sync::Weak<Shared<S>>) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        loop {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let stopping = shared.stopping.load(Ordering::SeqCst);
            let deadline = {
                let conns = lock(&self.conns);
                if stopping && conns.is_empty() && self.inbox_is_empty() {
                    return;
                }
                next_deadline(&conns, shared.options.frame_timeout)
            };
            let timeout = deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
                .map(|left| if stopping { left.min(TICK) } else { left })
                .or(stopping.then_some(TICK))
                .map(timespec);
            events.clear();
            // Not holding `shared` while asleep: the server may go meanwhile.
            drop(shared);
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => std::thread::sleep(TICK),
            }
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let queued = self.read_events(&shared, &events);
            if queued == 1 {
                // Run at once, here; the batch reads for more calls when it looks for them.
                let (me, sh) = (self.clone(), shared.clone());
                let refill = Box::new(move || me.refill(&sh));
                self.lone.begin();
                with_refill(refill, || shared.queue.kick(true));
                self.lone.end();
            } else if queued > 1 {
                // The committer thread runs the batch, while this one reads on.
                shared.queue.kick(false);
            }
            let ended = std::mem::take(&mut *lock(&self.closing));
            for conn in ended {
                forget(&shared, conn);
            }
        }
    }

    /// Handles the events of one wait, outside any batch, and ends the connections whose frame
    /// is overdue; gives how many frames it handled.
    fn read_events(&self, shared: &Arc<Shared<S>>, events: &[epoll::Event]) -> usize {
        let mut conns = lock(&self.conns);
        let queued = self.process(shared, &mut conns, events, false);
        self.expire(shared, &mut conns);
        queued
    }

    /// Handles the events of one wait: takes new connections (not while `refilling`: a batch
    /// runs), reads the ready ones and queues their calls; gives how many frames it handled.
    fn process(
        &self,
        shared: &Arc<Shared<S>>,
        conns: &mut HashMap<ConnId, Conn<S>>,
        events: &[epoll::Event],
        refilling: bool,
    ) -> usize {
        let mut queued = 0usize;
        for event in events {
            let token = event.data.u64();
            if token == BELL {
                if !refilling {
                    self.take_inbox(shared, conns);
                }
                continue;
            }
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            match read_ready(conn, shared, &mut queued) {
                Keep::Open => {}
                Keep::Close if refilling => {
                    if let Some(conn) = self.release(conns, token) {
                        lock(&self.closing).push(conn);
                    }
                }
                Keep::Close => self.close(shared, conns, token),
                Keep::HandOver(version) => {
                    if let Some(conn) = self.release(conns, token) {
                        hand_over(shared, conn, version);
                    }
                }
            }
        }
        queued
    }

    /// Reads, without waiting, what came since: called by a batch this thread runs when it
    /// looks for more calls.
    fn refill(&self, shared: &Arc<Shared<S>>) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&now),
        )
        .is_err()
        {
            return;
        }
        let mut conns = lock(&self.conns);
        self.process(shared, &mut conns, &events, true);
    }

    /// Reads in the place of this poller's thread while it runs the lone batch `seq`, as its
    /// own loop would; whether the server is still there.
    fn stand_in(&self, weak: &std::sync::Weak<Shared<S>>, seq: u64) -> bool {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        while self.lone.running(seq) {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timespec(standin::TICK)),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => std::thread::sleep(standin::TICK),
            }
            let Some(shared) = weak.upgrade() else {
                return false;
            };
            if self.read_events(&shared, &events) > 0 {
                // Taken by the running batch when it looks for more, else by the committer.
                shared.queue.kick(false);
            }
        }
        true
    }

    fn inbox_is_empty(&self) -> bool {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Takes the connections handed over since the last time into the epoll set.
    fn take_inbox(&self, shared: &Arc<Shared<S>>, conns: &mut HashMap<ConnId, Conn<S>>) {
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&self.bell, &mut count);
        let handed =
            std::mem::take(&mut *self.inbox.lock().unwrap_or_else(PoisonError::into_inner));
        for h in handed {
            let id = h.id;
            let added = epoll::add(
                &self.epoll,
                h.stream.as_fd(),
                epoll::EventData::new_u64(id),
                epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
            );
            let conn = Conn {
                id,
                client: h.client,
                replies: Replies::new(h.stream.clone()),
                stream: h.stream,
                since: (!h.read.is_empty()).then(Instant::now),
                buf: h.read,
                _connected: h.connected,
            };
            conns.insert(id, conn);
            if added.is_err() {
                self.close(shared, conns, id);
                continue;
            }
            // Frames that came with the hello: as if just read.
            if let Some(conn) = conns.get_mut(&id) {
                let mut queued = 0;
                match frames(conn, shared, &mut queued) {
                    Keep::Open => {}
                    Keep::Close => self.close(shared, conns, id),
                    Keep::HandOver(version) => {
                        if let Some(conn) = self.release(conns, id) {
                            hand_over(shared, conn, version);
                        }
                    }
                }
                if queued > 0 {
                    shared.queue.kick(false);
                }
            }
        }
    }

    /// Ends the connections whose frame did not come whole within the frame timeout.
    fn expire(&self, shared: &Arc<Shared<S>>, conns: &mut HashMap<ConnId, Conn<S>>) {
        let timeout = shared.options.frame_timeout;
        let now = Instant::now();
        let late: Vec<ConnId> = conns
            .values()
            .filter(|c| c.since.is_some_and(|s| now.duration_since(s) >= timeout))
            .map(|c| c.id)
            .collect();
        for id in late {
            if let Some(conn) = conns.get(&id) {
                let e = ReadError::Io(std::io::ErrorKind::TimedOut.into());
                if let Some(f) = frame_error(e, "a frame") {
                    end(conn, f);
                }
            }
            self.close(shared, conns, id);
        }
    }

    /// Takes a connection out of the epoll set and the poller's hands (it stays among the
    /// server's connections).
    fn release(&self, conns: &mut HashMap<ConnId, Conn<S>>, id: ConnId) -> Option<Conn<S>> {
        let conn = conns.remove(&id)?;
        let _ = epoll::delete(&self.epoll, conn.stream.as_fd());
        Some(conn)
    }

    /// Closes a connection: out of the epoll set and the server's connections, then dropped
    /// (the service hears it ended).
    fn close(&self, shared: &Arc<Shared<S>>, conns: &mut HashMap<ConnId, Conn<S>>, id: ConnId) {
        if let Some(conn) = self.release(conns, id) {
            forget(shared, conn);
        }
    }
}

/// How often a stopping poller looks whether its connections are all gone.
const TICK: Duration = Duration::from_millis(50);

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Rounded up: a deadline is never woken for before it is due.
        tv_nsec: i64::from(d.subsec_nanos()) + 1,
    }
}

/// The earliest moment a partial frame's rest is due.
fn next_deadline<S: Service>(
    conns: &HashMap<ConnId, Conn<S>>,
    timeout: Duration,
) -> Option<Instant> {
    conns
        .values()
        .filter_map(|c| c.since)
        .min()
        .map(|s| s + timeout)
}

/// Removes the connection from the server's list, under its lock, before it is closed: a
/// number there is never another file's.
fn forget<S: Service>(shared: &Shared<S>, conn: Conn<S>) {
    shared
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&conn.id);
    drop(conn);
}

/// Answers a handover on a thread of its own (the owner steps down meanwhile, waiting for its
/// connections), then closes the connection.
fn hand_over<S: Service>(shared: &Arc<Shared<S>>, conn: Conn<S>, version: String) {
    let shared = shared.clone();
    let run = move || {
        handover(&shared, &conn.stream, conn.id, &version);
        forget(&shared, conn);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("litekeep-owner-handover".into())
        .spawn(run)
    {
        // The closure, and the connection in it, are gone: the client sees the end.
        let _ = e;
    }
}

/// What to do with a connection after reading it.
enum Keep {
    Open,
    Close,
    HandOver(String),
}

/// Sends a connection-ending failure through the connection's line.
fn end<S: Service>(conn: &Conn<S>, f: Failure) {
    conn.replies
        .send(wire::frame(&FromOwner::Error { error: f }), None);
}

/// Reads what a ready connection has (up to [`READ_PER_ROUND`]) and queues its whole frames.
fn read_ready<S: Service>(conn: &mut Conn<S>, shared: &Arc<Shared<S>>, queued: &mut usize) -> Keep {
    let mut chunk = [0u8; 16 * 1024];
    let mut got = 0;
    let mut closed = false;
    while got < READ_PER_ROUND {
        match rustix::net::recv(&*conn.stream, &mut chunk, RecvFlags::DONTWAIT) {
            Ok((0, _)) => {
                closed = true;
                break;
            }
            Ok((n, _)) => {
                if conn.buf.is_empty() {
                    conn.since = Some(Instant::now());
                }
                conn.buf.extend_from_slice(&chunk[..n]);
                got += n;
                if n < chunk.len() {
                    break;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => break,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    match frames(conn, shared, queued) {
        Keep::Open if closed => {
            if shared.stopping.load(Ordering::SeqCst) {
                end(conn, stepped_down());
            }
            // A frame cut off is never applied: nothing of it reached the queue.
            Keep::Close
        }
        keep => keep,
    }
}

/// Takes the whole frames at the head of the connection's buffer and handles each.
fn frames<S: Service>(conn: &mut Conn<S>, shared: &Arc<Shared<S>>, queued: &mut usize) -> Keep {
    let max = shared.options.max_frame;
    let mut at = 0;
    let keep = loop {
        let rest = &conn.buf[at..];
        let Some(header) = rest.get(..4) else {
            break Keep::Open;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if len > max {
            if let Some(f) = frame_error(ReadError::TooLarge(u64::from(len)), "a frame") {
                end(conn, f);
            }
            break Keep::Close;
        }
        let Some(payload) = rest.get(4..4 + len as usize) else {
            break Keep::Open;
        };
        at += 4 + len as usize;
        match handle(shared, &conn.replies, conn.id, conn.client, payload, false) {
            Handled::Queued => *queued += 1,
            Handled::Answered => {}
            Handled::End => break Keep::Close,
            Handled::HandOver(v) => break Keep::HandOver(v),
        }
    };
    conn.buf.drain(..at);
    if conn.buf.is_empty() {
        conn.since = None;
    } else if at > 0 {
        // The next frame began with this read, not with the one taken.
        conn.since = Some(Instant::now());
    }
    keep
}
