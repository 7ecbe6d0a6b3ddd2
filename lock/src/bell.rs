//! The bell: kernel wake-ups for processes that wait for the lock with a timeout.
//!
//! flock(2) has no timed wait. A blocking `flock` cannot be given up at a deadline, so a waiter
//! with a timeout polls with non-blocking calls, and between two polls it sleeps: each handoff
//! between processes costed up to a poll interval (50 µs to 1 ms), and the process that had just
//! released the lock nearly always took it again first.
//!
//! The bell is a futex word that every process with the lock file open for writing maps from
//! the file itself, in the page after the holder record (offset one page; the record never
//! reaches it), beside a count of registered waiters and a count of turns taken by waiters. A waiter registers (`waiters += 1`), reads the sequence word, tries the lock,
//! and sleeps in `FUTEX_WAIT` on the sequence — at most [`BELL_MAX`], so a holder that never
//! rings (another program's `flock`, a SIGKILLed process) costs no more than polling did. A
//! process that releases the OS lock looks at `waiters` (a load from memory, no system call
//! while nobody waits) and, when someone does, bumps the sequence and wakes them all.
//!
//! Why no wake-up is lost: the waiter's increment comes before its non-blocking attempt, and the
//! releaser's load of `waiters` after its unlock, both sequentially consistent (a system call
//! sits between each pair as well). If the releaser read 0, the waiter's attempt came after the
//! unlock and succeeds (or a third process took the lock, and rings when it lets go); otherwise
//! the releaser bumps the sequence, and the waiter's `FUTEX_WAIT` on the value it read either
//! returns at once or is woken.
//!
//! Safety of the mapping: the page is allocated with `fallocate` before it is mapped, so a write
//! to it never needs disk space (a write to a sparse page of a full disk would be `SIGBUS`);
//! where `fallocate` is not supported, or the file is not writable, there is no bell and
//! waiters poll as before. Nothing in litekeep truncates a lock file; a user who truncates one
//! while processes have it mapped would crash them with `SIGBUS`, as truncating SQLite's `-shm`
//! does. A waiter SIGKILLed while registered leaves `waiters` one too high: every later release
//! then pays a `FUTEX_WAKE` call (about 0.2 µs) that wakes nobody, until the file is removed.

