//! The in-process state of one lock file: who in this process holds it, who waits, and what the
//! process's one descriptor holds at the OS level.
//!
//! flock(2) locks belong to an open file description, so every thread of a process shares the
//! one descriptor the registry keeps, and the OS cannot tell those threads apart. This module
//! does: it admits threads (and async tasks) one exclusive holder or many shared ones at a
//! time, hands the lock between them through a condvar without touching the disk, and refuses a
//! holder that asks again ([`Refusal::WouldDeadlock`]) instead of letting it wait on itself.
//!
//! A thread talks to the OS either under the mutex (a non-blocking attempt, an unlock) or, for a
//! call that waits, after setting `acquiring` (the others then wait on the condvar). The OS
//! lock is kept while anybody in the process holds or waits for it, within a fairness slice, so
//! a busy process cannot starve other processes (see [`OsLock::lock`]).
//!
//! The logic is generic over [`OsLock`] so that the loom model (`tests/loom.rs`) runs this very
//! code against a fake OS lock.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::clock::Stamp;
use crate::mode::Mode;
use crate::sync::{self, Condvar, Mutex, MutexGuard, ThreadId};

/// A process that keeps re-taking the OS lock for longer than this checks whether another
/// process is waiting and, if so, lets it go first.
pub const FAIR_SLICE: Duration = Duration::from_millis(2);

/// A re-acquisition less than this long after the process released the OS lock continues the
/// same run of occupancy for fairness: the fairness slice goes on.
pub const RUN_GAP: Duration = Duration::from_millis(5);

/// A re-acquisition less than this long after the process released the OS lock, taken at the
/// first attempt, keeps the holder record as it is (rewriting it costs a `pwrite`, as much as
/// the lock itself). The gap is measured on the coarse clock (`clock.rs`), so on Linux it
/// means "within the same clock tick" (1 to 10 ms). Another process would have to wake, take
/// the lock, write its record and release it within that gap for the record to name it while
/// this process holds the lock; a waiter then still reports this process by its pid and command
/// (taken from `/proc/locks`, which the record must agree with), only without the label.
pub const RECORD_GAP: Duration = Duration::from_micros(100);

/// How long a waiter spins (re-checking the state) before it sleeps on the condvar. The loom
/// model does not spin: it would only multiply the interleavings of the same checks.
#[cfg(not(loom))]
const SPIN_BUDGET: Duration = Duration::from_micros(20);
#[cfg(loom)]
const SPIN_BUDGET: Duration = Duration::ZERO;
/// Pause instructions between two looks at the state while spinning.
const SPIN_BATCH: u32 = 4;

/// How long to wait for the OS lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsWait {
    /// One non-blocking attempt.
    NoWait,
    /// Keep trying until this instant.
    Until(Instant),
    /// Block until the lock is granted.
    Forever,
}

/// What an OS-level lock attempt achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsOutcome {
    /// The lock is held.
    Acquired {
        /// Another process held the lock or was let in first during this acquisition, so it
        /// may have rewritten the holder record.
        contended: bool,
    },
    /// Not obtained within the wait.
    NotAcquired,
}

/// The OS side of the lock: the flock calls on the process's one descriptor.
pub trait OsLock: Send + Sync {
    /// Takes `mode` (or converts the held mode to it) within `wait`. With `yield_first`, the
    /// process has been re-taking the lock for a whole fairness slice: if another process is
    /// waiting, let it take the lock first (a bounded pause) before trying.
    fn lock(&self, mode: Mode, wait: OsWait, yield_first: bool) -> io::Result<OsOutcome>;
    /// One non-blocking attempt to take `mode`: whether it was granted.
    fn try_lock(&self, mode: Mode) -> io::Result<bool> {
        let outcome = self.lock(mode, OsWait::NoWait, false)?;
        Ok(matches!(outcome, OsOutcome::Acquired { .. }))
    }
    /// Releases whatever the descriptor holds.
    fn unlock(&self) -> io::Result<()>;
}

