//! The OS lock: flock(2) on the process's one descriptor of the lock file, plus the "waiting"
//! marker that lets a busy process notice that another process wants the lock.
//!
//! The call is rustix's `flock`, the same call fd-lock makes; it is used directly because the
//! registry keeps one descriptor per file and releases it from whichever thread drops the last
//! guard, which fd-lock's borrow-scoped guards cannot express.
//!
//! A waiter with a timeout cannot block in flock (it could not give up at its deadline): where
//! the lock file can carry a bell (`bell.rs`: a futex in a shared mapping of the file's second
//! page), it sleeps on the bell, which a process that releases the lock rings; elsewhere it
//! polls with non-blocking calls (50 µs, doubling to 1 ms).
//!
//! flock is unfair: a process that releases and re-takes the lock in a loop wins almost every
//! race against a process that waits. So a process that has re-taken the lock for a whole
//! fairness slice looks for waiting processes and, if there are any, pauses until they have
//! taken their turn (bounded by [`YIELD_MAX`]). With a bell every waiter is counted on it (a
//! load from memory tells); without one a waiting process holds a shared POSIX record lock
//! (`fcntl(F_SETLK)`, independent of flock on Linux) on the lock file while it waits, and the
//! busy process probes for that marker.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use rustix::process::{Flock, FlockOffsetType, FlockType, fcntl_getlk};

use crate::bell::{Bell, Places};
use crate::holder;
use crate::mode::Mode;
use crate::state::{OsLock, OsOutcome, OsWait};

/// The longest a busy process pauses for a waiting process to take its turn.
pub const YIELD_MAX: Duration = Duration::from_millis(20);

/// About how long a waiter on the bell waits for its turn while every other process keeps
/// taking the lock: a process may keep re-taking the lock ahead of the waiters for this time
/// shared among them (see [`bell_slice`]). Longer cycles raise the waiters' tail latency for no
/// throughput; one hold per turn (no slice) makes every write wait for a handoff. The
/// `writers` example of the `litekeep` crate measures it (docs/measured.md).
pub const TURN_CYCLE: Duration = Duration::from_millis(1);
/// The shortest slice: a handoff costs a wake-up (tens of µs) and, for a SQLite writer, a
/// reload of its page cache; with more than 10 waiters the cycle grows instead.
pub const MIN_SLICE: Duration = Duration::from_micros(100);

/// How long a process keeps re-taking the lock while `waiters` processes wait on the bell for
/// it: [`TURN_CYCLE`] shared among them, at least [`MIN_SLICE`].
pub fn bell_slice(waiters: u32) -> Duration {
    (TURN_CYCLE / waiters.max(1)).max(MIN_SLICE)
}

/// The first pause of a polling waiter; it doubles up to [`POLL_MAX`].
const POLL_MIN: Duration = Duration::from_micros(50);
/// The longest pause between two attempts of a polling waiter.
const POLL_MAX: Duration = Duration::from_millis(1);

/// The process's one descriptor of a lock file.
#[derive(Debug)]
pub struct Descriptor {
    file: File,
    /// Opened for writing: the holder record and the waiting marker need it.
    writable: bool,
    /// The futex other processes ring when they let the lock go (see `bell.rs`), where the
    /// file could be mapped for it.
    bell: Option<Bell>,
    /// When (ns after `epoch`, plus one; 0: not since the last yield) this process first saw
    /// another process waiting on the bell while it kept taking the lock.
    contended_since: AtomicU64,
    /// This process holds the lock after waiting, and its waiting marker until it lets go.
    marker_until_release: AtomicBool,
    epoch: Instant,
}

