//! The synchronization primitives the in-process state uses: `std`'s normally, loom's under
//! `--cfg loom`, so the loom model checks the very code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::ThreadId;

#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::ThreadId;

/// The calling thread's id.
#[cfg(loom)]
pub(crate) fn current_thread_id() -> ThreadId {
    loom::thread::current().id()
}

/// The calling thread's id, cached in a thread-local: `std::thread::current()` clones an `Arc`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn current_thread_id() -> ThreadId {
    std::thread_local! {
        static ID: ThreadId = std::thread::current().id();
    }
    // After the thread-local is destroyed (a guard dropped by another thread-local's
    // destructor), ask std directly.
    ID.try_with(|id| *id)
        .unwrap_or_else(|_| std::thread::current().id())
}

/// Locks `mutex`, recovering the data if a panicking thread poisoned it. The state it guards
/// is only changed by code that cannot panic half-way, so a poisoned state is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
