//! The owner's queue and its group commit.
//!
//! The thread that brings a call and finds no batch running runs one batch itself, at once (no
//! hand-off to another thread when the owner is idle). Calls that arrive while a batch runs
//! wait in the queue; when a batch is done and calls are waiting, the lead passes to the
//! queue's committer thread, which runs batches until none is waiting, then goes back to
//! sleep. Whoever runs a batch answers its calls: a call of this process by waking its waiter,
//! a client's by handing the outcome to its [`Replier`], which writes the reply to the client's
//! connection. So a connection thread goes back to reading its socket as soon as it has queued
//! a call, and sleeps only there: one wake-up per call, not two.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::failure::{Applied, Failure, FailureKind};
use crate::service::{Answer, Batch, Call, ClientId, Service};
use crate::wire::{self, Outcome};

thread_local! {
    /// This thread's way to bring the calls that came since into the queue (the poller's, while
    /// it runs a batch itself): a batch it runs asks it when no call waits.
    static REFILL: std::cell::RefCell<Option<Box<dyn Fn()>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `refill` as this thread's way to bring calls into the queue while a batch it
/// runs takes them.
pub(crate) fn with_refill<R>(refill: Box<dyn Fn()>, f: impl FnOnce() -> R) -> R {
    struct Unset;
    impl Drop for Unset {
        fn drop(&mut self) {
            REFILL.with(|r| r.borrow_mut().take());
        }
    }
    REFILL.with(|r| *r.borrow_mut() = Some(refill));
    let _unset = Unset;
    f()
}

/// Brings the calls that came since into the queue, where this thread knows how.
fn refill() {
    REFILL.with(|r| {
        if let Some(f) = r.borrow().as_ref() {
            f();
        }
    });
}

/// The queue's bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub depth: usize,
    pub max_batch: usize,
    pub max_batch_time: Duration,
}

/// What a finished call gives its waiter: the value (a call of the owner's own process), or
/// the outcome as it goes on the wire (a client's).
pub(crate) enum Finished<Resp> {
    Local(Result<Resp, Failure>),
    Remote(Outcome),
}

/// What [`Queue::try_direct`] did with a call.
pub(crate) enum Direct<S: Service> {
    /// The service ran it at once: its outcome, and its ticket to drop once the caller has it.
    Done(Finished<S::Response>, Ticket<S>),
    /// The service left it to the queue.
    Queue(Call<S::Request, S::Response>),
}

/// Where a client's outcome goes: called once, by whoever finished the call, with the outcome
/// and the call's [`Ticket`], to drop once the client has the reply.
pub(crate) type Replier<S> = Box<dyn FnOnce(&Outcome, Ticket<S>) + Send>;

struct SlotInner<S: Service> {
    done: Option<Finished<S::Response>>,
    /// A client's call: who gets its outcome (more than one when a retry of it came while it
    /// was queued or running).
    repliers: Vec<(Replier<S>, Ticket<S>)>,
}

struct Slot<S: Service> {
    call: Mutex<Option<Call<S::Request, S::Response>>>,
    key: Option<(ClientId, u64)>,
    remote: bool,
    inner: Mutex<SlotInner<S>>,
    cv: Condvar,
}

impl<S: Service> Slot<S> {
    fn new(call: Call<S::Request, S::Response>, key: Option<(ClientId, u64)>) -> Arc<Slot<S>> {
        Arc::new(Slot {
            call: Mutex::new(Some(call)),
            key,
            remote: key.is_some(),
            inner: Mutex::new(SlotInner {
                done: None,
                repliers: Vec::new(),
            }),
            cv: Condvar::new(),
        })
    }

    /// Records the outcome and answers: wakes a local waiter, or hands a client's outcome to
    /// its repliers.
    fn finish(&self, finished: Finished<S::Response>) {
        let mut inner = lock(&self.inner);
        if let Finished::Remote(outcome) = &finished {
            for (reply, ticket) in inner.repliers.drain(..) {
                reply(outcome, ticket);
            }
        }
        inner.done = Some(finished);
        drop(inner);
        self.cv.notify_all();
    }

    /// Adds a replier to a client's call: answered at once when the call is done already.
    fn attach(&self, reply: Replier<S>, ticket: Ticket<S>) {
        let mut inner = lock(&self.inner);
        match &inner.done {
            Some(Finished::Remote(outcome)) => reply(outcome, ticket),
            _ => inner.repliers.push((reply, ticket)),
        }
    }
}