impl Descriptor {
    /// Wraps an open lock file.
    pub fn new(file: File, writable: bool) -> Self {
        let bell = if writable { Bell::map(&file) } else { None };
        Descriptor {
            file,
            writable,
            bell,
            contended_since: AtomicU64::new(0),
            marker_until_release: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether the holder record can be written.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Writes the holder record at the start of the lock file: through the bell's mapping where
    /// there is one (no system call), else with one `pwrite`.
    pub fn write_record(&self, record: &[u8]) -> io::Result<()> {
        match &self.bell {
            Some(bell) if bell.write_record(record) => Ok(()),
            _ => holder::write_record(&self.file, record),
        }
    }

    #[inline(always)]
    fn try_flock(&self, mode: Mode) -> io::Result<bool> {
        let op = match mode {
            Mode::Shared => FlockOperation::NonBlockingLockShared,
            Mode::Exclusive => FlockOperation::NonBlockingLockExclusive,
        };
        loop {
            match flock(&self.file, op) {
                Ok(()) => return Ok(true),
                Err(Errno::WOULDBLOCK) => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn blocking_flock(&self, mode: Mode) -> io::Result<()> {
        let op = match mode {
            Mode::Shared => FlockOperation::LockShared,
            Mode::Exclusive => FlockOperation::LockExclusive,
        };
        loop {
            match flock(&self.file, op) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Marks this process as waiting for the lock with `ticket` (0 without a bell): a POSIX
    /// read lock on the byte at [`MARKS`] + `ticket`, which the kernel drops when the process
    /// dies. Without a bell it is how a busy process knows that another waits; with one, waiters
    /// are counted on the bell, and the marks are how a count left too high by a SIGKILLed
    /// waiter is told from a waiter that is only slow to run
    /// ([`Descriptor::yield_to_waiters`]), and a dead waiter's ticket from a live one's
    /// (`bell.rs`). Taken before the bell's count goes up, dropped after it went down. Best
    /// effort: a file opened read-only cannot carry the mark, and fairness then falls back to
    /// flock's own. (A POSIX lock is dropped when the process closes any descriptor of the file;
    /// a waiter that lost its mark so can be uncounted or skipped, and then queues again or
    /// wakes on its own every `BELL_MAX`.)
    fn mark_waiting(&self, ticket: u32) -> bool {
        self.writable && set_lock(&self.file, libc::F_RDLCK, MARKS + u64::from(ticket), 1).is_ok()
    }

    /// Drops every waiting mark of this process (one system call, whichever tickets they were).
    #[cold]
    #[inline(never)]
    fn drop_marker(&self) {
        self.marker_until_release.store(false, Ordering::Relaxed);
        self.unmark_waiting(true);
    }

    fn unmark_waiting(&self, marked: bool) {
        if marked {
            // An unlock that fails leaves marks the kernel drops when the process exits.
            let _ = set_lock(&self.file, libc::F_UNLCK, MARKS, MARKS_LEN);
        }
    }

    /// Whether another process marked itself as waiting (registered on the bell, where there
    /// is one: this process's one thread that talks to the OS is not waiting while it asks).
    fn other_waiting(&self) -> bool {
        if let Some(bell) = &self.bell {
            return bell.anyone_waiting();
        }
        self.writable && self.marker_held_elsewhere()
    }

    /// Whether another process holds a waiting mark: the kernel's answer (`F_GETLK`), which
    /// takes nothing (probing by taking an exclusive lock would, for an instant, make a waiter's
    /// mark fail). An error counts as a mark.
    fn marker_held_elsewhere(&self) -> bool {
        self.marker_held_elsewhere_at(MARKS, MARKS_LEN)
    }

    /// Whether another process holds a waiting mark on `len` bytes from `start`.
    fn marker_held_elsewhere_at(&self, start: u64, length: u64) -> bool {
        let range = Flock {
            start,
            length,
            pid: None,
            typ: FlockType::WriteLock,
            offset_type: FlockOffsetType::Set,
        };
        !matches!(fcntl_getlk(&self.file, &range), Ok(None))
    }

    /// Pauses while another process waits, at most [`YIELD_MAX`]. Returns whether it paused.
    /// With a bell, the pause ends as soon as one waiter has taken its turn (this process then
    /// queues behind it); without, when no marker is left.
    fn yield_to_waiters(&self) -> bool {
        if !self.other_waiting() {
            return false;
        }
        let until = Instant::now() + YIELD_MAX;
        match &self.bell {
            Some(bell) => {
                let turns = bell.turns_now();
                let suspect_after = Instant::now() + crate::bell::PATIENCE;
                let mut asked = false;
                while Instant::now() < until
                    && bell.anyone_waiting()
                    && !bell.turn_taken_since(turns)
                {
                    if !asked && Instant::now() >= suspect_after {
                        // Nobody took the turn in PATIENCE: waiters that are only slow to run
                        // hold their marker; without one, the count is what SIGKILLed waiters
                        // left behind, and every later slice would end in a useless pause.
                        asked = true;
                        let count = bell.waiting();
                        if !self.marker_held_elsewhere() {
                            bell.forget_waiters(count);
                            break;
                        }
                    }
                    thread::sleep(POLL_MIN);
                }
                self.contended_since.store(0, Ordering::Relaxed);
            }
            None => {
                while Instant::now() < until && self.other_waiting() {
                    thread::sleep(POLL_MIN);
                }
            }
        }
        true
    }

    /// With a bell on which another process waits: whether this process may still take the
    /// lock ahead of it, within a slice (see [`bell_slice`]) of first seeing it wait.
    #[cold]
    #[inline(never)]
    fn may_go_first(&self, bell: &Bell) -> bool {
        let now = self.stamp();
        match self.contended_since.load(Ordering::Relaxed) {
            0 => {
                self.contended_since.store(now, Ordering::Relaxed);
                true
            }
            since => {
                if Duration::from_nanos(now.saturating_sub(since)) < bell_slice(bell.waiting()) {
                    return true;
                }
                // The lock is free (this process is asking for it): the waiter whose turn it
                // is may be asleep, and the releases it was rung at were all re-taken first.
                bell.ring_slow();
                false
            }
        }
    }

    /// Now, for `contended_since` (never 0).
    fn stamp(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether another process waits on the bell and this one's slice ahead of it is over.
    #[inline(always)]
    fn turn_of_waiters(&self) -> bool {
        self.bell
            .as_ref()
            .is_some_and(|b| b.anyone_waiting() && !self.may_go_first(b))
    }

    /// Waits for the lock until `deadline`: woken by the bell when the holder rings it,
    /// polling where there is no bell. Returns whether it got the lock, and whether this
    /// process still holds a waiting mark (to drop at its release).
    fn wait_until(&self, mode: Mode, deadline: Instant) -> (io::Result<bool>, bool) {
        let Some(bell) = &self.bell else {
            let marked = self.mark_waiting(0);
            let got = self.poll_until(mode, deadline);
            return (got, marked);
        };
        match bell.wait_for(deadline, self, || match self.try_flock(mode) {
            Ok(false) => None,
            done => Some(done),
        }) {
            Some((got, marked)) => (got, marked),
            None => (Ok(false), false),
        }
    }

    fn poll_until(&self, mode: Mode, deadline: Instant) -> io::Result<bool> {
        let mut pause = POLL_MIN;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            thread::sleep(pause.min(deadline - now));
            if self.try_flock(mode)? {
                return Ok(true);
            }
            pause = (pause * 2).min(POLL_MAX);
        }
    }
}

impl OsLock for Descriptor {
    fn lock(&self, mode: Mode, wait: OsWait, yield_first: bool) -> io::Result<OsOutcome> {
        let waiters_first = self.turn_of_waiters();
        if waiters_first && wait == OsWait::NoWait {
            // A call that must not wait does not take the lock ahead of processes that waited.
            return Ok(OsOutcome::NotAcquired);
        }
        let yielded = (yield_first || waiters_first) && self.yield_to_waiters();
        if self.try_flock(mode)? {
            return Ok(OsOutcome::Acquired { contended: yielded });
        }
        let (got, marked) = match wait {
            OsWait::NoWait => return Ok(OsOutcome::NotAcquired),
            // With a bell every waiter of every process registers on it (so a releaser knows
            // whether to ring, and a busy process whether to yield); without, the kernel queues.
            OsWait::Forever if self.bell.is_some() => self.wait_until(mode, far_future()),
            OsWait::Forever => {
                let marked = self.mark_waiting(0);
                (self.blocking_flock(mode).map(|()| true), marked)
            }
            OsWait::Until(deadline) => self.wait_until(mode, deadline),
        };
        match got {
            Ok(true) => {
                // The mark goes with the next release, after its ring: a system call less
                // between the ring that woke this waiter and its caller holding the lock.
                self.marker_until_release.store(marked, Ordering::Relaxed);
                // Its turn begins: a whole slice ahead of the waiters behind it, from its next
                // acquisition (from this one, a turn of single-row writers was one write each:
                // p50 1.4 ms instead of 0.1 ms with eight writers, for no gain).
                self.contended_since.store(0, Ordering::Relaxed);
                Ok(OsOutcome::Acquired { contended: true })
            }
            other => {
                self.unmark_waiting(marked);
                other.map(|_| OsOutcome::NotAcquired)
            }
        }
    }

    /// Inlined into the uncontended acquisition (see `Core::acquire`).
    #[inline(always)]
    fn try_lock(&self, mode: Mode) -> io::Result<bool> {
        // Processes waiting on the bell get their turn (the caller, refused, waits the slow way
        // and yields to them there) once this one's slice ahead of them is over.
        if self.turn_of_waiters() {
            return Ok(false);
        }
        self.try_flock(mode)
    }

    /// Inlined into the release (see `Core::acquire`).
    #[inline(always)]
    fn unlock(&self) -> io::Result<()> {
        loop {
            match flock(&self.file, FlockOperation::Unlock) {
                Ok(()) => {
                    if let Some(bell) = &self.bell {
                        bell.ring();
                    }
                    if self.marker_until_release.load(Ordering::Relaxed) {
                        self.drop_marker();
                    }
                    return Ok(());
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Places for Descriptor {
    fn hold(&self, ticket: u32) -> bool {
        self.mark_waiting(ticket)
    }

    fn let_go(&self, ticket: u32) {
        let _ = set_lock(&self.file, libc::F_UNLCK, MARKS + u64::from(ticket), 1);
    }

    fn held_elsewhere(&self, ticket: u32) -> bool {
        self.marker_held_elsewhere_at(MARKS + u64::from(ticket), 1)
    }
}

/// Where the waiting marks begin: byte `MARKS + ticket` of the lock file, far past anything
/// written to it (a POSIX lock needs no data where it lies).
const MARKS: u64 = 1 << 32;
/// How many bytes the marks may cover: one per ticket.
const MARKS_LEN: u64 = 1 << 32;

/// `fcntl(F_SETLK)` of `kind` (`F_RDLCK`, `F_UNLCK`) on `len` bytes of `file` from `start`:
/// rustix only locks whole files.
fn set_lock(file: &File, kind: libc::c_int, start: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain data; zeroed, then the fields F_SETLK reads are set.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start =
        libc::off_t::try_from(start).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    lock.l_len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: F_SETLK with a pointer to a valid `flock` on a descriptor `file` keeps open;
        // the kernel only reads it.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A deadline no wait reaches (a century from now).
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slice_shares_the_cycle_among_the_waiters_within_its_bounds() {
        assert_eq!(bell_slice(0), TURN_CYCLE);
        assert_eq!(bell_slice(1), TURN_CYCLE);
        assert_eq!(bell_slice(4), Duration::from_micros(250));
        assert_eq!(bell_slice(10), MIN_SLICE);
        assert_eq!(bell_slice(11), MIN_SLICE);
        assert_eq!(bell_slice(u32::MAX), MIN_SLICE);
    }
}
