//! One descriptor and one in-process state per lock file per process.
//!
//! flock locks belong to an open file description: two descriptors of one file in one process
//! would exclude each other, and closing one would not release the other's lock. So every
//! [`FileLock`](crate::FileLock) on the same file (whatever the path spelling, found by device
//! and inode) shares one [`Entry`]. The map holds weak references: when the last handle and
//! guard are gone, the descriptor closes and the entry leaves the map.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use crate::error::LockError;
use crate::filesystem::Filesystem;
use crate::os::Descriptor;
use crate::sidecar;
use crate::state::Core;

type Key = (u64, u64);

/// The shared state of one lock file in this process.
pub struct Entry {
    /// The path it was first opened by.
    pub path: PathBuf,
    /// Device and inode.
    pub key: Key,
    /// In-process state over the descriptor.
    pub core: Core<Descriptor>,
    /// The filesystem it is on.
    pub filesystem: Filesystem,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut map = lock_registry();
        if map.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&self.key);
        }
    }
}

fn lock_registry() -> MutexGuard<'static, HashMap<Key, Weak<Entry>>> {
    static MAP: OnceLock<Mutex<HashMap<Key, Weak<Entry>>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The entry for the lock file at `path`, opening (and creating it, with the permissions of
/// the file at `model`) if this process has none (see `sidecar.rs` for what is refused).
pub fn entry_for(path: &Path, model: Option<&Path>) -> Result<Arc<Entry>, LockError> {
    // A lock file this process already has open is found without opening a second descriptor
    // (by its own name: a link to it is refused as any other).
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_file()
        && let Some(entry) = lookup((meta.dev(), meta.ino()))
    {
        return Ok(entry);
    }
    let (file, writable) = sidecar::open_lock_file(path, model)?;
    let meta = file.metadata().map_err(|source| LockError::Open {
        path: path.to_owned(),
        source,
    })?;
    let key = (meta.dev(), meta.ino());
    let mut map = lock_registry();
    if let Some(entry) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(entry);
    }
    let entry = Arc::new(Entry {
        path: path.to_owned(),
        key,
        filesystem: Filesystem::of(&file),
        core: Core::new(Descriptor::new(file, writable)),
    });
    map.insert(key, Arc::downgrade(&entry));
    Ok(entry)
}

fn lookup(key: Key) -> Option<Arc<Entry>> {
    lock_registry().get(&key).and_then(Weak::upgrade)
}