struct State<S: Service> {
    waiting: VecDeque<Arc<Slot<S>>>,
    leading: bool,
    accepting: bool,
    /// Clients' calls queued or running, by (client, seq): a retry of one joins it.
    in_flight: HashMap<(ClientId, u64), Arc<Slot<S>>>,
    /// Calls submitted whose answers have not reached their callers ([`Ticket`]).
    busy: usize,
}

/// The committer thread's bell: `go` when it is handed the lead, `stop` when the queue is gone.
#[derive(Default)]
struct Handoff {
    flags: Mutex<(bool, bool)>,
    cv: Condvar,
}

/// The queue of one owner.
pub(crate) struct Queue<S: Service> {
    service: Arc<S>,
    limits: Limits,
    state: Mutex<State<S>>,
    idle: Condvar,
    /// None when its thread could not be started: a leader then runs batches until none waits.
    committer: Option<Arc<Handoff>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A submitted call, until its answer has reached its caller; counted for a drain.
pub(crate) struct Ticket<S: Service> {
    queue: Weak<Queue<S>>,
}

impl<S: Service> Drop for Ticket<S> {
    fn drop(&mut self) {
        let Some(queue) = self.queue.upgrade() else {
            return;
        };
        let mut st = lock(&queue.state);
        st.busy -= 1;
        if st.busy == 0 {
            queue.idle.notify_all();
        }
    }
}

impl<S: Service> Queue<S> {
    pub fn new(service: Arc<S>, limits: Limits) -> Arc<Queue<S>> {
        Arc::new_cyclic(|me: &Weak<Queue<S>>| {
            let handoff = Arc::new(Handoff::default());
            let (queue, bell) = (me.clone(), handoff.clone());
            let committer = std::thread::Builder::new()
                .name("litekeep-owner-commit".into())
                .spawn(move || commit_loop(&queue, &bell))
                .ok()
                .map(|_| handoff);
            Queue {
                service,
                limits,
                state: Mutex::new(State {
                    waiting: VecDeque::new(),
                    leading: false,
                    accepting: true,
                    in_flight: HashMap::new(),
                    busy: 0,
                }),
                idle: Condvar::new(),
                committer,
            }
        })
    }

    /// The service the queue runs.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Offers `call` to the service to run at once on this thread ([`Service::direct`]),
    /// counted for a drain while it runs. A call refused (the owner steps down) comes back
    /// with the failure; a panic of the service fails this call alone (`panicked`, outcome
    /// unknown).
    #[allow(clippy::type_complexity)]
    pub fn try_direct(
        self: &Arc<Self>,
        mut call: Call<S::Request, S::Response>,
        remote: bool,
    ) -> Result<Direct<S>, (Call<S::Request, S::Response>, Failure)> {
        let mut st = lock(&self.state);
        if !st.accepting {
            drop(st);
            let f = Failure::new(
                FailureKind::SteppingDown,
                "the owner is stepping down; the request goes to the next owner",
            );
            return Err((call, f));
        }
        st.busy += 1;
        drop(st);
        let ticket = self.ticket();
        match catch_unwind(AssertUnwindSafe(|| self.service.direct(&mut call))) {
            Ok(true) => Ok(Direct::Done(finish(call.answer.take(), remote), ticket)),
            Ok(false) => Ok(Direct::Queue(call)),
            Err(_) => {
                let f = Failure::new(
                    FailureKind::Panicked,
                    "the service panicked while running this request",
                )
                .applied(Applied::Unknown);
                Ok(Direct::Done(finished_failure(f, remote), ticket))
            }
        }
    }

    /// Why a call is refused before it is queued, if it is: the owner steps down, or the
    /// queue is full.
    fn refusal(&self, st: &State<S>) -> Option<Failure> {
        if !st.accepting {
            return Some(Failure::new(
                FailureKind::SteppingDown,
                "the owner is stepping down; the request goes to the next owner",
            ));
        }
        if st.waiting.len() >= self.limits.depth {
            let depth = self.limits.depth;
            return Some(Failure::new(
                FailureKind::QueueFull,
                format!(
                    "the owner's queue is full ({depth} requests waiting, its depth); try again later or raise the queue depth"
                ),
            ));
        }
        None
    }

