//! Files litekeep keeps beside a database — `<db>.lock`, `<db>.write.lock`, the owner's files —
//! and how they are opened so that nobody can make litekeep write into another file.
//!
//! Databases live in directories other users can write: a team's group folder, a shared data
//! directory, `/tmp`. Whoever can create a file there could plant, at the name of a lock file,
//! a symbolic link to a file of the victim's (a shell profile, another database) or a file of
//! their own content, and every process that opens the database would then write its holder
//! record into it and grow it to two pages (CWE-59, the classic attack on lock files). So a
//! sidecar file is:
//!
//! - **never reached through a symbolic link**: created with `O_CREAT | O_EXCL` (which never
//!   follows one), else opened with `O_NOFOLLOW`; a link at the name is refused, dangling or
//!   not, and nothing is created where it points;
//! - **a regular file with one name**: a directory, FIFO, socket or device at the name is
//!   refused before anything opens it (`lstat`), and again after the open (`fstat`), in case the
//!   name changed in between; a file with more than one hard link is refused (a lock file never
//!   has a second name, a planted link to a victim does);
//! - **a lock file, or empty**: an existing lock file must be empty (util-linux `flock(1)`
//!   creates those) or carry litekeep's layout — a holder record (`litekeep-lock v…`, any
//!   version) at its start, or nothing but the bell's words (`bell.rs`) in its first two pages.
//!   Anything else is another program's bytes and is never written to. A file whose bytes
//!   cannot be read (an I/O error) is locked but never written to, as a read-only one;
//! - **created with the database's permissions**: a new sidecar file gets the permission bits
//!   of the database file (and, when this process is root, its owner and group), as SQLite does
//!   for its `-wal` and `-shm` files, so that every user who may write the database may also
//!   take its locks and ring its bell — under the common umask 022 a group-shared database
//!   would otherwise get lock files its group cannot write.
//!
//! What this does not defend against: a neighbour who can *rename* files in the directory
//! (a group-writable directory without the sticky bit) can move a lock file away while
//! processes hold it open, and processes that open the name afterwards then lock another file.
//! That splits the lock but writes nothing anywhere; SQLite's own `-shm` file has the same
//! exposure. Keep databases in directories only their users can write, or with the sticky bit.

use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode as FileMode, OFlags};
use rustix::io::Errno;

use crate::error::LockError;

/// What litekeep found at the name of one of its files, instead of a file it may use.
///
/// Carried by [`LockError::Refused`]; its `Display` is a phrase such as
/// `it is a symbolic link (to victim.txt)`.
///
/// ```
/// use litekeep_lock::Found;
/// assert_eq!(Found::Directory.to_string(), "it is a directory");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// A symbolic link (dangling or not).
    Symlink {
        /// Where it points, as written in the link.
        target: PathBuf,
    },
    /// A directory.
    Directory,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A block or character device.
    Device,
    /// A regular file with more than one name (a hard link to another file).
    HardLinks {
        /// How many names the file has.
        links: u64,
    },
    /// A regular file that holds another program's bytes, not a lock file's.
    ForeignContent {
        /// Its first bytes, escaped.
        start: String,
    },
    /// Some other kind of file.
    Other,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Symlink { target } => {
                write!(f, "it is a symbolic link (to {})", target.display())
            }
            Found::Directory => f.write_str("it is a directory"),
            Found::Fifo => f.write_str("it is a named pipe (FIFO)"),
            Found::Socket => f.write_str("it is a socket"),
            Found::Device => f.write_str("it is a device"),
            Found::HardLinks { links } => write!(
                f,
                "it is a file with {links} names (hard links), and a lock file has one"
            ),
            Found::ForeignContent { start } => write!(
                f,
                "it holds another program's data (it starts with \"{start}\"), not a lock file's"
            ),
            Found::Other => f.write_str("it is not a regular file"),
        }
    }
}

/// The start of every holder record, whatever its version (`holder.rs` writes `v1`).
const RECORD_PREFIX: &[u8] = b"litekeep-lock v";

