//! Which kind of filesystem a lock file lives on. SQLite's WAL mode needs shared memory between
//! the processes that open a database, which network filesystems do not provide, and their
//! advisory locks are often emulated or absent: litekeep reports them instead of trusting them.

use std::fs::File;

/// The kind of filesystem a lock file is on, from `fstatfs(2)`.
///
/// ```
/// # fn main() -> Result<(), litekeep_lock::LockError> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// let lock = litekeep_lock::FileLock::for_database(dir.join("app.db"))?;
/// if let litekeep_lock::Filesystem::Network(name) = lock.filesystem() {
///     eprintln!("warning: {name} filesystem: SQLite WAL is not safe here");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filesystem {
    /// A local filesystem (or one that could not be identified).
    Local,
    /// A network or cluster filesystem, by name ("nfs", "cifs", "fuse", …). FUSE is counted
    /// here because sshfs and most cluster filesystems are FUSE.
    Network(&'static str),
}

impl Filesystem {
    /// Whether it is a network filesystem, where SQLite's WAL mode and advisory locks cannot be
    /// trusted.
    ///
    /// ```
    /// use litekeep_lock::Filesystem;
    /// assert!(Filesystem::Network("nfs").is_network());
    /// assert!(!Filesystem::Local.is_network());
    /// ```
    pub fn is_network(self) -> bool {
        matches!(self, Filesystem::Network(_))
    }

    /// Classifies the filesystem `file` lives on. A failing `fstatfs` counts as local.
    ///
    /// ```
    /// let f = std::fs::File::open(std::env::temp_dir()).unwrap();
    /// println!("{:?}", litekeep_lock::Filesystem::of(&f));
    /// ```
    pub fn of(file: &File) -> Filesystem {
        match rustix::fs::fstatfs(file) {
            // The field's integer type differs between targets; every magic fits in 32 bits.
            #[allow(clippy::unnecessary_cast)]
            Ok(st) => Self::from_magic(st.f_type as u64 & 0xffff_ffff),
            Err(_) => Filesystem::Local,
        }
    }

    /// Classifies a `statfs` `f_type` magic number.
    ///
    /// ```
    /// use litekeep_lock::Filesystem;
    /// assert_eq!(Filesystem::from_magic(0x6969), Filesystem::Network("nfs"));
    /// assert_eq!(Filesystem::from_magic(0xef53), Filesystem::Local); // ext4
    /// ```
    pub fn from_magic(magic: u64) -> Filesystem {
        let name = match magic {
            0x6969 => "nfs",
            0x517b => "smb",
            0xff53_4d42 => "cifs",
            0xfe53_4d42 => "smb2",
            0x00c3_6400 => "ceph",
            0x5346_414f => "afs",
            0x6b41_4653 => "afs",
            0x0102_1997 => "9p",
            0x0bd0_0bd0 => "lustre",
            0x0116_1970 => "gfs2",
            0x7461_636f => "ocfs2",
            0x6573_5546 => "fuse",
            0x0000_564c => "ncp",
            0x7375_7245 => "coda",
            _ => return Filesystem::Local,
        };
        Filesystem::Network(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfs_and_cifs_are_network_ext4_is_not() {
        assert_eq!(Filesystem::from_magic(0x6969), Filesystem::Network("nfs"));
        assert_eq!(
            Filesystem::from_magic(0xff53_4d42),
            Filesystem::Network("cifs")
        );
        assert!(!Filesystem::from_magic(0xef53).is_network());
    }

    #[test]
    fn temp_dir_is_local() {
        let file = File::open(std::env::temp_dir()).unwrap();
        assert_eq!(Filesystem::of(&file), Filesystem::Local);
    }
}