/// Who holds a share of the lock inside this process: a thread, or an async task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A thread, for blocking acquisitions.
    Thread(ThreadId),
    /// A tokio task, for async acquisitions.
    #[cfg(feature = "tokio")]
    Task(tokio::task::Id),
}

impl Owner {
    /// The current thread.
    #[inline]
    pub fn current_thread() -> Owner {
        Owner::Thread(sync::current_thread_id())
    }
}

/// One acquisition request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Shared or exclusive.
    pub mode: Mode,
    /// A holder asking again is counted instead of refused.
    pub reentrant: bool,
    /// Who asks; recorded with the holder.
    pub label: &'a Arc<str>,
}

/// Why an acquisition did not succeed.
#[derive(Debug)]
pub enum Refusal {
    /// The owner already holds the lock in `held` mode and did not ask for re-entry (or asked
    /// to upgrade shared to exclusive, which would wait on itself).
    WouldDeadlock {
        /// The mode the owner holds.
        held: Mode,
    },
    /// Held elsewhere and the request did not wait.
    WouldBlock,
    /// Held elsewhere until the deadline passed.
    TimedOut,
    /// The OS call failed.
    Io(io::Error),
}

/// A granted acquisition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The mode the owner now holds (exclusive when a shared re-entry was covered by it).
    pub mode: Mode,
    /// The owner already held the lock; this grant only counts.
    pub reentered: bool,
    /// Write the holder record with this start time: a new exclusive run began, or the label
    /// changed.
    pub write_record: Option<SystemTime>,
}

/// A holder as seen from inside the process, for error messages.
#[derive(Clone, Debug)]
pub struct LocalHolder {
    /// The mode it holds.
    pub mode: Mode,
    /// Its label.
    pub label: Arc<str>,
    /// When it took the lock.
    pub since: SystemTime,
    /// How many other owners share it.
    pub others: usize,
}

/// What an OS call needs to know, worked out under the mutex before it.
struct Attempt {
    /// When the attempt began.
    now: Stamp,
    /// The process released the OS lock less than [`RUN_GAP`] ago.
    continues_run: bool,
    /// The process released the OS lock less than [`RECORD_GAP`] ago.
    record_still_ours: bool,
    /// Let a waiting process go first.
    yield_first: bool,
    /// The descriptor holds the other mode: the call converts it.
    converting: bool,
    /// How long the call may wait.
    wait: OsWait,
}

/// What dropping one count of a hold did.
enum Dropped {
    /// The owner still holds the lock (or held nothing).
    Counted,
    /// The owner's hold ended; the process keeps the OS lock for others.
    KeepOs,
    /// The owner's hold ended and the OS lock must be unlocked now.
    UnlockOs,
}

#[derive(Debug)]
struct Held {
    owner: Owner,
    depth: u32,
    label: Arc<str>,
    since: Stamp,
}

#[derive(Debug, Default)]
struct State {
    /// What the descriptor holds at the OS level.
    os: Option<Mode>,
    /// A thread is in an OS call for this lock.
    acquiring: bool,
    exclusive: Option<Held>,
    shared: Vec<Held>,
    /// Owners waiting (spinning, on the condvar, or in the OS call).
    waiting: usize,
    /// Owners asleep on the condvar: the only ones a notify must wake.
    sleeping: usize,
    waiting_exclusive: usize,
    /// When the process last released the OS lock.
    last_release: Option<Stamp>,
    /// When the current run of OS holds began (wall clock for the record).
    run_since: Option<SystemTime>,
    /// When the fairness slice of the current run began.
    slice_start: Option<Stamp>,
    /// The label the holder record names, if this process wrote the current one.
    recorded_label: Option<Arc<str>>,
}

impl State {
    fn holds(&mut self, owner: Owner) -> Option<(Mode, &mut Held)> {
        if let Some(h) = self.exclusive.as_mut().filter(|h| h.owner == owner) {
            return Some((Mode::Exclusive, h));
        }
        let h = self.shared.iter_mut().find(|h| h.owner == owner)?;
        Some((Mode::Shared, h))
    }

    fn idle(&self) -> bool {
        self.exclusive.is_none() && self.shared.is_empty()
    }

