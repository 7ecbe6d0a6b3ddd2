//! One [`crate::Database`] per file per process, whatever the path's spelling: handles are
//! found by the file's device and inode.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError, Weak};

use crate::database::Inner;

/// A file's identity: (device, inode).
pub(crate) type Key = (u64, u64);

static OPEN: LazyLock<Mutex<HashMap<Key, Weak<Inner>>>> = LazyLock::new(Mutex::default);

/// The registry, locked for the whole of an open: two threads opening the same file at once
/// must end with one handle, and the first does the work while the second waits.
pub(crate) fn lock() -> MutexGuard<'static, HashMap<Key, Weak<Inner>>> {
    OPEN.lock().unwrap_or_else(PoisonError::into_inner)
}
