//! Scratch directories and database files: [`Scratch`], [`process_scratch`], [`remove_db`],
//! [`copy_db`].

use std::ffi::OsString;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, PoisonError};

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

/// The directories [`remove_at_exit`] removes when the process exits.
static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_registered() {
    let dirs = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(PoisonError::into_inner));
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes `dir` (and what it holds) when this process exits through `exit`, as a test binary
/// does once its tests have run; a process that is killed leaves it. For directories that
/// outlive any one test: a per-process scratch directory, a copy of the test binary.
pub fn remove_at_exit(dir: &Path) {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `remove_registered` is an `extern "C" fn()` that does not unwind (it only
        // takes a mutex and removes files, ignoring errors); `atexit` keeps the pointer.
        unsafe { libc::atexit(remove_registered) };
    });
    AT_EXIT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(dir.to_path_buf());
}

/// A directory of this process's own under the temporary directory, `lk-<pid>-<name>`,
/// created (emptied first) on the first call and shared by every later call with the same
/// name; removed when the process exits ([`remove_at_exit`]). For helpers that hand out
/// database paths to many tests of one binary.
///
/// # Panics
/// When the directory cannot be created.
pub fn process_scratch(name: &str) -> PathBuf {
    static MADE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join(format!("lk-{}-{name}", std::process::id()));
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    if !made.contains(&dir) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create scratch {}: {e}", dir.display()));
        remove_at_exit(&dir);
        made.push(dir.clone());
    }
    dir
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
