//! The poller's stand-in: reads the connections while the poller's thread runs a batch that
//! takes long.
//!
//! The poller's thread runs a lone call's batch itself (no hand-off when the owner is idle).
//! Most batches take microseconds; one that waits (for the write gate a migration holds, for a
//! slow disk) would leave every other connection unread meanwhile: their calls would sit in
//! their sockets instead of joining the queue, and a full queue would not be answered. So a
//! second thread looks, once per [`TICK`], whether the same lone batch still runs, and if so
//! reads in the poller's place until it ends.
//!
//! It costs no wake-up per batch: the poller's thread only bumps a counter at each lone
//! batch's start and end. The stand-in ticks while lone batches come, and sleeps for good
//! after [`IDLE_TICKS`] ticks without one; the next lone batch then wakes it (one wake-up per
//! idle spell).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread::Thread;
use std::time::Duration;

/// How long a lone batch runs before the stand-in reads in the poller's place (at most twice
/// this), and how long the stand-in waits for events at a time while it does.
pub(crate) const TICK: Duration = Duration::from_millis(25);

/// Ticks without a lone batch after which the stand-in sleeps until the next one.
const IDLE_TICKS: u32 = 8;

/// The lone batches of the poller's thread, as the stand-in sees them.
#[derive(Default)]
pub(crate) struct Lone {
    /// Bumped at each lone batch's start and end: odd while one runs.
    seq: AtomicU64,
    /// The stand-in sleeps until the next lone batch.
    parked: AtomicBool,
    /// The poller has ended: so does the stand-in.
    ended: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Lone {
    /// The poller's thread starts a lone batch.
    pub fn begin(&self) {
        self.seq.fetch_add(1, SeqCst);
        if self.parked.load(SeqCst) {
            self.wake();
        }
    }

    /// The poller's thread is done with its lone batch.
    pub fn end(&self) {
        self.seq.fetch_add(1, SeqCst);
    }

    /// Whether the lone batch `seq` (from [`watch`]'s callback) still runs.
    pub fn running(&self, seq: u64) -> bool {
        self.seq.load(SeqCst) == seq
    }

    /// The poller has ended: the stand-in ends too.
    pub fn stop(&self) {
        self.ended.store(true, SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Starts the stand-in thread: it calls `read_in_place(seq)` when the lone batch `seq` has run
/// for a whole tick, which reads until [`Lone::running`] says it ended, and returns false when
/// the poller is gone.
pub(crate) fn spawn(
    lone: std::sync::Arc<Lone>,
    read_in_place: impl Fn(u64) -> bool + Send + 'static,
) -> std::io::Result<()> {
    let handle = std::thread::Builder::new()
        .name("litekeep-owner-standin".into())
        .spawn({
            let lone = lone.clone();
            move || watch(&lone, read_in_place)
        })?;
    let _ = lone.thread.set(handle.thread().clone());
    Ok(())
}

fn watch(lone: &Lone, read_in_place: impl Fn(u64) -> bool) {
    // Until `spawn` has set the thread's handle, nothing can wake this one: tick.
    let mut seen = u64::MAX;
    let mut quiet = 0u32;
    loop {
        if lone.ended.load(SeqCst) {
            return;
        }
        let seq = lone.seq.load(SeqCst);
        if seq % 2 == 1 && seq == seen && !read_in_place(seq) {
            return;
        }
        quiet = if seq == seen {
            quiet.saturating_add(1)
        } else {
            0
        };
        seen = seq;
        if quiet >= IDLE_TICKS && lone.thread.get().is_some() {
            lone.parked.store(true, SeqCst);
            // A batch that began before the flag was seen: looked at, not slept through.
            if lone.seq.load(SeqCst) == seen && !lone.ended.load(SeqCst) {
                std::thread::park();
            }
            lone.parked.store(false, SeqCst);
            quiet = 0;
        } else {
            std::thread::park_timeout(TICK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// A stand-in whose `read_in_place` records each batch it is called for and reads until
    /// that batch ends, as the poller's does.
    fn started() -> (Arc<Lone>, Arc<Mutex<Vec<u64>>>, Arc<()>) {
        let lone = Arc::new(Lone::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let alive = Arc::new(());
        let (l, s, a) = (lone.clone(), seen.clone(), alive.clone());
        spawn(lone.clone(), move |seq| {
            let _alive = &a;
            s.lock().unwrap().push(seq);
            while l.running(seq) {
                std::thread::sleep(Duration::from_millis(1));
            }
            true
        })
        .unwrap();
        (lone, seen, alive)
    }

    /// Waits up to 5 s for `cond`.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_long_batch_is_stood_in_for_short_ones_are_not_and_an_idle_stand_in_wakes_for_the_next() {
        let (lone, seen, alive) = started();
        // Short batches, for longer than the idle spell: never stood in for.
        let short = Instant::now();
        let mut batches = 0;
        while short.elapsed() < TICK * (IDLE_TICKS + 4) {
            lone.begin();
            lone.end();
            batches += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(batches > 100);
        assert!(
            seen.lock().unwrap().is_empty(),
            "{:?}",
            seen.lock().unwrap()
        );
        // A long one: stood in for, once.
        lone.begin();
        let first = lone.seq.load(SeqCst);
        eventually("the stand-in reads during a long batch", || {
            seen.lock().unwrap().contains(&first)
        });
        lone.end();
        // Idle until the stand-in sleeps for good; the next long batch wakes it.
        eventually("the idle stand-in sleeps", || lone.parked.load(SeqCst));
        lone.begin();
        let second = lone.seq.load(SeqCst);
        eventually("the stand-in wakes for the next long batch", || {
            seen.lock().unwrap().contains(&second)
        });
        lone.end();
        assert_eq!(*seen.lock().unwrap(), vec![first, second]);
        // The poller ends: so does the stand-in (its closure is dropped).
        lone.stop();
        eventually("the stand-in ends", || Arc::strong_count(&alive) == 1);
    }
}
