//! Bounded retry of transient SQLite errors with jittered exponential backoff.

use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

/// The first pause after a busy error.
const FIRST: Duration = Duration::from_millis(1);
/// The longest pause between two attempts.
const LONGEST: Duration = Duration::from_millis(100);

/// Whether `e` is worth another attempt: the database (or a table in shared-cache mode) was
/// locked by somebody else, which passes.
pub(crate) fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Pauses between attempts: doubling from [`FIRST`] up to [`LONGEST`], each a random 50–100 %
/// of that (so that processes that collided once do not collide again in step), never past the
/// budget's end.
pub(crate) struct Backoff {
    start: Instant,
    budget: Duration,
    next: Duration,
    /// Attempts so far.
    pub(crate) attempts: u32,
}

impl Backoff {
    pub(crate) fn new(budget: Duration) -> Backoff {
        Backoff {
            start: Instant::now(),
            budget,
            next: FIRST,
            attempts: 1,
        }
    }

    /// Sleeps before the next attempt; `false` when the budget is spent (do not retry).
    pub(crate) fn pause(&mut self) -> bool {
        let elapsed = self.start.elapsed();
        if elapsed >= self.budget {
            return false;
        }
        let jittered = self.next.mul_f64(0.5 + 0.5 * unit_random());
        std::thread::sleep(jittered.min(self.budget - elapsed));
        self.next = (self.next * 2).min(LONGEST);
        self.attempts += 1;
        true
    }

    /// Time since the first attempt.
    pub(crate) fn waited(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A number in [0, 1) for jitter (fastrand's per-thread generator).
fn unit_random() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_locked_are_transient_others_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(is_transient(&busy));
        assert!(!is_transient(&constraint));
        assert!(!is_transient(&rusqlite::Error::QueryReturnedNoRows));
    }

    #[test]
    fn the_budget_bounds_the_retries() {
        let mut b = Backoff::new(Duration::from_millis(30));
        let mut pauses = 0;
        while b.pause() {
            pauses += 1;
            assert!(pauses < 1000, "never stopped");
        }
        assert!(b.waited() >= Duration::from_millis(30));
        assert_eq!(b.attempts, pauses + 1);
    }

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        for _ in 0..10_000 {
            let x = unit_random();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