/// How many bytes at the start of the bell's page may be the bell's words (`bell.rs` uses six
/// 32-bit words; room for a later layout with a few more).
const BELL_WORDS_BYTES: usize = 64;

/// Opens the lock file at `path`, creating it (with `model`'s permissions, see the module docs)
/// where it is missing: read-write where this process may write it, else read-only (flock
/// works on either; only the holder record and the bell need writing). Returns the file and
/// whether it is writable.
pub(crate) fn open_lock_file(path: &Path, model: Option<&Path>) -> Result<(File, bool), LockError> {
    let opened = open_regular(path, model, true)?;
    if opened.created {
        return Ok((opened.file, opened.writable));
    }
    match foreign_start(&opened.file, opened.meta.len()) {
        Ok(None) => Ok((opened.file, opened.writable)),
        Ok(Some(start)) => Err(LockError::Refused {
            path: path.to_owned(),
            found: Found::ForeignContent { start },
        }),
        // A file that cannot be read (EIO) cannot be shown to be a lock file: it is locked
        // but never written to (no bell, no holder record), as a read-only one.
        Err(_) => Ok((opened.file, false)),
    }
}

/// Opens the file at `path` that litekeep keeps beside the database `model` (or beside nothing,
/// with `None`), for reading and writing, creating it with the database file's permissions —
/// and, when this process is root, its owner and group — where it is missing.
///
/// The file is never reached through a symbolic link, must be a regular file with one name,
/// and is checked before anything opens it and again after: see the module docs of
/// [`FileLock`](crate::FileLock)'s sidecar files. Its content is the caller's to check.
///
/// # Errors
/// [`LockError::Refused`] when something else is at `path` (a symbolic link, a directory, a
/// FIFO, a socket, a device, a file with several hard links); [`LockError::Open`] when the file
/// can be neither opened nor created (missing directory, no permission).
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// use std::os::unix::fs::PermissionsExt;
/// let db = dir.join("app.db");
/// std::fs::write(&db, b"").unwrap();
/// std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o660)).unwrap();
/// let file = litekeep_lock::open_sidecar(&dir.join("app.db.owner"), Some(&db)).unwrap();
/// assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o660);
///
/// std::os::unix::fs::symlink(&db, dir.join("planted")).unwrap();
/// let err = litekeep_lock::open_sidecar(&dir.join("planted"), Some(&db)).unwrap_err();
/// assert!(matches!(err, litekeep_lock::LockError::Refused { .. }));
/// ```
pub fn open_sidecar(path: &Path, model: Option<&Path>) -> Result<File, LockError> {
    Ok(open_regular(path, model, false)?.file)
}

/// Checks, without opening it, that what is at `path` — a file another program will open
/// beside a database, such as SQLite's `-wal`, `-shm` and `-journal` — is nothing yet or a
/// regular file with one name: not a symbolic link, directory, FIFO, socket or device, and no
/// second name of another file.
///
/// This narrows what a neighbour can plant before the other program opens the name; it cannot
/// close the window between this look and that open, which is the other program's to close.
///
/// # Errors
/// [`LockError::Refused`] naming `path` and what is there; [`LockError::Open`] when it cannot
/// be looked at.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let wal = dir.join("app.db-wal");
/// litekeep_lock::check_sidecar(&wal).unwrap(); // nothing there yet
/// std::os::unix::fs::symlink("/etc/passwd", &wal).unwrap();
/// assert!(litekeep_lock::check_sidecar(&wal).is_err());
/// ```
pub fn check_sidecar(path: &Path) -> Result<(), LockError> {
    let refused = |found| LockError::Refused {
        path: path.to_owned(),
        found,
    };
    if let Some(found) = what_is_there(path).map_err(|source| LockError::Open {
        path: path.to_owned(),
        source,
    })? {
        return Err(refused(found));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.nlink() > 1 => Err(refused(Found::HardLinks {
            links: meta.nlink(),
        })),
        _ => Ok(()),
    }
}