use std::fs::File;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The longest a waiter sleeps on the bell before it tries the lock again (a holder that never
/// rings is noticed this late at the most).
pub const BELL_MAX: Duration = Duration::from_millis(1);

/// The mapped page of a lock file with the two words.
#[derive(Debug)]
pub struct Bell {
    page: *mut u8,
    len: usize,
}

// SAFETY: the mapping is shared memory that lives as long as the `Bell`; every access to it
// goes through `AtomicU32`s, which any thread may use concurrently.
unsafe impl Send for Bell {}
// SAFETY: as for `Send`: only atomic accesses, through shared references.
unsafe impl Sync for Bell {}

impl Bell {
    /// Maps the bell of the lock file `file` (open for reading and writing), or `None` where it
    /// cannot be had: not Linux, `fallocate` not supported, no room on the disk for one page.
    pub fn map(file: &File) -> Option<Bell> {
        imp::map(file)
    }

    /// The sequence word waiters sleep on.
    fn sequence(&self) -> &AtomicU32 {
        // SAFETY: `page` points to a live, page-aligned mapping of `len` ≥ 8 bytes, so offset 0
        // is aligned for and holds an `AtomicU32`; the mapping outlives `&self`.
        unsafe { &*self.page.cast::<AtomicU32>() }
    }

    /// The number of registered waiters, over every process.
    fn waiters(&self) -> &AtomicU32 {
        // SAFETY: as in `sequence`, at offset 4 (aligned, inside the mapping).
        unsafe { &*self.page.add(4).cast::<AtomicU32>() }
    }

    /// How many waiters have taken the lock after waiting, ever (wrapping): a process that
    /// yields watches it move.
    fn turns(&self) -> &AtomicU32 {
        // SAFETY: as in `sequence`, at offset 8 (aligned, inside the mapping).
        unsafe { &*self.page.add(8).cast::<AtomicU32>() }
    }

    /// The number of turns taken so far (see [`Bell::turn_taken_since`]).
    pub fn turns_now(&self) -> u32 {
        self.turns().load(Ordering::SeqCst)
    }

    /// Whether a waiter took the lock since `turns` was read with [`Bell::turns_now`].
    pub fn turn_taken_since(&self, turns: u32) -> bool {
        self.turns().load(Ordering::SeqCst) != turns
    }

    /// Whether any process has a waiter registered: a load, no system call.
    #[inline(always)]
    pub fn anyone_waiting(&self) -> bool {
        self.waiters().load(Ordering::SeqCst) != 0
    }

    /// Called right after this process released the OS lock: wakes the waiters, if any.
    #[inline(always)]
    pub fn ring(&self) {
        if self.anyone_waiting() {
            self.ring_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn ring_slow(&self) {
        self.sequence().fetch_add(1, Ordering::SeqCst);
        imp::wake(self.sequence());
    }

    /// Registers a waiter; `attempt` is tried after each ring (and at least every
    /// [`BELL_MAX`]) until it says to stop (a turn taken), or `deadline` passes.
    pub fn wait_for<T>(
        &self,
        deadline: std::time::Instant,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        self.waiters().fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            let seen = self.sequence().load(Ordering::SeqCst);
            if let Some(done) = attempt() {
                self.turns().fetch_add(1, Ordering::SeqCst);
                break Some(done);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                break None;
            }
            imp::wait(self.sequence(), seen, (deadline - now).min(BELL_MAX));
        };
        self.waiters().fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        imp::unmap(self.page, self.len);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::fs::File;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
    use rustix::thread::futex;

    use super::Bell;

    pub fn map(file: &File) -> Option<Bell> {
        let len = rustix::param::page_size();
        let offset = u64::try_from(len).ok()?;
        // Allocates the page (and grows the file to hold it) unless it is there already; a
        // failure (no room, not supported) means no bell.
        fallocate(file, FallocateFlags::empty(), offset, offset).ok()?;
        // SAFETY: a fresh shared mapping of one page of `file`, at a page-aligned offset that
        // `fallocate` just made part of the file; nothing else aliases the returned memory in
        // this process, and it is unmapped only in `Bell::drop`.
        let page = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file,
                offset,
            )
        }
        .ok()?;
        Some(Bell {
            page: page.cast::<u8>(),
            len,
        })
    }

    pub fn unmap(page: *mut u8, len: usize) {
        // SAFETY: `page` and `len` are those of a mapping made by `map` and not unmapped yet
        // (this runs once, from `Bell::drop`).
        let _ = unsafe { munmap(page.cast(), len) };
    }

    pub fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
        let timeout = rustix::time::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // Woken, timed out, interrupted or the word already moved on: the caller tries again.
        let _ = futex::wait(word, futex::Flags::empty(), seen, Some(&timeout));
    }

    pub fn wake(word: &AtomicU32) {
        let _ = futex::wake(word, futex::Flags::empty(), u32::MAX);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::fs::File;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use super::Bell;

    pub fn map(_file: &File) -> Option<Bell> {
        None
    }

    pub fn unmap(_page: *mut u8, _len: usize) {}

    pub fn wait(_word: &AtomicU32, _seen: u32, timeout: Duration) {
        std::thread::sleep(timeout);
    }

    pub fn wake(_word: &AtomicU32) {}
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::time::Instant;

    fn lock_file(name: &str) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("lk-bell-{}-{name}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn two_mappings_of_one_file_ring_each_other() {
        let (path, file) = lock_file("pair");
        let other = File::options().read(true).write(true).open(&path).unwrap();
        let (a, b) = (Bell::map(&file).unwrap(), Bell::map(&other).unwrap());
        assert!(!a.anyone_waiting());
        let rung = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let start = Instant::now();
                let got = b.wait_for(start + Duration::from_secs(10), || {
                    rung.load(Ordering::SeqCst).then_some(())
                });
                (got, start.elapsed())
            });
            while !a.anyone_waiting() {
                std::thread::yield_now();
            }
            rung.store(true, Ordering::SeqCst);
            a.ring();
            let (got, _) = waiter.join().unwrap();
            assert_eq!(got, Some(()));
        });
        assert!(!a.anyone_waiting(), "the waiter unregistered");
        // The record's page is untouched: the bell lives in the next one.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * rustix::param::page_size());
        assert!(bytes[..rustix::param::page_size()].iter().all(|&b| b == 0));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_wait_ends_at_its_deadline_without_a_ring() {
        let (path, file) = lock_file("deadline");
        let bell = Bell::map(&file).unwrap();
        let mut tries = 0;
        let got: Option<()> = bell.wait_for(Instant::now() + Duration::from_millis(20), || {
            tries += 1;
            None
        });
        assert_eq!(got, None);
        // At least every BELL_MAX: a holder that never rings is still polled.
        assert!(tries >= 2, "{tries}");
        assert!(!bell.anyone_waiting());
        let _ = std::fs::remove_file(&path);
    }
}