    /// Runs a call of this process in a batch (running the batch itself when none runs) and
    /// gives its outcome, with a ticket to drop once the caller has it. A call refused before
    /// it was queued (the owner steps down, the queue is full) comes back with the failure.
    #[allow(clippy::type_complexity)]
    pub fn submit_local(
        self: &Arc<Self>,
        call: Call<S::Request, S::Response>,
    ) -> Result<(Finished<S::Response>, Ticket<S>), (Call<S::Request, S::Response>, Failure)> {
        let mut st = lock(&self.state);
        if let Some(f) = self.refusal(&st) {
            return Err((call, f));
        }
        let slot = Slot::new(call, None);
        st.waiting.push_back(slot.clone());
        st.busy += 1;
        let lead = !std::mem::replace(&mut st.leading, true);
        drop(st);
        let ticket = self.ticket();
        if lead {
            self.lead_once();
        }
        let mut inner = lock(&slot.inner);
        loop {
            if let Some(finished) = inner.done.take() {
                return Ok((finished, ticket));
            }
            inner = slot.cv.wait(inner).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Starts a batch of the calls waiting when none runs: on this thread when `here`, else
    /// on the committer thread (so that this one goes on reading). Nothing when a batch runs
    /// (its leader takes the calls) or none waits.
    pub fn kick(self: &Arc<Self>, here: bool) {
        let mut st = lock(&self.state);
        if st.leading || st.waiting.is_empty() {
            return;
        }
        st.leading = true;
        drop(st);
        match (&self.committer, here) {
            (Some(handoff), false) => {
                lock(&handoff.flags).0 = true;
                handoff.cv.notify_one();
            }
            _ => self.lead_once(),
        }
    }

    /// Queues a client's call and returns (the caller [`kick`](Queue::kick)s the queue once
    /// it has queued what it has): whoever finishes the call hands its outcome to `reply`. A
    /// call whose same (client, seq) is queued or running joins that one instead of running
    /// twice. A call refused before it was queued comes back with the failure and the replier.
    // The refusal hands the call back whole, so that it can go to the next owner; it is rare.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn queue_remote(
        self: &Arc<Self>,
        call: Call<S::Request, S::Response>,
        reply: Replier<S>,
    ) -> Result<(), (Call<S::Request, S::Response>, Failure, Replier<S>)> {
        let key = (call.client, call.seq);
        let mut st = lock(&self.state);
        if !st.accepting
            && let Some(f) = self.refusal(&st)
        {
            return Err((call, f, reply));
        }
        if let Some(slot) = st.in_flight.get(&key).cloned() {
            st.busy += 1;
            drop(st);
            slot.attach(reply, self.ticket());
            return Ok(());
        }
        if let Some(f) = self.refusal(&st) {
            return Err((call, f, reply));
        }
        let slot = Slot::new(call, Some(key));
        lock(&slot.inner).repliers.push((reply, self.ticket()));
        st.waiting.push_back(slot.clone());
        st.in_flight.insert(key, slot);
        st.busy += 1;
        Ok(())
    }

    /// A ticket for a call counted in `busy` (the caller counted it).
    fn ticket(self: &Arc<Self>) -> Ticket<S> {
        Ticket {
            queue: Arc::downgrade(self),
        }
    }

    /// Runs one batch, then passes the lead on: to the committer thread when calls are waiting.
    fn lead_once(&self) {
        self.run_batch();
        if self.idle_if_done() {
            return;
        }
        match &self.committer {
            Some(handoff) => {
                lock(&handoff.flags).0 = true;
                handoff.cv.notify_one();
            }
            None => self.lead_until_done(),
        }
    }

    /// Runs batches until no call waits.
    fn lead_until_done(&self) {
        loop {
            self.run_batch();
            if self.idle_if_done() {
                return;
            }
        }
    }

    /// Ends the lead when no call waits; whether it did.
    fn idle_if_done(&self) -> bool {
        let mut st = lock(&self.state);
        if !st.waiting.is_empty() {
            return false;
        }
        st.leading = false;
        drop(st);
        self.idle.notify_all();
        true
    }

    fn run_batch(&self) {
        let mut slots: Vec<Arc<Slot<S>>> = Vec::new();
        let calls = {
            let mut pull = || {
                let mut slot = lock(&self.state).waiting.pop_front();
                if slot.is_none() {
                    refill();
                    slot = lock(&self.state).waiting.pop_front();
                }
                let slot = slot?;
                let call = lock(&slot.call).take()?;
                slots.push(slot);
                Some(call)
            };
            let mut batch = Batch {
                calls: Vec::new(),
                pull: &mut pull,
                started: Instant::now(),
                max_calls: self.limits.max_batch.max(1),
                max_time: self.limits.max_batch_time,
            };
            let ran = catch_unwind(AssertUnwindSafe(|| self.service.run(&mut batch)));
            let panicked = ran.is_err();
            let mut calls = std::mem::take(&mut batch.calls);
            if panicked {
                let f = Failure::new(
                    FailureKind::Panicked,
                    "the service panicked while running this request's batch",
                )
                .applied(Applied::Unknown);
                for c in &mut calls {
                    c.answer(Err(f.clone()));
                }
            }
            calls
        };
        if slots.is_empty() {
            // A service that takes no call would leave the leader looping: answer the first.
            let Some(slot) = lock(&self.state).waiting.pop_front() else {
                return;
            };
            drop(lock(&slot.call).take());
            let f = Failure::new(
                FailureKind::Other,
                "the service took no request from its batch",
            );
            self.forget(std::slice::from_ref(&slot));
            let remote = slot.remote;
            slot.finish(finished_failure(f, remote));
            return;
        }
        self.forget(&slots);
        for (slot, call) in slots.iter().zip(calls) {
            slot.finish(finish(call.answer, slot.remote));
        }
    }

    /// Takes `slots` out of the calls in flight (a retry of one now runs as a new call, and
    /// finds its record).
    fn forget(&self, slots: &[Arc<Slot<S>>]) {
        let mut st = lock(&self.state);
        for slot in slots {
            if let Some(k) = slot.key {
                st.in_flight.remove(&k);
            }
        }
    }

    /// Stops taking calls (they are answered `stepping_down`) and waits, at most `bound`, until
    /// every call taken has been answered to its caller. Whether it got there.
    pub fn drain(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut st = lock(&self.state);
        st.accepting = false;
        while st.busy > 0 || st.leading || !st.waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .idle
                .wait_timeout(st, left.min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl<S: Service> Drop for Queue<S> {
    fn drop(&mut self) {
        if let Some(handoff) = &self.committer {
            lock(&handoff.flags).1 = true;
            handoff.cv.notify_one();
        }
    }
}

/// The committer thread: sleeps until handed the lead, then runs batches until none waits;
/// leaves when the queue is gone.
fn commit_loop<S: Service>(queue: &Weak<Queue<S>>, handoff: &Handoff) {
    loop {
        {
            let mut flags = lock(&handoff.flags);
            while !flags.0 && !flags.1 {
                flags = handoff
                    .cv
                    .wait(flags)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if flags.1 {
                return;
            }
            flags.0 = false;
        }
        let Some(queue) = queue.upgrade() else {
            return;
        };
        queue.lead_until_done();
    }
}

fn finished_failure<Resp>(f: Failure, remote: bool) -> Finished<Resp> {
    if remote {
        Finished::Remote(Outcome::from_result(Err(f)))
    } else {
        Finished::Local(Err(f))
    }
}

/// The service's answer, as its waiter needs it.
pub(crate) fn finish<Resp: serde::Serialize + serde::de::DeserializeOwned>(
    answer: Option<Answer<Resp>>,
    remote: bool,
) -> Finished<Resp> {
    let unanswered = || {
        Failure::new(
            FailureKind::Other,
            "the service took this request into a batch and gave no answer",
        )
        .applied(Applied::Unknown)
    };
    match (answer, remote) {
        (None, _) => finished_failure(unanswered(), remote),
        (Some(Answer::Value(v)), false) => Finished::Local(v),
        (Some(Answer::Value(v)), true) => {
            Finished::Remote(Outcome::from_result(v.and_then(|resp| {
                wire::encode(&resp).map_err(|e| {
                    Failure::new(FailureKind::Other, format!("encoding the response: {e}"))
                        .applied(Applied::Unknown)
                })
            })))
        }
        (Some(Answer::Encoded(bytes)), true) => {
            Finished::Remote(wire::decode::<Outcome>(&bytes).unwrap_or_else(|e| {
                Outcome::from_result(Err(Failure::new(
                    FailureKind::Other,
                    format!("the recorded outcome does not decode: {e}"),
                )
                .applied(Applied::Unknown)))
            }))
        }
        (Some(Answer::Encoded(bytes)), false) => {
            let bad = |e: String| {
                Failure::new(
                    FailureKind::Other,
                    format!("the recorded outcome does not decode: {e}"),
                )
                .applied(Applied::Unknown)
            };
            Finished::Local(match wire::decode::<Outcome>(&bytes) {
                Err(e) => Err(bad(e)),
                Ok(o) => o
                    .into_result()
                    .and_then(|ok| wire::decode::<Resp>(&ok).map_err(bad)),
            })
        }
    }
}
