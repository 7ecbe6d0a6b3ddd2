//! The bell: kernel wake-ups for processes that wait for the lock with a timeout.
//!
//! flock(2) has no timed wait. A blocking `flock` cannot be given up at a deadline, so a waiter
//! with a timeout would poll with non-blocking calls and sleep between two polls: each handoff
//! between processes would cost up to a poll interval, and the process that just released the
//! lock would nearly always take it again first.
//!
//! The bell is a futex word that every process with the lock file open for writing maps from
//! the file itself, in the page after the holder record (offset one page; the record never
//! reaches it; the record's page is mapped too, and the holder writes its record there: no
//! system call), beside a count of registered waiters, a count of turns taken by waiters, and a
//! ticket dispenser with the ticket whose turn it is. A waiter takes a ticket, holds its place
//! (a POSIX read lock on one byte per ticket, `os.rs`: the kernel drops it with the process),
//! registers (`waiters += 1`), and then, each time it looks: reads the sequence word, tries the
//! lock if its ticket's turn has come, and otherwise sleeps in `FUTEX_WAIT_BITSET` on the
//! sequence with its ticket's bit — in its turn at most [`BELL_MAX`], so a holder that never
//! rings (another program's `flock`, a SIGKILLed process) costs no more than polling did, and
//! further back in the queue longer, up to 8 ms (see [`nap`]). A waiter that takes
//! the lock, or gives up in its turn, moves the turn on by one. A turn that has stood still for
//! [`PATIENCE`] is skipped only when the kernel says nobody holds its place (its waiter was
//! SIGKILLed, or gave up before its turn came), and with it every dead turn right behind it
//! (waiters killed together cost one patience in all): a live waiter is never jumped,
//! however long its turn takes. (Jumping on time alone would strand live waiters: a turn of a
//! few transactions outlasts [`PATIENCE`], a later ticket would take the lock and move the turn
//! past its own, and the waiters it jumped, whose bits no ring wakes any more, would be left
//! polling.) A waiter that finds the turn past its ticket all the same (its place was not seen)
//! takes a new one.
//! And whatever might keep a live waiter from taking its turn, a turn that has lasted
//! [`LONG_TURN`] (250 ms) lets the waiters behind it try as well, as they poll: the queue is
//! never held up for longer than that by one waiter.
//! A process that releases the OS lock looks at `waiters` (a load from
//! memory, no system call while nobody waits) and, when someone does, bumps the sequence and
//! wakes the waiters of the serving ticket's bit: the next in line, not a herd that races (in
//! which one waiter could lose round after round). Processes that take the lock without
//! waiting may still go first for a short slice (`os.rs`), then let the queue go: such a process
//! rings once more when it steps aside, since the waiter it woke at each release found the lock
//! re-taken and went back to sleep. A waiter never stays awake trying between rings: it would
//! win the microseconds between a release and the same process's next acquisition, and cut
//! that process's slice to a single hold.
//!
//! Why no wake-up is lost: the waiter's increment comes before its non-blocking attempt, and the
//! releaser's load of `waiters` after its unlock, both sequentially consistent (a system call
//! sits between each pair as well). If the releaser read 0, the waiter's attempt came after the
//! unlock and succeeds (or a third process took the lock, and rings when it lets go); otherwise
//! the releaser bumps the sequence, and the waiter's `FUTEX_WAIT` on the value it read either
//! returns at once or is woken — if its bit is the serving one; a waiter out of turn sleeps on
//! until its turn is rung, or [`BELL_MAX`] (it is then not the one the lock should go to).
//!
//! The page's last word names its layout ([`LAYOUT_MAGIC`]): a process that finds another one
//! there (another version beside it in a rolling deploy) uses no bell on that file and polls.
//!
//! Safety of the mapping: both pages are allocated with `fallocate` before they are mapped, so a
//! write to them never needs disk space (a write to a sparse page of a full disk would be `SIGBUS`);
//! where `fallocate` is not supported, or the file is not writable, there is no bell and
//! waiters poll as before. Nothing in litekeep truncates a lock file; a user who truncates one
//! while processes have it mapped would crash them with `SIGBUS`, as truncating SQLite's `-shm`
//! does. A waiter SIGKILLed while registered leaves `waiters` one too high, and every slice of a
//! busy process would then end in a pause for a waiter that never comes: so a process whose
//! turn-giving pause found nobody taking the turn for [`PATIENCE`] asks the kernel (`F_GETLK`)
//! whether any waiter's place is still held; if none is, it
//! resets the count (once per leak).

