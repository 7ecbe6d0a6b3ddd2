//! Scratch directories and database files: [`Scratch`], [`remove_db`], [`copy_db`].

use std::ffi::OsString;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A fresh directory of a test's own under the temporary directory, named after the process
/// and `name`; removed when dropped, unless the thread is panicking (then it is kept, and its
/// path printed, for a look at what the failing run left).
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Removes whatever an earlier run left at the same path and creates the directory.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create scratch {}: {e}", dir.display()));
        Scratch { dir, keep: false }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A fresh (emptied) subdirectory.
    ///
    /// # Panics
    /// When it cannot be created.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    }

    /// Keeps the directory after the drop; gives its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.dir.clone()
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.dir
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep || std::thread::panicking() {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The files beside a database that belong to it: its journals, its WAL index and litekeep's
/// lock files.
const SIDE_FILES: [&str; 5] = ["-wal", "-shm", "-journal", ".lock", ".write.lock"];

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(db.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes the database at `db` and the files beside it (journals, WAL index, lock files).
pub fn remove_db(db: &Path) {
    let _ = std::fs::remove_file(db);
    for suffix in SIDE_FILES {
        let _ = std::fs::remove_file(with_suffix(db, suffix));
    }
}

/// Replaces the database at `to` with a copy of `from`'s main file (so `from` must hold the
/// whole database: checkpointed, no hot journal).
///
/// # Panics
/// When the copy fails.
pub fn copy_db(from: &Path, to: &Path) {
    remove_db(to);
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