    /// The OS lock already covers `mode` and nobody in the process is in the way.
    fn can_join(&self, mode: Mode) -> bool {
        if self.acquiring || self.exclusive.is_some() {
            return false;
        }
        match mode {
            Mode::Shared => self.os.is_some() && self.waiting_exclusive == 0,
            Mode::Exclusive => self.shared.is_empty() && self.os == Some(Mode::Exclusive),
        }
    }

    /// Nobody in the process is in the way, but the OS lock must be taken or converted.
    fn can_take_os(&self, mode: Mode) -> bool {
        if self.acquiring || !self.idle() {
            return false;
        }
        match mode {
            Mode::Shared => self.os.is_none() && self.waiting_exclusive == 0,
            Mode::Exclusive => self.os != Some(Mode::Exclusive),
        }
    }

    /// Adds `owner` as a holder. For an exclusive holder whose label the record does not name
    /// yet, returns the start time to record: `run_since` when given (the OS lock was just
    /// taken), else the holder's own start.
    fn admit(
        &mut self,
        mode: Mode,
        owner: Owner,
        label: &Arc<str>,
        since: Stamp,
        run_since: Option<SystemTime>,
    ) -> Option<SystemTime> {
        let held = Held {
            owner,
            depth: 1,
            label: label.clone(),
            since,
        };
        match mode {
            Mode::Shared => {
                self.shared.push(held);
                None
            }
            Mode::Exclusive => {
                self.exclusive = Some(held);
                let recorded = self.recorded_label.as_ref();
                if recorded.is_some_and(|r| Arc::ptr_eq(r, label) || r == label) {
                    return None;
                }
                self.recorded_label = Some(label.clone());
                Some(run_since.unwrap_or_else(|| since.wall()))
            }
        }
    }

    fn stop_waiting(&mut self, mode: Mode, counted: bool) {
        if counted {
            self.waiting -= 1;
            if mode == Mode::Exclusive {
                self.waiting_exclusive -= 1;
            }
        }
    }

    /// The OS lock is given up at `now`.
    fn mark_os_released(&mut self, now: Stamp) {
        self.os = None;
        self.last_release = Some(now);
    }

    /// Whether the OS lock should be given up now: nobody holds it, and either nobody waits
    /// or this process has had it for a whole fairness slice.
    fn should_release_os(&self, now: Stamp, slice: Duration) -> bool {
        if self.os.is_none() || self.acquiring || !self.idle() {
            return false;
        }
        self.waiting == 0
            || self
                .slice_start
                .is_none_or(|start| now.since(start) >= slice)
    }
}

/// The in-process state of one lock file and the OS lock behind it.
pub struct Core<O> {
    state: Mutex<State>,
    turn: Condvar,
    os: O,
    slice: Duration,
}

impl<O: OsLock> Core<O> {
    /// A lock nobody holds, over `os`, with the default fairness slice.
    pub fn new(os: O) -> Self {
        Self::with_slice(os, FAIR_SLICE)
    }

    /// A lock nobody holds, over `os`: the process keeps the OS lock for in-process waiters for
    /// at most `slice` before giving other processes a chance.
    pub fn with_slice(os: O, slice: Duration) -> Self {
        Core {
            state: Mutex::new(State::default()),
            turn: Condvar::new(),
            os,
            slice,
        }
    }

    /// The OS side.
    pub fn os(&self) -> &O {
        &self.os
    }

