//! The OS lock: flock(2) on the process's one descriptor of the lock file, plus the "waiting"
//! marker that lets a busy process notice that another process wants the lock.
//!
//! The call is rustix's `flock`, the same call fd-lock makes; it is used directly because the
//! registry keeps one descriptor per file and releases it from whichever thread drops the last
//! guard, which fd-lock's borrow-scoped guards cannot express.
//!
//! flock is unfair: a process that releases and re-takes the lock in a loop wins almost every
//! race against a process that waits. So a waiting process also holds a shared POSIX record lock
//! (`fcntl(F_SETLK)`, independent of flock on Linux) on the lock file while it waits; a process
//! that has re-taken the lock for a whole fairness slice probes for that marker and, if it is
//! there, pauses until the waiter has taken its turn (bounded by [`YIELD_MAX`]).

use std::fs::File;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, fcntl_lock, flock};
use rustix::io::Errno;

use crate::mode::Mode;
use crate::state::{OsLock, OsOutcome, OsWait};

/// The longest a busy process pauses for a waiting process to take its turn.
pub const YIELD_MAX: Duration = Duration::from_millis(20);

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
}

impl Descriptor {
    /// Wraps an open lock file.
    pub fn new(file: File, writable: bool) -> Self {
        Descriptor { file, writable }
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether the holder record can be written.
    pub fn writable(&self) -> bool {
        self.writable
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

    /// Marks this process as waiting for the lock. Best effort: a file opened read-only cannot
    /// carry the marker, and fairness then falls back to flock's own.
    fn mark_waiting(&self) -> bool {
        self.writable && fcntl_lock(&self.file, FlockOperation::NonBlockingLockShared).is_ok()
    }

    fn unmark_waiting(&self, marked: bool) {
        if marked {
            // An unlock that fails leaves a marker the kernel drops when the process exits.
            let _ = fcntl_lock(&self.file, FlockOperation::NonBlockingUnlock);
        }
    }

    /// Whether another process marked itself as waiting.
    fn other_waiting(&self) -> bool {
        if !self.writable {
            return false;
        }
        match fcntl_lock(&self.file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                let _ = fcntl_lock(&self.file, FlockOperation::NonBlockingUnlock);
                false
            }
            Err(_) => true,
        }
    }

    /// Pauses while another process waits, at most [`YIELD_MAX`]. Returns whether it paused.
    fn yield_to_waiters(&self) -> bool {
        if !self.other_waiting() {
            return false;
        }
        let until = Instant::now() + YIELD_MAX;
        while Instant::now() < until && self.other_waiting() {
            thread::sleep(POLL_MIN);
        }
        true
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
        let yielded = yield_first && self.yield_to_waiters();
        if self.try_flock(mode)? {
            return Ok(OsOutcome::Acquired { contended: yielded });
        }
        let marked = match wait {
            OsWait::NoWait => return Ok(OsOutcome::NotAcquired),
            OsWait::Until(_) | OsWait::Forever => self.mark_waiting(),
        };
        let got = match wait {
            OsWait::Forever => self.blocking_flock(mode).map(|()| true),
            OsWait::Until(deadline) => self.poll_until(mode, deadline),
            OsWait::NoWait => Ok(false),
        };
        self.unmark_waiting(marked);
        match got? {
            true => Ok(OsOutcome::Acquired { contended: true }),
            false => Ok(OsOutcome::NotAcquired),
        }
    }

    /// Inlined into the uncontended acquisition (see `Core::acquire`).
    #[inline(always)]
    fn try_lock(&self, mode: Mode) -> io::Result<bool> {
        self.try_flock(mode)
    }

    /// Inlined into the release (see `Core::acquire`).
    #[inline(always)]
    fn unlock(&self) -> io::Result<()> {
        loop {
            match flock(&self.file, FlockOperation::Unlock) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
