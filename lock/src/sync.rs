//! The synchronization primitives the in-process state uses: `std`'s normally, loom's under
//! `--cfg loom`, so the loom model checks the very code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::{ThreadId, current as current_thread};

#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::{ThreadId, current as current_thread};

/// Locks `mutex`, recovering the data if a panicking thread poisoned it. The state it guards
/// is only changed by code that cannot panic half-way, so a poisoned state is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
