//! Where the owner's lock and socket live: beside the file, in its directory.
//!
//! The socket is `<file name>.owner-<generation>.sock` in the file's own directory, so it is
//! reachable by exactly the users who can reach the file (a database shared by a group of
//! users works as the file does). A Unix socket's address holds at most 107 bytes of path; a
//! longer one is reached as `/proc/self/fd/<fd>/<name>`, where `<fd>` is a descriptor of the
//! directory (opened `O_PATH`): the kernel resolves the directory through the descriptor, so
//! the length of the directory's own path does not matter.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// The most path bytes a Unix socket address holds on Linux (108 with the terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// The owner lock of the file at `path`: `<path>.owner.lock`.
///
/// ```
/// use std::path::Path;
/// assert_eq!(litekeep_owner::owner_lock_path("data/app.db"), Path::new("data/app.db.owner.lock"));
/// ```
pub fn owner_lock_path(path: impl AsRef<Path>) -> PathBuf {
    let mut name = OsString::from(path.as_ref().as_os_str());
    name.push(".owner.lock");
    PathBuf::from(name)
}

/// The name of generation `generation`'s socket for a file named `file_name`.
///
/// ```
/// assert_eq!(litekeep_owner::socket_name("app.db", 7), "app.db.owner-7.sock");
/// ```
pub fn socket_name(file_name: &str, generation: u64) -> String {
    format!("{file_name}.owner-{generation}.sock")
}

/// The generation in a socket name of the file named `file_name`, if it is one.
pub(crate) fn generation_of(file_name: &str, socket: &str) -> Option<u64> {
    socket
        .strip_prefix(file_name)?
        .strip_prefix(".owner-")?
        .strip_suffix(".sock")?
        .parse()
        .ok()
}

/// The directory of a file, with a descriptor to reach it by when its path is too long.
#[derive(Debug)]
pub(crate) struct Place {
    /// The file (as given).
    pub file: PathBuf,
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The directory, opened `O_PATH`.
    dir_fd: OwnedFd,
}

