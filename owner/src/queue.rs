//! The owner's queue and its group commit, leader/follower: the thread that brings a request
//! and finds no batch running runs the batch itself (no hand-off to another thread when the
//! owner is idle); requests that arrive meanwhile wait, and the leader of the batch that
//! answers them hands the lead to the first one still waiting.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::failure::{Applied, Failure, FailureKind};
use crate::service::{Answer, Batch, Call, ClientId, Service};
use crate::wire::{self, Outcome};

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

enum SlotState<Resp> {
    Waiting,
    /// The leader handed the lead to this slot's waiter.
    Lead,
    Done(Finished<Resp>),
}

struct Slot<S: Service> {
    call: Mutex<Option<Call<S::Request, S::Response>>>,
    key: Option<(ClientId, u64)>,
    remote: bool,
    state: Mutex<SlotState<S::Response>>,
    cv: Condvar,
}

struct State<S: Service> {
    waiting: VecDeque<Arc<Slot<S>>>,
    leading: bool,
    accepting: bool,
    /// Clients' calls queued or running, by (client, seq): a retry of one joins it.
    in_flight: HashMap<(ClientId, u64), Arc<Slot<S>>>,
    /// Calls submitted whose waiters have not finished with them ([`Ticket`]).
    busy: usize,
}

/// The queue of one owner.
pub(crate) struct Queue<S: Service> {
    service: Arc<S>,
    limits: Limits,
    state: Mutex<State<S>>,
    idle: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A submitted call, until its waiter has answered its client; counted for a drain.
pub(crate) struct Ticket<S: Service> {
    queue: Arc<Queue<S>>,
}

impl<S: Service> Drop for Ticket<S> {
    fn drop(&mut self) {
        let mut st = lock(&self.queue.state);
        st.busy -= 1;
        if st.busy == 0 {
            self.queue.idle.notify_all();
        }
    }
}

impl<S: Service> Queue<S> {
    pub fn new(service: Arc<S>, limits: Limits) -> Arc<Queue<S>> {
        Arc::new(Queue {
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
        })
    }

    /// The service the queue runs.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Runs `call`: at once on this thread when the service takes it
    /// ([`Service::direct`]), else in a batch (leading it, when no batch runs); gives its
    /// outcome, with a ticket to drop once the client has it. A call of a client whose same
    /// (client, seq) is queued or running joins that one instead of running twice. A call
    /// refused before it was queued (the owner steps down, the queue is full) comes back with
    /// the failure.
    #[allow(clippy::type_complexity)]
    pub fn submit(
        self: &Arc<Self>,
        mut call: Call<S::Request, S::Response>,
        remote: bool,
    ) -> Result<(Finished<S::Response>, Option<Ticket<S>>), (Call<S::Request, S::Response>, Failure)>
    {
        let key = remote.then_some((call.client, call.seq));
        let mut st = lock(&self.state);
        if !st.accepting {
            drop(st);
            let f = Failure::new(
                FailureKind::SteppingDown,
                "the owner is stepping down; the request goes to the next owner",
            );
            return Err((call, f));
        }
        if let Some(slot) = key.and_then(|k| st.in_flight.get(&k)).cloned() {
            st.busy += 1;
            drop(st);
            let ticket = Ticket {
                queue: self.clone(),
            };
            return Ok((self.wait(&slot), Some(ticket)));
        }
        // Counted from here, so that a drain waits for a call the service runs directly.
        st.busy += 1;
        drop(st);
        let ticket = Ticket {
            queue: self.clone(),
        };
        let direct = catch_unwind(AssertUnwindSafe(|| self.service.direct(&mut call)));
        match direct {
            Ok(true) => return Ok((finish(call.answer.take(), remote), Some(ticket))),
            Ok(false) => {}
            Err(_) => {
                let f = Failure::new(
                    FailureKind::Panicked,
                    "the service panicked while running this request",
                )
                .applied(Applied::Unknown);
                return Ok((finished_failure(f, remote), Some(ticket)));
            }
        }
        let mut st = lock(&self.state);
        // The same call may have come again (a retry) while the service looked at this one.
        if let Some(slot) = key.and_then(|k| st.in_flight.get(&k)).cloned() {
            drop(st);
            return Ok((self.wait(&slot), Some(ticket)));
        }
        if st.waiting.len() >= self.limits.depth {
            let depth = self.limits.depth;
            drop(st);
            drop(ticket);
            let f = Failure::new(
                FailureKind::QueueFull,
                format!(
                    "the owner's queue is full ({depth} requests waiting, its depth); try again later or raise the queue depth"
                ),
            );
            return Err((call, f));
        }
        let slot = Arc::new(Slot {
            call: Mutex::new(Some(call)),
            key,
            remote,
            state: Mutex::new(SlotState::Waiting),
            cv: Condvar::new(),
        });
        st.waiting.push_back(slot.clone());
        if let Some(k) = key {
            st.in_flight.insert(k, slot.clone());
        }
        let lead = !st.leading;
        st.leading = true;
        drop(st);
        if lead {
            self.lead(&slot);
        }
        Ok((self.wait(&slot), Some(ticket)))
    }

