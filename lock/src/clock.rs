//! The cheap clock the in-process state times its runs, fairness slices and holders with.
//!
//! An uncontended acquisition reads the clock twice (taking and releasing the lock), right after
//! or before a system call, where `Instant::now()` can cost more than everything else the lock
//! adds to the two `flock` calls. On Linux a [`Stamp`] reads `CLOCK_MONOTONIC_COARSE` instead,
//! which the vDSO answers from memory, at the price of resolution: one kernel tick
//! ([`resolution`], 1 to 10 ms). The gaps it measures are heuristics of milliseconds, so the
//! tick is good enough. Deadlines and timeouts keep `Instant`. Elsewhere a `Stamp` is an
//! `Instant` reading.

use std::time::{Duration, SystemTime};

/// A reading of the coarse monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Duration);

impl Stamp {
    /// Now.
    #[inline]
    pub fn now() -> Stamp {
        Stamp(imp::now())
    }

    /// How long after `earlier` this stamp was taken (zero if it was not).
    #[inline]
    pub fn since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// The wall-clock time of this stamp (for messages and the holder record).
    pub fn wall(self) -> SystemTime {
        let ago = Stamp::now().since(self);
        let now = SystemTime::now();
        now.checked_sub(ago).unwrap_or(now)
    }
}

/// The clock's resolution: two stamps less than this apart may read the same.
#[cfg(test)]
pub fn resolution() -> Duration {
    imp::resolution()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::time::Duration;

    #[cfg(test)]
    use rustix::time::clock_getres;
    use rustix::time::{ClockId, Timespec, clock_gettime};

    fn duration(t: Timespec) -> Duration {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
        Duration::new(secs, nanos)
    }

    #[inline]
    pub fn now() -> Duration {
        duration(clock_gettime(ClockId::MonotonicCoarse))
    }

    #[cfg(test)]
    pub fn resolution() -> Duration {
        duration(clock_getres(ClockId::MonotonicCoarse))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static ORIGIN: OnceLock<Instant> = OnceLock::new();

    pub fn now() -> Duration {
        ORIGIN.get_or_init(Instant::now).elapsed()
    }

    #[cfg(test)]
    pub fn resolution() -> Duration {
        Duration::from_nanos(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_advance_by_what_the_precise_clock_sees_within_one_tick() {
        let start = Stamp::now();
        let precise = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let coarse = Stamp::now().since(start);
        let fine = precise.elapsed();
        let tick = resolution();
        assert!(
            tick > Duration::ZERO && tick <= Duration::from_millis(20),
            "{tick:?}"
        );
        assert!(
            coarse + tick >= fine,
            "coarse {coarse:?} lags fine {fine:?} by more than {tick:?}"
        );
        assert!(
            coarse <= fine + tick,
            "coarse {coarse:?} ahead of fine {fine:?}"
        );
        assert_eq!(start.since(Stamp::now()), Duration::ZERO, "never negative");
    }

    #[test]
    fn a_stamp_maps_to_the_wall_clock_within_a_tick() {
        let stamp = Stamp::now();
        let wall = SystemTime::now();
        let diff = match wall.duration_since(stamp.wall()) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(diff <= resolution() + Duration::from_millis(5), "{diff:?}");
    }
}
