//! Async acquisition (feature `tokio`) that never blocks the executor.
//!
//! Seed 003's server hung because a blocking `flock` ran on the event loop. Here an async
//! acquisition never blocks an executor thread: a `Wait::None` one makes one non-blocking
//! attempt; one that waits first tries the same way, and then waits on tokio's blocking pool,
//! queueing for the lock like any other waiter of any process (an async acquirer that only
//! polled would never get a turn beside processes that queue: the lock's fairness lets queued
//! waiters go first). Re-entry is tracked per task: a task that holds the lock and asks again
//! gets [`LockError::WouldDeadlock`] at once, and a task's guard is its own, whichever thread
//! waited for it.

use std::time::Instant;

use crate::error::LockError;
use crate::file_lock::{FileLock, LockGuard};
use crate::mode::{Mode, Wait};
use crate::state::{Owner, Request};

impl FileLock {
    /// Takes the lock in `mode` without blocking the async executor, waiting as `wait` says.
    /// Needs a tokio runtime with the timer enabled. Dropping the future abandons the wait.
    ///
    /// # Errors
    /// As [`FileLock::exclusive`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
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
        let start = Instant::now();
        let request = move |lock: &FileLock, deadline: Option<Instant>, no_wait: bool| {
            let req = Request {
                mode,
                reentrant: false,
                label: lock.label_arc(),
            };
            let result = lock.core().acquire(&req, owner, deadline, no_wait);
            lock.finish(mode, Some(start), owner, result)
        };
        // A first non-blocking attempt answers the uncontended case (and re-entry) here.
        match request(self, Some(start), true) {
            Err(LockError::WouldBlock { .. }) if wait != Wait::None => {}
            done => return done,
        }
        let deadline = match wait {
            Wait::Timeout(d) => Some(start + d),
            _ => None,
        };
        // The wait runs on the blocking pool. If this future is dropped meanwhile, the guard
        // it would have returned is dropped with the task's output: the lock is let go.
        let lock = self.clone();
        match tokio::task::spawn_blocking(move || request(&lock, deadline, false)).await {
            Ok(done) => done,
            Err(join) => Err(LockError::Io {
                path: self.path().to_owned(),
                op: "waiting for the lock on tokio's blocking pool",
                source: std::io::Error::other(join.to_string()),
            }),
        }
    }
}