    /// Waits for `slot`'s outcome, leading batches when handed the lead.
    fn wait(&self, slot: &Slot<S>) -> Finished<S::Response> {
        let mut st = lock(&slot.state);
        loop {
            match std::mem::replace(&mut *st, SlotState::Waiting) {
                SlotState::Done(finished) => {
                    let copy = match &finished {
                        Finished::Remote(o) => Some(Finished::Remote(o.clone())),
                        Finished::Local(_) => None,
                    };
                    // A remote outcome stays for other waiters of the same call.
                    if let Some(copy) = copy {
                        *st = SlotState::Done(finished);
                        return copy;
                    }
                    return finished;
                }
                SlotState::Lead => {
                    drop(st);
                    self.lead(slot);
                    st = lock(&slot.state);
                }
                SlotState::Waiting => {
                    st = slot.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Runs batches until `mine` is answered, then hands the lead on.
    fn lead(&self, mine: &Slot<S>) {
        loop {
            self.run_batch();
            if matches!(*lock(&mine.state), SlotState::Done(_)) {
                break;
            }
        }
        let mut st = lock(&self.state);
        match st.waiting.front() {
            Some(next) => {
                *lock(&next.state) = SlotState::Lead;
                next.cv.notify_all();
            }
            None => st.leading = false,
        }
        self.idle.notify_all();
    }

    fn run_batch(&self) {
        let mut slots: Vec<Arc<Slot<S>>> = Vec::new();
        let calls = {
            let mut pull = || {
                let slot = lock(&self.state).waiting.pop_front()?;
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
            if let Some(slot) = lock(&self.state).waiting.pop_front() {
                drop(lock(&slot.call).take());
                slots.push(slot);
            }
            let f = Failure::new(
                FailureKind::Other,
                "the service took no request from its batch",
            );
            let mut st = lock(&self.state);
            for slot in &slots {
                if let Some(k) = slot.key {
                    st.in_flight.remove(&k);
                }
            }
            drop(st);
            for slot in &slots {
                *lock(&slot.state) = SlotState::Done(finished_failure(f.clone(), slot.remote));
                slot.cv.notify_all();
            }
            return;
        }
        {
            let mut st = lock(&self.state);
            for slot in &slots {
                if let Some(k) = slot.key {
                    st.in_flight.remove(&k);
                }
            }
        }
        for (slot, call) in slots.iter().zip(calls) {
            let finished = finish(call.answer, slot.remote);
            *lock(&slot.state) = SlotState::Done(finished);
            slot.cv.notify_all();
        }
    }

    /// Stops taking calls (they are answered `stepping_down`) and waits, at most `bound`, until
    /// every call taken has been answered to its client. Whether it got there.
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

fn finished_failure<Resp>(f: Failure, remote: bool) -> Finished<Resp> {
    if remote {
        Finished::Remote(Outcome::from_result(Err(f)))
    } else {
        Finished::Local(Err(f))
    }
}

/// The service's answer, as its waiter needs it.
fn finish<Resp: serde::Serialize + serde::de::DeserializeOwned>(
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