use std::fs::File;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The longest the waiter whose turn it is sleeps on the bell before it looks again (a holder
/// that never rings is noticed this late at the most); waiters behind it sleep longer, up to
/// eight times as long (see [`nap`]).
pub const BELL_MAX: Duration = Duration::from_millis(1);

/// How long the turn may stand still before a waiter behind it asks the kernel whether anybody
/// still holds its place (its waiter may have been SIGKILLed, or given up before its turn
/// came); asked again every `PATIENCE` while it is held.
pub const PATIENCE: Duration = Duration::from_millis(2);

/// How long a turn may last before the waiters behind it try for the lock as well (the turn
/// stays its waiter's): a bound on whatever keeps a live waiter from taking its turn, far
/// beyond any turn of the queue's ordinary work (hundreds of microseconds to a few
/// milliseconds; a migration holding the lock for seconds is a long hold, not a long turn:
/// nobody behind it gets the lock either).
pub const LONG_TURN: Duration = Duration::from_millis(250);

/// More tickets than any queue holds between the turn and a waiter's ticket, either way: the
/// bell's words were not left by a queue (another program wrote the lock file's second page,
/// or a version with another layout did), and a waiter that meets such a gap takes the turn
/// for its own ticket. (Left alone, a waiter would skip dead turns for as long as it waited, or
/// take new tickets without end.)
const MAX_QUEUE: u32 = 1 << 20;

/// Dead turns a waiter skips at one look, at most (it then looks at its deadline again).
const MAX_SKIPS: u32 = 1024;

/// The words of the page: the futex waiters sleep on, bumped by every ring;
const SEQUENCE: usize = 0;
/// the number of registered waiters;
const WAITERS: usize = 1;
/// the number of turns waiters have taken;
const TURNS: usize = 2;
/// the next ticket to hand out;
const NEXT_TICKET: usize = 3;
/// the ticket whose turn it is;
const SERVING: usize = 4;
/// and which layout of these words the page holds ([`LAYOUT_MAGIC`]; 0 on a fresh page).
const LAYOUT: usize = 5;
const WORDS: usize = 6;

/// This layout of the bell's words: "lk" and a version, bumped whenever a word's meaning
/// changes. A process meets a page of another layout when another version of the program runs
/// beside it (a rolling deploy) or another program wrote the file; it then uses no bell on
/// that file and polls, as where the page cannot be allocated: the lock itself (`flock`) is
/// shared by every version, only the wake-ups are not.
const LAYOUT_MAGIC: u32 = 0x6c6b_0001;

/// The mapping of a lock file's first two pages: the holder record's, and the bell's words.
#[derive(Debug)]
pub struct Bell {
    /// The start of the mapping (file offset 0): the holder record.
    base: *mut u8,
    /// The size of a page; the words are at `base + page`, the mapping is two pages long.
    page: usize,
}

// SAFETY: the mapping is shared memory that lives as long as the `Bell`; every access to it
// goes through atomics (`AtomicU32` words, `AtomicU8` record bytes), which any thread may use
// concurrently.
unsafe impl Send for Bell {}
// SAFETY: as for `Send`: only atomic accesses, through shared references.
unsafe impl Sync for Bell {}

impl Bell {
    /// Maps the bell of the lock file `file` (open for reading and writing), or `None` where it
    /// cannot be had: not Linux, `fallocate` not supported, no room on the disk for one page,
    /// or a page of another layout ([`LAYOUT_MAGIC`]).
    pub fn map(file: &File) -> Option<Bell> {
        let bell = imp::map(file)?;
        // A fresh page is claimed for this layout; one of another layout is left alone.
        let layout =
            bell.word(LAYOUT)
                .compare_exchange(0, LAYOUT_MAGIC, Ordering::SeqCst, Ordering::SeqCst);
        matches!(layout, Ok(_) | Err(LAYOUT_MAGIC)).then_some(bell)
    }

    /// Word `index` of the bell's page (see [`SEQUENCE`] and the others).
    fn word(&self, index: usize) -> &AtomicU32 {
        debug_assert!(index < WORDS);
        // SAFETY: `base` points to a live, page-aligned mapping of two pages, and a page is far
        // more than 4 × WORDS bytes, so offset `page + 4 × index` is aligned for and inside it;
        // it holds an `AtomicU32` (all bit patterns are valid), only ever accessed atomically,
        // and outlives `&self`.
        unsafe { &*self.base.add(self.page + 4 * index).cast::<AtomicU32>() }
    }

    /// Writes `record` at the start of the file, through the mapping: a copy into the page
    /// cache, where a `pwrite` costs a system call and, on ext4, a journal handle for the
    /// modification time (about a fifth of a handoff between processes). `false` (nothing
    /// written) when it does not fit in the record's page.
    pub fn write_record(&self, record: &[u8]) -> bool {
        if record.len() > self.page {
            return false;
        }
        // SAFETY: `base` points to a live mapping whose first page (`page` ≥ record.len() bytes)
        // holds the record; `AtomicU8` has the size and alignment of `u8`, all bit patterns are
        // valid, and the bytes are only accessed atomically here (other processes read them
        // with `pread`, outside this program's memory model) for as long as `&self` lives.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.base.cast::<AtomicU8>(), record.len()) };
        for (to, &from) in bytes.iter().zip(record) {
            to.store(from, Ordering::Relaxed);
        }
        true
    }

    /// The number of turns taken so far (see [`Bell::turn_taken_since`]).
    pub fn turns_now(&self) -> u32 {
        self.word(TURNS).load(Ordering::SeqCst)
    }

    /// Whether a waiter took the lock since `turns` was read with [`Bell::turns_now`].
    pub fn turn_taken_since(&self, turns: u32) -> bool {
        self.word(TURNS).load(Ordering::SeqCst) != turns
    }

    /// Whether any process has a waiter registered: a load, no system call.
    #[inline(always)]
    pub fn anyone_waiting(&self) -> bool {
        self.waiting() != 0
    }

    /// How many waiters are registered, in all processes.
    #[inline(always)]
    pub fn waiting(&self) -> u32 {
        self.word(WAITERS).load(Ordering::SeqCst)
    }

    /// Sets the count of waiters from `count` (read with [`Bell::waiting`]) to zero, unless it
    /// changed since: for a caller that learned from the kernel that no process is waiting, so
    /// `count` is what SIGKILLed waiters left behind. A waiter registering meanwhile moved the
    /// count, and keeps it.
    pub fn forget_waiters(&self, count: u32) {
        let _ = self
            .word(WAITERS)
            .compare_exchange(count, 0, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Called right after this process released the OS lock: wakes the waiter whose turn it
    /// is, if anyone waits.
    #[inline(always)]
    pub fn ring(&self) {
        if self.anyone_waiting() {
            self.ring_slow();
        }
    }

    /// Wakes the waiter whose turn it is: called by a process that lets the queue go first
    /// while the lock is free (its slice ahead of the waiters is over).
    #[cold]
    #[inline(never)]
    pub fn ring_slow(&self) {
        self.word(SEQUENCE).fetch_add(1, Ordering::SeqCst);
        let serving = self.word(SERVING).load(Ordering::SeqCst);
        imp::wake(self.word(SEQUENCE), slot(serving));
    }

    /// Registers a waiter with the next ticket, its place held in `places`; `attempt` is tried
    /// when the ticket's turn has come (woken by a ring, or at least every [`BELL_MAX`]), until
    /// it says to stop (a turn taken), or `deadline` passes. A turn that stood still for
    /// [`PATIENCE`] is skipped when nobody holds its place any more (its waiter died, or gave
    /// up); a waiter skipped while alive (its place was not seen) queues again at the back; a
    /// turn that lasted [`LONG_TURN`] lets the waiters behind it try too.
    /// Returns what `attempt` returned and whether this waiter's place is still held (for the
    /// caller to let go of at its release), or `None` (its place let go) at the deadline.
    pub fn wait_for<T>(
        &self,
        deadline: Instant,
        places: &impl Places,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Option<(T, bool)> {
        // The place is held before the waiter is counted (see `forget_waiters`).
        let (mut ticket, mut held) = self.take_ticket(places);
        self.word(WAITERS).fetch_add(1, Ordering::SeqCst);
        // The serving ticket, when it was first seen serving, and when its place was last
        // found held.
        let start = Instant::now();
        let (mut turn, mut turn_since, mut checked) =
            (self.word(SERVING).load(Ordering::SeqCst), start, start);
        let outcome = loop {
            let seen = self.word(SEQUENCE).load(Ordering::SeqCst);
            let serving = self.word(SERVING).load(Ordering::SeqCst);
            let now = Instant::now();
            if serving != turn {
                (turn, turn_since, checked) = (serving, now, now);
            }
            // Tickets ahead of this one (wrapping): none, or (below zero) skipped.
            let ahead = ticket.wrapping_sub(serving).cast_signed();
            if ahead.unsigned_abs() > MAX_QUEUE {
                // Not a queue's words: the turn is this ticket's.
                let _ = self.word(SERVING).compare_exchange(
                    serving,
                    ticket,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                continue;
            }
            if ahead < 0 {
                // Skipped while alive: no ring is for this ticket any more.
                let old = (ticket, held);
                (ticket, held) = self.take_ticket(places);
                if old.1 {
                    places.let_go(old.0);
                }
                continue;
            }
            // A waiter whose place could not be held cannot be told from a dead one, and may be
            // skipped at every turn: it tries whenever it looks, as a polling waiter does. And
            // a turn that has lasted LONG_TURN lets everyone behind it try as well, without
            // taking it from its waiter: whatever keeps that waiter from the lock, it must not
            // hold up the queue for longer.
            let long_turn = now.duration_since(turn_since) >= LONG_TURN;
            if (ahead == 0 || !held || long_turn)
                && let Some(done) = attempt()
            {
                self.word(TURNS).fetch_add(1, Ordering::SeqCst);
                self.move_turn_from(ticket);
                break Some((done, held));
            }
            if ahead > 0 && now.duration_since(checked) >= PATIENCE {
                if !places.held_elsewhere(serving) {
                    // Nobody waits with the serving ticket: the turn goes to the next one, and
                    // on past every later ticket ahead of this one whose place is gone as well
                    // (waiters SIGKILLed together cost one patience, not one each: 64 of them
                    // held the waiter behind for 127-146 ms). Those tickets were taken before
                    // this one, PATIENCE ago at least, so their waiters had time to hold their
                    // places. The waiter the turn stops at is rung; this one looks again.
                    let (mut dead, mut skips) = (serving, 0);
                    while skips < MAX_SKIPS && self.move_turn_from(dead) {
                        (dead, skips) = (dead.wrapping_add(1), skips + 1);
                        if dead == ticket || places.held_elsewhere(dead) {
                            break;
                        }
                    }
                    self.ring_slow();
                    continue;
                }
                // Its waiter is alive, only slow (or the lock is busy): look again later.
                checked = now;
            }
            if now >= deadline {
                // Giving up: a turn that is this ticket's moves on; a later one will be
                // skipped when it comes (the place is let go here).
                self.move_turn_from(ticket);
                if held {
                    places.let_go(ticket);
                }
                break None;
            }
            // Not its turn, or a process that did not queue keeps re-taking the lock for the
            // rest of its slice: sleep until the next ring (see the module docs for why not
            // stay awake; single-row SQLite writers then alternated at every write).
            imp::wait(
                self.word(SEQUENCE),
                seen,
                slot(ticket),
                (deadline - now).min(nap(ahead, held)),
            );
        };
        // Never below zero: the count may have been reset under a waiter that lost its place
        // (see `forget_waiters`).
        let _ = self
            .word(WAITERS)
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        outcome
    }

    /// Takes the next ticket and holds its place; returns it and whether the place is held.
    fn take_ticket(&self, places: &impl Places) -> (u32, bool) {
        let ticket = self.word(NEXT_TICKET).fetch_add(1, Ordering::SeqCst);
        (ticket, places.hold(ticket))
    }

    /// Gives the turn to the ticket after `ticket`, if the turn is `ticket`'s (it may have moved
    /// on already: the waiter was skipped, or another waiter skipped the same dead ticket);
    /// whether it did.
    fn move_turn_from(&self, ticket: u32) -> bool {
        self.word(SERVING)
            .compare_exchange(
                ticket,
                ticket.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }
}

/// How a waiter shows other processes that it is alive with its ticket: a mark the kernel drops
/// with the process (a POSIX read lock on one byte per ticket, `os.rs`).
pub trait Places {
    /// Holds the place of `ticket`; `false` if it could not be held.
    fn hold(&self, ticket: u32) -> bool;
    /// Lets the place of `ticket` go.
    fn let_go(&self, ticket: u32);
    /// Whether another process holds the place of `ticket` (an error counts as held).
    fn held_elsewhere(&self, ticket: u32) -> bool;
}

/// How long a waiter `ahead` tickets behind the turn sleeps at most before it looks again
/// without a ring: [`BELL_MAX`] in its turn (a holder that never rings is noticed that late at
/// most) and right behind it, and one more `BELL_MAX` for every further ticket ahead, up to
/// [`LOOK_SPREAD`] of them (8 ms). A waiter behind others is rung when its turn comes; it looks
/// on its own only to skip dead turns ahead of it (the one right behind the turn after
/// [`PATIENCE`], as ever; a live waiter further back, behind a run of dead ones, within 8 ms
/// more), to try once a turn has lasted [`LONG_TURN`], and for its deadline. (With every
/// waiter looking every `BELL_MAX`, each would cost a thousand wake-ups a second, for nothing,
/// however long the queue.) A waiter whose place could not be held looks every `BELL_MAX`, as a
/// polling waiter does.
fn nap(ahead: i32, held: bool) -> Duration {
    if !held {
        return BELL_MAX;
    }
    BELL_MAX * u32::try_from(ahead).unwrap_or(0).clamp(1, LOOK_SPREAD)
}

/// The number of tickets ahead from which a waiter sleeps the longest between looks (see
/// [`nap`]): `LOOK_SPREAD` × [`BELL_MAX`].
const LOOK_SPREAD: u32 = 8;

/// The futex bit of a ticket: a ring wakes the waiters of the serving ticket's bit only.
fn slot(ticket: u32) -> u32 {
    1 << (ticket % 32)
}

impl Drop for Bell {
    fn drop(&mut self) {
        imp::unmap(self.base, 2 * self.page);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::fs::File;
    use std::num::NonZeroU32;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
    use rustix::thread::futex;

    use super::Bell;

    pub fn map(file: &File) -> Option<Bell> {
        let page = rustix::param::page_size();
        let len = u64::try_from(2 * page).ok()?;
        // Allocates both pages (and grows the file to hold them) where they are not yet; a
        // failure (no room, not supported) means no bell.
        fallocate(file, FallocateFlags::empty(), 0, len).ok()?;
        // SAFETY: a fresh shared mapping of the first two pages of `file`, which `fallocate`
        // just made part of the file; nothing else aliases the returned memory in this process,
        // and it is unmapped only in `Bell::drop`.
        let base = unsafe {
            mmap(
                std::ptr::null_mut(),
                2 * page,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file,
                0,
            )
        }
        .ok()?;
        Some(Bell {
            base: base.cast::<u8>(),
            page,
        })
    }

    pub fn unmap(page: *mut u8, len: usize) {
        // SAFETY: `page` and `len` are those of a mapping made by `map` and not unmapped yet
        // (this runs once, from `Bell::drop`).
        let _ = unsafe { munmap(page.cast(), len) };
    }

    pub fn wait(word: &AtomicU32, seen: u32, bits: u32, timeout: Duration) {
        // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline.
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let nanos = i64::from(timeout.subsec_nanos()) + now.tv_nsec;
        let deadline = rustix::time::Timespec {
            tv_sec: now.tv_sec
                + i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX / 2)
                + nanos / 1_000_000_000,
            tv_nsec: nanos % 1_000_000_000,
        };
        let Some(bits) = NonZeroU32::new(bits) else {
            return;
        };
        // Woken, timed out, interrupted or the word already moved on: the caller looks again.
        let _ = futex::wait_bitset(word, futex::Flags::empty(), seen, Some(&deadline), bits);
    }

    pub fn wake(word: &AtomicU32, bits: u32) {
        if let Some(bits) = NonZeroU32::new(bits) {
            let _ = futex::wake_bitset(word, futex::Flags::empty(), u32::MAX, bits);
        }
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

    pub fn wait(_word: &AtomicU32, _seen: u32, _bits: u32, timeout: Duration) {
        std::thread::sleep(timeout);
    }

    pub fn wake(_word: &AtomicU32, _bits: u32) {}
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
        let places = FakePlaces::default();
        assert!(!a.anyone_waiting());
        let rung = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let start = Instant::now();
                let got = b.wait_for(start + Duration::from_secs(10), &places, || {
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
            assert_eq!(
                got,
                Some(((), true)),
                "its place is still held, for its release"
            );
        });
        assert!(!a.anyone_waiting(), "the waiter unregistered");
        // The record's page is untouched: the bell lives in the next one.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * rustix::param::page_size());
        assert!(bytes[..rustix::param::page_size()].iter().all(|&b| b == 0));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_record_written_through_the_mapping_is_what_the_file_reads() {
        let (path, file) = lock_file("record");
        let bell = Bell::map(&file).unwrap();
        let long = b"litekeep-lock v1 pid=1 host=h since=1.000000 label=a longer label\n";
        let short = b"litekeep-lock v1 pid=2 host=h since=2.000000 label=b\n";
        assert!(bell.write_record(long));
        assert!(bell.write_record(short));
        // Another descriptor reads the file (as a waiter naming the holder does, with pread).
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..short.len()], short);
        let holder = crate::holder::parse_record(&bytes).unwrap();
        assert_eq!(holder.pid, 2);
        // The bell's words are untouched, and a record that would reach them is refused.
        assert!(!bell.anyone_waiting());
        assert!(!bell.write_record(&vec![b'x'; rustix::param::page_size() + 1]));
        let _ = std::fs::remove_file(&path);
    }

    /// Places held in memory: `held` by this test's waiters, `elsewhere` by waiters of other
    /// (pretend) processes.
    #[derive(Default)]
    struct FakePlaces {
        held: std::sync::Mutex<Vec<u32>>,
        elsewhere: std::sync::Mutex<Vec<u32>>,
    }

    impl Places for FakePlaces {
        fn hold(&self, ticket: u32) -> bool {
            self.held.lock().unwrap().push(ticket);
            true
        }
        fn let_go(&self, ticket: u32) {
            self.held.lock().unwrap().retain(|&t| t != ticket);
        }
        fn held_elsewhere(&self, ticket: u32) -> bool {
            self.elsewhere.lock().unwrap().contains(&ticket)
        }
    }

    #[test]
    fn tickets_are_served_in_order_and_one_that_gives_up_in_its_turn_moves_it() {
        let (path, file) = lock_file("tickets");
        let bell = Bell::map(&file).unwrap();
        let places = FakePlaces::default();
        // Ticket 0 gives up at its deadline: the turn moves past it, its place let go.
        let gave_up: Option<((), bool)> = bell.wait_for(Instant::now(), &places, || None);
        assert_eq!(gave_up, None);
        assert_eq!(bell.word(SERVING).load(Ordering::SeqCst), 1);
        assert!(places.held.lock().unwrap().is_empty());
        // Ticket 1's turn has come: it tries at once, and the turn moves past it.
        let mut tries = 0;
        let got = bell.wait_for(Instant::now() + Duration::from_secs(10), &places, || {
            tries += 1;
            Some(())
        });
        assert_eq!((got, tries), (Some(((), true)), 1));
        assert_eq!(bell.word(SERVING).load(Ordering::SeqCst), 2);
        assert_eq!(bell.turns_now(), 1);
        assert_eq!(
            *places.held.lock().unwrap(),
            [1],
            "kept for the caller's release"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_turn_nobody_holds_is_skipped_after_patience_and_a_live_one_only_shared_when_long() {
        let (path, file) = lock_file("skip");
        let bell = Bell::map(&file).unwrap();
        let places = FakePlaces::default();
        // Ticket 0: a waiter of another process, alive. Ticket 1 (here) never tries ahead of
        // it, however long the turn stands still.
        bell.word(NEXT_TICKET).fetch_add(1, Ordering::SeqCst);
        places.elsewhere.lock().unwrap().push(0);
        let mut tries = 0;
        let deadline = Instant::now() + 10 * PATIENCE;
        let got: Option<((), bool)> = bell.wait_for(deadline, &places, || {
            tries += 1;
            Some(())
        });
        assert_eq!((got, tries), (None, 0), "a live waiter's turn was taken");
        assert_eq!(bell.word(SERVING).load(Ordering::SeqCst), 0);
        // Once the turn has lasted LONG_TURN, the waiters behind it try too (ticket 2, here),
        // and the turn stays ticket 0's.
        let start = Instant::now();
        let got = bell.wait_for(start + Duration::from_secs(10), &places, || Some(()));
        assert_eq!(got, Some(((), true)));
        assert!(start.elapsed() >= LONG_TURN, "{:?}", start.elapsed());
        assert_eq!(bell.word(SERVING).load(Ordering::SeqCst), 0);
        // Ticket 0's waiter dies (its place is gone): ticket 3 (here) skips it after PATIENCE,
        // then tickets 1 and 2 (which let their places go), then tries.
        places.elsewhere.lock().unwrap().clear();
        let start = Instant::now();
        let mut first_try = None;
        let got = bell.wait_for(start + Duration::from_secs(10), &places, || {
            first_try.get_or_insert_with(|| start.elapsed());
            Some(())
        });
        assert_eq!(got, Some(((), true)));
        assert!(first_try.unwrap() >= PATIENCE, "{first_try:?}");
        assert!(first_try.unwrap() < LONG_TURN, "{first_try:?}");
        assert_eq!(bell.word(SERVING).load(Ordering::SeqCst), 4);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_waiter_skipped_while_alive_queues_again() {
        let (path, file) = lock_file("requeue");
        let bell = Bell::map(&file).unwrap();
        let places = FakePlaces::default();
        // Ticket 0: alive elsewhere, so ticket 1 (a thread here) waits its turn…
        bell.word(NEXT_TICKET).fetch_add(1, Ordering::SeqCst);
        places.elsewhere.lock().unwrap().push(0);
        let free = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                bell.wait_for(Instant::now() + Duration::from_secs(10), &places, || {
                    free.load(Ordering::SeqCst).then_some(())
                })
            });
            while bell.word(NEXT_TICKET).load(Ordering::SeqCst) < 2 {
                std::thread::yield_now();
            }
            // …until a process that could not see its place skips it and ticket 2 (the
            // pretend process) as well.
            bell.word(NEXT_TICKET).fetch_add(1, Ordering::SeqCst);
            bell.word(SERVING).store(3, Ordering::SeqCst);
            free.store(true, Ordering::SeqCst);
            bell.ring_slow();
            // Skipped, it takes ticket 3, whose turn it is, and gets the lock.
            assert_eq!(waiter.join().unwrap(), Some(((), true)));
        });
        assert_eq!(bell.word(NEXT_TICKET).load(Ordering::SeqCst), 4);
        assert_eq!(bell.word(SERVING).load(Ordering::SeqCst), 4);
        assert_eq!(*places.held.lock().unwrap(), [3], "ticket 1's place let go");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_page_of_another_layout_is_no_bell_and_is_left_as_it_is() {
        let (path, file) = lock_file("layout");
        let bell = Bell::map(&file).unwrap();
        assert_eq!(bell.word(LAYOUT).load(Ordering::SeqCst), LAYOUT_MAGIC);
        // A second mapping (another process) shares it.
        assert!(Bell::map(&file).is_some());
        // Another version's layout: no bell, and its words untouched.
        bell.word(LAYOUT).store(LAYOUT_MAGIC + 1, Ordering::SeqCst);
        bell.word(NEXT_TICKET).store(77, Ordering::SeqCst);
        assert!(Bell::map(&file).is_none());
        assert_eq!(bell.word(LAYOUT).load(Ordering::SeqCst), LAYOUT_MAGIC + 1);
        assert_eq!(bell.word(NEXT_TICKET).load(Ordering::SeqCst), 77);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn words_no_queue_could_leave_give_the_turn_to_the_waiter_at_once() {
        let (path, file) = lock_file("garbage");
        let bell = Bell::map(&file).unwrap();
        let places = FakePlaces::default();
        // The turn far behind the next ticket (a million dead turns, to be skipped one
        // patience at a time), then far ahead of it (a ticket skipped, again and again).
        for serving in [5u32.wrapping_sub(MAX_QUEUE + 1), 5 + MAX_QUEUE + 1, 1 << 31] {
            bell.word(NEXT_TICKET).store(5, Ordering::SeqCst);
            bell.word(SERVING).store(serving, Ordering::SeqCst);
            let mut tries = 0;
            let got = bell.wait_for(Instant::now() + Duration::from_secs(1), &places, || {
                tries += 1;
                Some(())
            });
            assert_eq!((got, tries), (Some(((), true)), 1), "serving {serving}");
            assert_eq!(
                bell.word(NEXT_TICKET).load(Ordering::SeqCst),
                6,
                "one ticket"
            );
            assert_eq!(bell.word(SERVING).load(Ordering::SeqCst), 6);
            places.let_go(5);
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn waiters_further_back_nap_longer_up_to_eight_bell_maxes() {
        let naps: Vec<Duration> = [-3, 0, 1, 2, 5, 8, 9, 1000]
            .into_iter()
            .map(|ahead| nap(ahead, true))
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(
            naps,
            [ms(1), ms(1), ms(1), ms(2), ms(5), ms(8), ms(8), ms(8)]
        );
        // A waiter whose place is not held looks as often as a polling one.
        assert_eq!(nap(1000, false), BELL_MAX);
    }

    #[test]
    fn a_wait_ends_at_its_deadline_without_a_ring() {
        let (path, file) = lock_file("deadline");
        let bell = Bell::map(&file).unwrap();
        let places = FakePlaces::default();
        let mut tries = 0;
        let deadline = Instant::now() + Duration::from_millis(20);
        let got: Option<((), bool)> = bell.wait_for(deadline, &places, || {
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
