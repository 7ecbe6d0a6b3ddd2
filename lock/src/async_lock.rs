//! Async acquisition (feature `tokio`) that never blocks the executor.
//!
//! Seed 003's server hung because a blocking `flock` ran on the event loop. Here an async
//! acquisition only ever makes non-blocking attempts, and between them sleeps on tokio's timer
//! with backoff (50 µs doubling to 5 ms), so the executor thread is free while it waits.
//! Re-entry is tracked per task: a task that holds the lock and asks again gets
//! [`LockError::WouldDeadlock`] at once.

use std::time::{Duration, Instant};

use crate::error::LockError;
use crate::file_lock::{FileLock, LockGuard};
use crate::mode::{Mode, Wait};
use crate::state::{Owner, Refusal, Request};

const PAUSE_MIN: Duration = Duration::from_micros(50);
const PAUSE_MAX: Duration = Duration::from_millis(5);

impl FileLock {
    /// Takes the lock in `mode` without blocking the async executor, waiting as `wait` says.
    /// Needs a tokio runtime with the timer enabled. Dropping the future abandons the wait.
    ///
    /// # Errors
    /// As [`FileLock::exclusive`].
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("lk-doc-async-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// use std::time::Duration;
    /// use litekeep_lock::{FileLock, Mode};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap();
    /// let guard = lock.acquire_async(Mode::Exclusive, Duration::from_secs(5)).await.unwrap();
    /// drop(guard);
    /// # });
    /// ```
    pub async fn acquire_async(
        &self,
        mode: Mode,
        wait: impl Into<Wait>,
    ) -> Result<LockGuard, LockError> {
        let wait = wait.into();
        let owner = match tokio::task::try_id() {
            Some(id) => Owner::Task(id),
            None => Owner::current_thread(),
        };
        let req = Request {
            mode,
            reentrant: false,
            label: self.label_arc(),
        };
        let start = Instant::now();
        let mut pause = PAUSE_MIN;
        loop {
            let result = self.core().acquire(&req, owner, Some(Instant::now()), true);
            let left = match (&result, wait) {
                (Err(Refusal::WouldBlock), Wait::Timeout(d)) => d.saturating_sub(start.elapsed()),
                (Err(Refusal::WouldBlock), Wait::Forever) => Duration::MAX,
                _ => return self.finish(mode, Some(start), owner, result),
            };
            if left.is_zero() {
                return self.finish(mode, Some(start), owner, Err(Refusal::TimedOut));
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(PAUSE_MAX);
        }
    }
}