struct Opened {
    file: File,
    meta: Metadata,
    writable: bool,
    created: bool,
}

/// Creates or opens the regular file at `path` without following a symbolic link, refusing
/// what is not a regular file with one name; read-only where it cannot be written and
/// `read_only_ok`.
fn open_regular(
    path: &Path,
    model: Option<&Path>,
    read_only_ok: bool,
) -> Result<Opened, LockError> {
    let refused = |found| LockError::Refused {
        path: path.to_owned(),
        found,
    };
    let open_error = |source| LockError::Open {
        path: path.to_owned(),
        source,
    };
    // A name that vanishes between the attempts (removed by someone) is tried again, a little.
    for _ in 0..8 {
        if let Some(found) = what_is_there(path).map_err(open_error)? {
            return Err(refused(found));
        }
        let (file, writable, created) = match open_nofollow(path, read_only_ok) {
            Ok(Some(opened)) => opened,
            Ok(None) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                // Replaced by a link since the look: say so as for one found at once.
                match what_is_there(path).map_err(open_error)? {
                    Some(found) => return Err(refused(found)),
                    None => continue,
                }
            }
            Err(e) => return Err(open_error(e)),
        };
        let meta = file.metadata().map_err(open_error)?;
        if let Some(found) = not_regular(&meta) {
            return Err(refused(found));
        }
        match meta.nlink() {
            // Removed since the open: this inode is no longer the name's.
            0 => continue,
            1 => {}
            links => return Err(refused(Found::HardLinks { links })),
        }
        if created && let Some(model) = model {
            take_permissions_of(&file, model);
        }
        clear_nonblock(&file);
        return Ok(Opened {
            file,
            meta,
            writable,
            created,
        });
    }
    Err(open_error(io::Error::other(
        "the file kept being removed and created again while it was opened",
    )))
}