    /// Acquires `req` for `owner`, waiting until `deadline` (`None`: forever; a past instant:
    /// do not wait). `no_wait` makes a conflict [`Refusal::WouldBlock`] instead of a timeout.
    ///
    /// The uncontended case (nobody in this process holds, waits for or is taking the lock) is
    /// inlined into the caller up to and including its one OS call, and so is the unlock in
    /// [`Core::release`]: on a kernel that runs the return-stack mitigations, the first return,
    /// after a system call, into a frame entered before the call can cost more than all of this
    /// module's bookkeeping, and libc's `flock` wrapper pays it on every call (the lock's
    /// benchmark has the pair inlined and outlined side by side). Work before
    /// and after the call may stay out of line (`plan`, `conclude`); only the frames around the
    /// call itself must not.
    #[inline(always)]
    pub fn acquire(
        &self,
        req: &Request,
        owner: Owner,
        deadline: Option<Instant>,
        no_wait: bool,
    ) -> Result<Grant, Refusal> {
        let mut st = sync::lock(&self.state);
        if st.os.is_none() && st.can_take_os(req.mode) {
            let attempt = self.plan(&st, deadline, no_wait);
            if !attempt.yield_first {
                // One non-blocking call under the mutex, whatever the wait: if another process
                // holds the lock, the slow path below waits for it (and tries once more first).
                let outcome = match self.os.try_lock(req.mode) {
                    Ok(true) => Ok(OsOutcome::Acquired { contended: false }),
                    Ok(false) if !no_wait => {
                        return self.acquire_slow(st, req, owner, deadline, no_wait);
                    }
                    Ok(false) => Ok(OsOutcome::NotAcquired),
                    Err(e) => Err(e),
                };
                return self.conclude(&mut st, req, owner, &attempt, outcome, false);
            }
        }
        self.acquire_slow(st, req, owner, deadline, no_wait)
    }

