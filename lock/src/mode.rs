//! What a caller asks for: the [`Mode`] of the lock and how long to [`Wait`] for it.

use std::fmt;
use std::time::Duration;

/// Shared (many holders) or exclusive (one holder, no shared ones).
///
/// ```
/// use litekeep_lock::Mode;
/// assert_eq!(Mode::Exclusive.to_string(), "exclusive");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Any number of shared holders may hold the lock at once, but no exclusive one.
    Shared,
    /// One holder and nobody else.
    Exclusive,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Shared => "shared",
            Mode::Exclusive => "exclusive",
        })
    }
}

/// How long an acquisition may wait for the lock.
///
/// ```
/// use std::time::Duration;
/// use litekeep_lock::Wait;
/// let w = Wait::from(Duration::from_secs(5));
/// assert_eq!(w, Wait::Timeout(Duration::from_secs(5)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Do not wait: take the lock now or fail with [`LockError::WouldBlock`](crate::LockError::WouldBlock).
    /// A free lock is refused too while other processes wait for it and this process has
    /// already gone ahead of them for a fairness slice (1 ms shared among the waiters, at least
    /// 100 µs): they go first.
    None,
    /// Wait at most this long, then fail with [`LockError::Timeout`](crate::LockError::Timeout),
    /// which names the holder.
    Timeout(Duration),
    /// Wait as long as it takes.
    Forever,
}

impl From<Duration> for Wait {
    fn from(d: Duration) -> Self {
        Wait::Timeout(d)
    }
}