/// What is at `path` if it is not a regular file (without following a link); `None` for a
/// regular file or nothing.
fn what_is_there(path: &Path) -> io::Result<Option<Found>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Ok(Some(Found::Symlink {
            target: std::fs::read_link(path).unwrap_or_default(),
        })),
        Ok(meta) => Ok(not_regular(&meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn not_regular(meta: &Metadata) -> Option<Found> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_symlink() {
        Some(Found::Symlink {
            target: PathBuf::new(),
        })
    } else if kind.is_dir() {
        Some(Found::Directory)
    } else if kind.is_fifo() {
        Some(Found::Fifo)
    } else if kind.is_socket() {
        Some(Found::Socket)
    } else if kind.is_block_device() || kind.is_char_device() {
        Some(Found::Device)
    } else {
        Some(Found::Other)
    }
}

/// Creates `path` (`O_EXCL`: never through a link), else opens it read-write, else (where
/// allowed) read-only, each without following a link and without blocking on a FIFO that may
/// have taken the name since the look. `None` when the name vanished between two attempts.
/// Returns the file, whether it is writable and whether this call created it.
fn open_nofollow(path: &Path, read_only_ok: bool) -> io::Result<Option<(File, bool, bool)>> {
    let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let create = base | OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
    // Where the directory cannot be written an existing file may still be opened; a missing
    // one is then this error.
    let cannot_create = match rustix::fs::open(path, create, FileMode::from_bits_truncate(0o666)) {
        Ok(fd) => return Ok(Some((File::from(fd), true, true))),
        Err(Errno::EXIST) => None,
        Err(e @ (Errno::ACCESS | Errno::PERM | Errno::ROFS)) => Some(e),
        Err(e) => return Err(e.into()),
    };
    let vanished = || match cannot_create {
        Some(e) => Err(e.into()),
        None => Ok(None),
    };
    match rustix::fs::open(path, base | OFlags::RDWR, FileMode::empty()) {
        Ok(fd) => Ok(Some((File::from(fd), true, false))),
        Err(Errno::NOENT) => vanished(),
        Err(e @ (Errno::ACCESS | Errno::PERM | Errno::ROFS)) if read_only_ok => {
            match rustix::fs::open(path, base | OFlags::RDONLY, FileMode::empty()) {
                Ok(fd) => Ok(Some((File::from(fd), false, false))),
                Err(Errno::NOENT) => vanished(),
                // The first refusal says more than this one would.
                Err(_) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives a file this process just created the permission bits of `model` (and, as root, its
/// owner and group). Best effort: the file works without them, only other users may not.
fn take_permissions_of(file: &File, model: &Path) {
    let Ok(meta) = std::fs::metadata(model) else {
        return;
    };
    if rustix::process::geteuid().is_root() {
        let _ = rustix::fs::fchown(
            file,
            Some(rustix::process::Uid::from_raw(meta.uid())),
            Some(rustix::process::Gid::from_raw(meta.gid())),
        );
    }
    let _ = rustix::fs::fchmod(file, FileMode::from_bits_truncate(meta.mode() & 0o777));
}

/// Drops the `O_NONBLOCK` the file was opened with (it has no effect on a regular file's I/O on
/// Linux, but a descriptor of ours should not carry it).
fn clear_nonblock(file: &File) {
    if let Ok(flags) = rustix::fs::fcntl_getfl(file) {
        let _ = rustix::fs::fcntl_setfl(file, flags - OFlags::NONBLOCK);
    }
}

/// `None` when the file is empty, starts with a holder record, or holds nothing but the bell's
/// words in its first two pages; else its first bytes, escaped.
fn foreign_start(file: &File, len: u64) -> io::Result<Option<String>> {
    if len == 0 {
        return Ok(None);
    }
    let page = rustix::param::page_size();
    let limit = 2 * page;
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(limit)];
    let mut read = 0;
    while read < bytes.len() {
        match file.read_at(&mut bytes[read..], read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(read);
    if is_lock_layout(&bytes, len, page) {
        return Ok(None);
    }
    let start: String = bytes
        .iter()
        .take(24)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    Ok(Some(start))
}

/// Whether `bytes`, the first (up to two pages of the) `len` bytes of a file, are a lock file's.
fn is_lock_layout(bytes: &[u8], len: u64, page: usize) -> bool {
    if bytes.starts_with(RECORD_PREFIX) {
        return true;
    }
    // No record yet: only the bell's page may hold anything, and only its words.
    let in_two_pages = len <= (2 * page) as u64;
    let first_page_zero = bytes.iter().take(page).all(|&b| b == 0);
    let rest_zero = bytes.iter().skip(page + BELL_WORDS_BYTES).all(|&b| b == 0);
    in_two_pages && first_page_zero && rest_zero
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn records_of_any_version_are_lock_files() {
        assert!(is_lock_layout(b"litekeep-lock v1 pid=1 host=h\n", 30, PAGE));
        assert!(is_lock_layout(b"litekeep-lock v7 anything", 25, PAGE));
    }

    #[test]
    fn a_bell_without_a_record_is_a_lock_file() {
        let mut bytes = vec![0u8; 2 * PAGE];
        bytes[PAGE..PAGE + 24].copy_from_slice(&[7u8; 24]);
        assert!(is_lock_layout(&bytes, bytes.len() as u64, PAGE));
    }

    #[test]
    fn other_bytes_are_not() {
        assert!(!is_lock_layout(b"IMPORTANT USER DATA\n", 20, PAGE));
        // Zeros, then data past the bell's words.
        let mut bytes = vec![0u8; 2 * PAGE];
        bytes[PAGE + BELL_WORDS_BYTES] = 1;
        assert!(!is_lock_layout(&bytes, bytes.len() as u64, PAGE));
        // Data in the record's page that is not a record.
        let mut bytes = vec![0u8; 2 * PAGE];
        bytes[100] = b'x';
        assert!(!is_lock_layout(&bytes, bytes.len() as u64, PAGE));
        // A file of zeros longer than a lock file is.
        let bytes = vec![0u8; 2 * PAGE];
        assert!(!is_lock_layout(&bytes, 3 * PAGE as u64, PAGE));
    }
}