    /// [`Core::acquire`] when the lock is held, wanted or being taken in this process, or held
    /// by another process: re-entry, joining, waiting.
    #[inline(never)]
    fn acquire_slow<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        req: &Request,
        owner: Owner,
        deadline: Option<Instant>,
        no_wait: bool,
    ) -> Result<Grant, Refusal> {
        if let Some((held_mode, held)) = st.holds(owner) {
            return reenter(held_mode, held, req);
        }
        let mut counted = false;
        let mut spin_until: Option<Instant> = None;
        loop {
            if st.can_join(req.mode) {
                st.stop_waiting(req.mode, counted);
                let now = Stamp::now();
                let write_record = st.admit(req.mode, owner, req.label, now, None);
                return Ok(Grant {
                    mode: req.mode,
                    reentered: false,
                    write_record,
                });
            }
            if st.can_take_os(req.mode) {
                return self.take_os(st, req, owner, deadline, no_wait, counted);
            }
            if no_wait {
                st.stop_waiting(req.mode, counted);
                return Err(Refusal::WouldBlock);
            }
            if !counted {
                counted = true;
                st.waiting += 1;
                if req.mode == Mode::Exclusive {
                    st.waiting_exclusive += 1;
                }
            }
            // Spin briefly before sleeping: a holder in this process usually releases within
            // microseconds, and a spinning waiter takes the lock over without a futex wake.
            if !SPIN_BUDGET.is_zero() {
                let now = Instant::now();
                if now < *spin_until.get_or_insert(now + SPIN_BUDGET) {
                    drop(st);
                    for _ in 0..SPIN_BATCH {
                        std::hint::spin_loop();
                    }
                    st = sync::lock(&self.state);
                    continue;
                }
            }
            st.sleeping += 1;
            st = match deadline {
                None => match self.turn.wait(st) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                },
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        st.sleeping -= 1;
                        st.stop_waiting(req.mode, counted);
                        let _ = self.settle(&mut st);
                        return Err(Refusal::TimedOut);
                    }
                    match self.turn.wait_timeout(st, left) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    }
                }
            };
            st.sleeping -= 1;
        }
    }

    /// Takes (or converts) the OS lock for `req` as the one acquiring thread; a waiting call
    /// runs with the mutex released.
    fn take_os<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        req: &Request,
        owner: Owner,
        deadline: Option<Instant>,
        no_wait: bool,
        counted: bool,
    ) -> Result<Grant, Refusal> {
        let attempt = self.plan(&st, deadline, no_wait);
        let outcome = if attempt.wait == OsWait::NoWait {
            // One non-blocking call: cheaper under the mutex than releasing and re-taking it.
            self.os.lock(req.mode, attempt.wait, attempt.yield_first)
        } else {
            st.acquiring = true;
            drop(st);
            let outcome = self.os.lock(req.mode, attempt.wait, attempt.yield_first);
            st = sync::lock(&self.state);
            st.acquiring = false;
            outcome
        };
        self.conclude(&mut st, req, owner, &attempt, outcome, counted)
    }

    /// Works out, before an OS call, how the call continues the process's run of holds.
    #[inline(never)]
    fn plan(&self, st: &State, deadline: Option<Instant>, no_wait: bool) -> Attempt {
        let now = Stamp::now();
        let since_release = st.last_release.map(|t| now.since(t));
        let continues_run = since_release.is_some_and(|d| d < RUN_GAP);
        Attempt {
            now,
            continues_run,
            record_still_ours: since_release.is_some_and(|d| d < RECORD_GAP),
            // A non-waiting attempt (and so every async one) never pauses for other processes.
            yield_first: !no_wait
                && continues_run
                && st.slice_start.is_some_and(|s| now.since(s) >= self.slice),
            converting: st.os.is_some(),
            wait: match (no_wait, deadline) {
                (true, _) => OsWait::NoWait,
                (false, None) => OsWait::Forever,
                (false, Some(d)) => OsWait::Until(d),
            },
        }
    }

    /// Records what the OS call of `attempt` achieved: admits `owner`, or cleans up and says
    /// why not.
    #[inline(never)]
    fn conclude(
        &self,
        st: &mut State,
        req: &Request,
        owner: Owner,
        attempt: &Attempt,
        outcome: io::Result<OsOutcome>,
        counted: bool,
    ) -> Result<Grant, Refusal> {
        // After a wait, the attempt's clock reading is stale.
        let now = match outcome {
            Ok(OsOutcome::Acquired { contended: false }) => attempt.now,
            _ => Stamp::now(),
        };
        // Waiters count themselves under the mutex before waiting, so none is missed; a notify
        // with nobody waiting would still cost a futex syscall.
        if st.sleeping > 0 {
            self.turn.notify_all();
        }
        let refusal = match outcome {
            Ok(OsOutcome::Acquired { contended }) => {
                st.os = Some(req.mode);
                let new_run = !attempt.continues_run || contended;
                if attempt.yield_first || new_run || st.slice_start.is_none() {
                    st.slice_start = Some(now);
                }
                if new_run || st.run_since.is_none() {
                    st.run_since = Some(now.wall());
                }
                if !attempt.record_still_ours || contended {
                    // Another process may have held the lock and rewritten the record.
                    st.recorded_label = None;
                }
                st.stop_waiting(req.mode, counted);
                let run_since = st.run_since;
                let write_record = st.admit(req.mode, owner, req.label, now, run_since);
                return Ok(Grant {
                    mode: req.mode,
                    reentered: false,
                    write_record,
                });
            }
            Ok(OsOutcome::NotAcquired) => {
                // Another process holds it now and may write its own record.
                st.recorded_label = None;
                st.run_since = None;
                if attempt.converting {
                    // A failed flock conversion may have dropped the old lock: start clean.
                    let _ = self.unlock_os(st);
                }
                if attempt.wait == OsWait::NoWait {
                    Refusal::WouldBlock
                } else {
                    Refusal::TimedOut
                }
            }
            Err(e) => {
                if attempt.converting {
                    let _ = self.unlock_os(st);
                }
                Refusal::Io(e)
            }
        };
        st.stop_waiting(req.mode, counted);
        // An unlock error here only delays the release to descriptor close.
        let _ = self.settle(st);
        Err(refusal)
    }

    /// Releases one count of `owner`'s hold. Returns an OS error from unlocking, which leaves
    /// the lock to be released when the descriptor closes. Inlined into the caller, as the OS
    /// call of [`Core::acquire`] is, and for the same reason.
    #[inline(always)]
    pub fn release(&self, owner: Owner) -> io::Result<()> {
        let mut st = sync::lock(&self.state);
        let result = match self.drop_hold(&mut st, owner) {
            Dropped::Counted => return Ok(()),
            Dropped::KeepOs => Ok(()),
            Dropped::UnlockOs => self.os.unlock(),
        };
        if st.sleeping > 0 {
            self.turn.notify_all();
        }
        result
    }

    /// Takes one count of `owner`'s hold off the state; when that was the last hold and the OS
    /// lock should go, marks it released and says so (the caller makes the OS call).
    #[inline(never)]
    fn drop_hold(&self, st: &mut State, owner: Owner) -> Dropped {
        let Some((_, held)) = st.holds(owner) else {
            return Dropped::Counted;
        };
        held.depth -= 1;
        if held.depth > 0 {
            return Dropped::Counted;
        }
        if st.exclusive.as_ref().is_some_and(|h| h.owner == owner) {
            st.exclusive = None;
        } else {
            st.shared.retain(|h| h.owner != owner);
        }
        let now = Stamp::now();
        if st.should_release_os(now, self.slice) {
            st.mark_os_released(now);
            return Dropped::UnlockOs;
        }
        Dropped::KeepOs
    }

    /// Gives the OS lock up if nobody needs it any more (or the fairness slice is over).
    fn settle(&self, st: &mut State) -> io::Result<()> {
        let now = Stamp::now();
        if st.should_release_os(now, self.slice) {
            st.mark_os_released(now);
            return self.os.unlock();
        }
        Ok(())
    }

    fn unlock_os(&self, st: &mut State) -> io::Result<()> {
        st.mark_os_released(Stamp::now());
        self.os.unlock()
    }
    /// The holders in this process that stand in the way of `mode`, for error messages.
    pub fn local_holder(&self, mode: Mode) -> Option<LocalHolder> {
        let st = sync::lock(&self.state);
        if let Some(h) = &st.exclusive {
            return Some(LocalHolder {
                mode: Mode::Exclusive,
                label: h.label.clone(),
                since: h.since.wall(),
                others: 0,
            });
        }
        if mode == Mode::Exclusive {
            return st.shared.first().map(|h| LocalHolder {
                mode: Mode::Shared,
                label: h.label.clone(),
                since: h.since.wall(),
                others: st.shared.len() - 1,
            });
        }
        None
    }

    #[cfg(any(test, loom))]
    /// A snapshot for tests and assertions: (OS mode, exclusive holders, shared holders).
    pub fn snapshot(&self) -> (Option<Mode>, usize, usize) {
        let st = sync::lock(&self.state);
        (st.os, usize::from(st.exclusive.is_some()), st.shared.len())
    }
}