impl Place {
    pub fn new(file: &Path) -> io::Result<Place> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other("the file's name must be valid UTF-8"))?
            .to_owned();
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir_fd = rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Place {
            file: file.to_path_buf(),
            name,
            dir,
            dir_fd,
        })
    }

    /// The socket of `generation`, as its full path (for unlinking and messages).
    pub fn socket_path(&self, generation: u64) -> PathBuf {
        self.dir.join(socket_name(&self.name, generation))
    }

    /// The address to bind or connect to for `generation`: its path when it fits, else the
    /// path through the directory's descriptor.
    pub fn socket_address(&self, generation: u64) -> PathBuf {
        let direct = self.socket_path(generation);
        if direct.as_os_str().as_bytes().len() <= SUN_PATH_MAX {
            return direct;
        }
        PathBuf::from(format!(
            "/proc/self/fd/{}/{}",
            self.dir_fd.as_raw_fd(),
            socket_name(&self.name, generation)
        ))
    }

    /// Binds and listens on `generation`'s socket, readable and writable by whoever may write
    /// the file (its write bits; `0600` when it has none or cannot be read), before any
    /// client can connect.
    ///
    /// Something already at the name is never followed, changed or removed: the error says
    /// what it is (kind [`io::ErrorKind::AlreadyExists`]).
    pub fn listen(&self, generation: u64) -> io::Result<UnixListener> {
        let path = self.socket_path(generation);
        if let Some(what) = taken_by(&path)? {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{what} is at the owner's socket name, where only a socket is ever made; it is left as it is (remove it)"
                ),
            ));
        }
        let address = self.socket_address(generation);
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::bind(&fd, &SocketAddrUnix::new(address.as_path())?)?;
        if let Err(e) = self.set_socket_mode(&address) {
            let _ = std::fs::remove_file(&address);
            return Err(e);
        }
        if let Err(e) = rustix::net::listen(&fd, 1024) {
            let _ = std::fs::remove_file(&address);
            return Err(e.into());
        }
        Ok(UnixListener::from(fd))
    }

    /// Gives the socket just bound at `address` its mode ([`Place::socket_mode`]) without
    /// following a link: whoever can rename files in the directory could have put one at the
    /// name since the bind, and `chmod` of the name would change the mode of what it points to.
    /// So the name is opened `O_PATH | O_NOFOLLOW`, checked to be a socket, and changed through
    /// its descriptor's `/proc/self/fd` entry, which is that very inode.
    fn set_socket_mode(&self, address: &Path) -> io::Result<()> {
        let node = rustix::fs::open(
            address,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&node)?.st_mode);
        if kind != rustix::fs::FileType::Socket {
            return Err(io::Error::other(format!(
                "{} is not the socket just bound there (something replaced it)",
                address.display()
            )));
        }
        let through = format!("/proc/self/fd/{}", node.as_raw_fd());
        std::fs::set_permissions(through, std::fs::Permissions::from_mode(self.socket_mode()))
    }

    fn socket_mode(&self) -> u32 {
        let Ok(meta) = std::fs::metadata(&self.file) else {
            return 0o600;
        };
        let m = meta.mode();
        let mut mode = 0o600;
        if m & 0o020 != 0 {
            mode |= 0o060;
        }
        if m & 0o002 != 0 {
            mode |= 0o006;
        }
        mode
    }

    /// Connects to `generation`'s socket.
    pub fn connect(&self, generation: u64) -> io::Result<UnixStream> {
        UnixStream::connect(self.socket_address(generation))
    }

    /// Removes the sockets dead owners left (before this owner binds its own), and nothing
    /// else: only entries named like an owner's socket of this file that are sockets. The
    /// caller holds the owner lock, so no live owner has one of them.
    pub fn remove_stale_sockets(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if generation_of(&self.name, name).is_none() {
                continue;
            }
            let is_socket = entry.file_type().is_ok_and(|t| {
                use std::os::unix::fs::FileTypeExt;
                t.is_socket()
            });
            if is_socket && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes this owner's own socket, `generation`'s (never another's).
    pub fn remove_socket(&self, generation: u64) {
        let _ = std::fs::remove_file(self.socket_path(generation));
    }
}

/// What is at `path`, described, when something is (never followed): `a symbolic link (to
/// x)`, `a regular file`, …; `None` when the name is free.
fn taken_by(path: &Path) -> io::Result<Option<String>> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        format!("a symbolic link (to {})", target.display())
    } else if kind.is_file() {
        "a regular file".to_owned()
    } else if kind.is_dir() {
        "a directory".to_owned()
    } else if kind.is_fifo() {
        "a named pipe (FIFO)".to_owned()
    } else if kind.is_socket() {
        "a socket that is not a dead owner's".to_owned()
    } else {
        "a device or other special file".to_owned()
    };
    Ok(Some(what))
}

/// The first line of the lock file at `path` (its holder record), read without following a
/// symlink; empty when there is none.
pub(crate) fn first_line(path: &Path) -> String {
    let Ok(fd) = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return String::new();
    };
    let mut buf = [0u8; 512];
    let file = File::from(fd);
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut buf, 0).unwrap_or(0);
    let line = buf[..n].split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line).into_owned()
}

/// The credentials of the process at the other end of `stream`.
pub(crate) fn peer(stream: &UnixStream) -> io::Result<rustix::net::UCred> {
    Ok(rustix::net::sockopt::socket_peercred(stream.as_fd())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_read_back_from_socket_names_of_this_file_only() {
        assert_eq!(generation_of("app.db", "app.db.owner-12.sock"), Some(12));
        assert_eq!(generation_of("app.db", "app.db.owner-x.sock"), None);
        assert_eq!(generation_of("app.db", "other.db.owner-3.sock"), None);
        assert_eq!(generation_of("app.db", "app.db.owner.lock"), None);
    }

    #[test]
    fn a_long_directory_is_reached_through_its_descriptor() {
        let dir = std::env::temp_dir().join(format!("lk-owner-addr-{}", std::process::id()));
        let deep = dir.join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let place = Place::new(&deep.join("app.db")).unwrap();
        let address = place.socket_address(1);
        assert!(address.starts_with("/proc/self/fd/"), "{address:?}");
        let listener = place.listen(1).unwrap();
        assert!(
            place.socket_path(1).exists(),
            "the socket is beside the file"
        );
        let client = std::thread::spawn(move || place.connect(1).map(drop));
        drop(listener.accept().unwrap());
        client.join().unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
