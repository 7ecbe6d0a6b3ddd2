//! [`LockError`]: everything that can go wrong, each variant with the path it is about.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::holder::Holder;
use crate::mode::Mode;
use crate::sidecar::Found;

/// The error type of every fallible lock operation.
///
/// Every variant names the lock file; `Display` is one line that says what happened and what to
/// do. [`LockError::is_transient`] tells the errors worth retrying from the ones that are not.
///
/// ```
/// use std::time::Duration;
/// use litekeep_lock::{FileLock, LockError, Wait};
/// # fn main() -> Result<(), LockError> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let lock = FileLock::for_database(dir.join("app.db"))?;
/// let _held = lock.exclusive(Wait::None)?;
/// // The same thread asking again would wait on itself forever: refused at once.
/// match lock.exclusive(Wait::Timeout(Duration::from_secs(60))) {
///     Err(LockError::WouldDeadlock { .. }) => {}
///     other => panic!("expected WouldDeadlock, got {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock file could not be opened or created.
    #[error(
        "cannot open lock file {}: {source}; check that the directory exists and is writable",
        path.display()
    )]
    Open {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Something other than a file litekeep may use is at the name of one of its files: a
    /// symbolic link, a directory, a FIFO, a device, a file with several names, or a file
    /// holding another program's bytes. Nothing was opened through it or written to it.
    #[error(
        "refusing to use {}: {found}; litekeep never writes through a link or into a file it did \
         not make. If you did not put it there, move it away and find out who did; keep \
         databases in directories only their users can write",
        path.display()
    )]
    Refused {
        /// The name litekeep uses.
        path: PathBuf,
        /// What is there.
        found: Found,
    },
    /// The lock was still held elsewhere when the timeout ran out.
    #[error(
        "timed out after {:.1} s waiting for {wanted} lock on {}: {}",
        waited.as_secs_f64(),
        path.display(),
        held_by(holder.as_deref())
    )]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// The mode asked for.
        wanted: Mode,
        /// How long the acquisition waited.
        waited: Duration,
        /// Who held the lock when the wait ended, if it could be found out.
        holder: Option<Box<Holder>>,
    },
    /// The lock is held elsewhere and the acquisition was not allowed to wait.
    #[error("{wanted} lock on {} is busy: {}", path.display(), held_by(holder.as_deref()))]
    WouldBlock {
        /// The lock file.
        path: PathBuf,
        /// The mode asked for.
        wanted: Mode,
        /// Who holds it, if it could be found out.
        holder: Option<Box<Holder>>,
    },
    /// The calling thread (or task) already holds this lock; waiting would wait on itself.
    #[error(
        "this thread already holds the {held} lock on {} and asked for it again ({wanted}); \
         waiting would deadlock: reuse the guard you hold{}",
        path.display(),
        if *held == Mode::Shared && *wanted == Mode::Exclusive {
            " (a shared lock cannot be upgraded: release it, then ask for exclusive)"
        } else {
            ", or ask for a reentrant guard"
        }
    )]
    WouldDeadlock {
        /// The lock file.
        path: PathBuf,
        /// The mode already held.
        held: Mode,
        /// The mode asked for.
        wanted: Mode,
    },
    /// A lock call failed in the OS.
    #[error("{op} on lock file {} failed: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl LockError {
    /// Whether trying again later may succeed: the lock was busy ([`LockError::Timeout`],
    /// [`LockError::WouldBlock`]), as opposed to a setup or programming error.
    ///
    /// ```
    /// let err = litekeep_lock::FileLock::open("/no/such/dir/x.lock").unwrap_err();
    /// assert!(!err.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LockError::Timeout { .. } | LockError::WouldBlock { .. }
        )
    }

    /// The holder named by a [`LockError::Timeout`] or [`LockError::WouldBlock`].
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// use litekeep_lock::{FileLock, Wait};
    /// let lock = FileLock::for_database(dir.join("app.db")).unwrap().with_label("setup");
    /// let _held = std::thread::scope(|s| s.spawn(|| lock.exclusive(Wait::None).unwrap()).join().unwrap());
    /// let err = lock.exclusive(Wait::None).unwrap_err();
    /// assert_eq!(err.holder().unwrap().label.as_deref(), Some("setup"));
    /// ```
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            LockError::Timeout { holder, .. } | LockError::WouldBlock { holder, .. } => {
                holder.as_deref()
            }
            _ => None,
        }
    }
}

fn held_by(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) if h.mode == Mode::Shared => format!("held shared by {h}"),
        Some(h) => format!("held by {h}"),
        None => "the holder could not be identified (it may have just released it)".to_owned(),
    }
}