fn reenter(held_mode: Mode, held: &mut Held, req: &Request) -> Result<Grant, Refusal> {
    if !req.reentrant || (held_mode == Mode::Shared && req.mode == Mode::Exclusive) {
        return Err(Refusal::WouldDeadlock { held: held_mode });
    }
    held.depth += 1;
    Ok(Grant {
        mode: held_mode,
        reentered: true,
        write_record: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    /// An OS lock in which "another process" may hold a mode.
    #[derive(Default)]
    struct FakeOs {
        held: std::sync::Mutex<Option<Mode>>,
        foreign: std::sync::Mutex<Option<Mode>>,
        locks: AtomicUsize,
        unlocks: AtomicUsize,
    }

    impl OsLock for FakeOs {
        fn lock(&self, mode: Mode, _wait: OsWait, _yield: bool) -> io::Result<OsOutcome> {
            let foreign = *self.foreign.lock().unwrap();
            let conflict = !matches!(
                (foreign, mode),
                (None, _) | (Some(Mode::Shared), Mode::Shared)
            );
            if conflict {
                *self.held.lock().unwrap() = None; // a failed conversion drops the old lock
                return Ok(OsOutcome::NotAcquired);
            }
            self.locks.fetch_add(1, Ordering::SeqCst);
            *self.held.lock().unwrap() = Some(mode);
            Ok(OsOutcome::Acquired { contended: false })
        }
        fn unlock(&self) -> io::Result<()> {
            self.unlocks.fetch_add(1, Ordering::SeqCst);
            *self.held.lock().unwrap() = None;
            Ok(())
        }
    }

    fn req(mode: Mode, reentrant: bool, label: &str) -> Request<'static> {
        Request {
            mode,
            reentrant,
            label: Box::leak(Box::new(Arc::from(label))),
        }
    }

    fn me() -> Owner {
        Owner::current_thread()
    }

    fn now_only(core: &Core<FakeOs>, r: &Request) -> Result<Grant, Refusal> {
        core.acquire(r, me(), Some(Instant::now()), true)
    }

    #[test]
    fn asking_again_without_reentry_is_refused_not_hung() {
        let core = Core::new(FakeOs::default());
        now_only(&core, &req(Mode::Exclusive, false, "a")).unwrap();
        let forever = core.acquire(&req(Mode::Exclusive, false, "a"), me(), None, false);
        assert!(matches!(
            forever,
            Err(Refusal::WouldDeadlock {
                held: Mode::Exclusive
            })
        ));
        let shared = core.acquire(&req(Mode::Shared, false, "a"), me(), None, false);
        assert!(matches!(shared, Err(Refusal::WouldDeadlock { .. })));
    }

    #[test]
    fn reentrant_guards_count_and_release_at_the_last_one() {
        let core = Core::new(FakeOs::default());
        now_only(&core, &req(Mode::Exclusive, false, "a")).unwrap();
        let g = now_only(&core, &req(Mode::Shared, true, "a")).unwrap();
        assert!(g.reentered);
        assert_eq!(g.mode, Mode::Exclusive, "exclusive covers shared");
        core.release(me()).unwrap();
        assert_eq!(core.snapshot(), (Some(Mode::Exclusive), 1, 0));
        core.release(me()).unwrap();
        assert_eq!(core.snapshot(), (None, 0, 0));
        assert_eq!(*core.os().held.lock().unwrap(), None);
    }

    #[test]
    fn a_shared_holder_cannot_upgrade_even_reentrantly() {
        let core = Core::new(FakeOs::default());
        now_only(&core, &req(Mode::Shared, false, "a")).unwrap();
        let up = now_only(&core, &req(Mode::Exclusive, true, "a"));
        assert!(matches!(
            up,
            Err(Refusal::WouldDeadlock { held: Mode::Shared })
        ));
    }

    #[test]
    fn shared_holders_share_one_os_lock() {
        let core = Core::new(FakeOs::default());
        now_only(&core, &req(Mode::Shared, false, "a")).unwrap();
        thread::scope(|s| {
            s.spawn(|| {
                now_only(&core, &req(Mode::Shared, false, "b")).unwrap();
                assert_eq!(core.snapshot(), (Some(Mode::Shared), 0, 2));
                assert!(matches!(
                    now_only(&core, &req(Mode::Exclusive, false, "c")),
                    Err(Refusal::WouldDeadlock { .. })
                ));
                core.release(me()).unwrap();
            });
        });
        assert_eq!(core.os().locks.load(Ordering::SeqCst), 1);
        core.release(me()).unwrap();
        assert_eq!(core.os().unlocks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn exclusive_is_handed_to_a_waiting_thread_without_an_os_round_trip() {
        let core = Core::with_slice(FakeOs::default(), Duration::from_secs(3600));
        now_only(&core, &req(Mode::Exclusive, false, "a")).unwrap();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                core.acquire(&req(Mode::Exclusive, false, "b"), me(), None, false)
                    .unwrap();
                core.release(me()).unwrap();
            });
            while sync::lock(&core.state).waiting == 0 {
                thread::yield_now();
            }
            core.release(me()).unwrap();
            waiter.join().unwrap();
        });
        assert_eq!(
            core.os().locks.load(Ordering::SeqCst),
            1,
            "one OS lock for both"
        );
        assert_eq!(core.os().unlocks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_whole_slice_of_handoffs_gives_the_os_lock_up() {
        let core = Core::with_slice(FakeOs::default(), Duration::ZERO);
        now_only(&core, &req(Mode::Exclusive, false, "a")).unwrap();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                core.acquire(&req(Mode::Exclusive, false, "b"), me(), None, false)
                    .unwrap();
                core.release(me()).unwrap();
            });
            while sync::lock(&core.state).waiting == 0 {
                thread::yield_now();
            }
            core.release(me()).unwrap();
            waiter.join().unwrap();
        });
        assert_eq!(
            core.os().locks.load(Ordering::SeqCst),
            2,
            "re-taken from the OS"
        );
    }

    #[test]
    fn a_waiting_exclusive_blocks_new_shared_holders() {
        let core = Core::new(FakeOs::default());
        now_only(&core, &req(Mode::Shared, false, "a")).unwrap();
        thread::scope(|s| {
            let writer = s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(30);
                core.acquire(
                    &req(Mode::Exclusive, false, "w"),
                    me(),
                    Some(deadline),
                    false,
                )
                .unwrap();
                core.release(me()).unwrap();
            });
            while sync::lock(&core.state).waiting_exclusive == 0 {
                thread::yield_now();
            }
            s.spawn(|| {
                let r = now_only(&core, &req(Mode::Shared, false, "late reader"));
                assert!(matches!(r, Err(Refusal::WouldBlock)));
            })
            .join()
            .unwrap();
            core.release(me()).unwrap();
            writer.join().unwrap();
        });
        assert_eq!(core.snapshot(), (None, 0, 0));
    }

    #[test]
    fn a_foreign_holder_times_the_wait_out_and_leaves_nothing_held() {
        let core = Core::new(FakeOs::default());
        *core.os().foreign.lock().unwrap() = Some(Mode::Exclusive);
        let deadline = Instant::now() + Duration::from_millis(20);
        let r = core.acquire(&req(Mode::Shared, false, "a"), me(), Some(deadline), false);
        assert!(matches!(r, Err(Refusal::TimedOut)));
        assert!(matches!(
            now_only(&core, &req(Mode::Exclusive, false, "a")),
            Err(Refusal::WouldBlock)
        ));
        assert_eq!(core.snapshot(), (None, 0, 0));
        *core.os().foreign.lock().unwrap() = None;
        now_only(&core, &req(Mode::Exclusive, false, "a")).unwrap();
    }

    #[test]
    fn the_record_is_written_once_per_run_and_again_for_a_new_label() {
        let core = Core::new(FakeOs::default());
        let first = now_only(&core, &req(Mode::Exclusive, false, "a")).unwrap();
        assert!(first.write_record.is_some());
        // Re-taken at once, the record still holds, unless a tick of the coarse clock fell in
        // the gap (a few µs of 1 to 10 ms): of three tries, one keeps it.
        let kept = (0..3).any(|_| {
            core.release(me()).unwrap();
            let again = now_only(&core, &req(Mode::Exclusive, false, "a")).unwrap();
            again.write_record.is_none()
        });
        assert!(kept, "same run, same label: record still true");
        core.release(me()).unwrap();
        let other = now_only(&core, &req(Mode::Exclusive, false, "b")).unwrap();
        assert!(other.write_record.is_some());
        assert_eq!(other.write_record, first.write_record, "the run goes on");
        core.release(me()).unwrap();
        thread::sleep(RUN_GAP * 2 + crate::clock::resolution());
        let later = now_only(&core, &req(Mode::Exclusive, false, "b")).unwrap();
        assert!(
            later.write_record.unwrap() > first.write_record.unwrap(),
            "a new run"
        );
    }

    #[test]
    fn a_failed_conversion_leaves_the_os_lock_released() {
        let core = Core::with_slice(FakeOs::default(), Duration::from_secs(3600));
        now_only(&core, &req(Mode::Shared, false, "a")).unwrap();
        thread::scope(|s| {
            let writer = s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(30);
                core.acquire(
                    &req(Mode::Exclusive, false, "w"),
                    me(),
                    Some(deadline),
                    false,
                )
            });
            while sync::lock(&core.state).waiting_exclusive == 0 {
                thread::yield_now();
            }
            // Another process takes a shared lock; our shared OS lock is kept for the writer,
            // whose conversion to exclusive then fails.
            *core.os().foreign.lock().unwrap() = Some(Mode::Shared);
            core.release(me()).unwrap();
            assert!(matches!(writer.join().unwrap(), Err(Refusal::TimedOut)));
        });
        assert_eq!(core.snapshot(), (None, 0, 0));
        assert_eq!(*core.os().held.lock().unwrap(), None);
    }
}
