//! A real full disk for tests: [`Tmpfs`], a size-limited tmpfs mounted for one test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size mounted at a directory of its own, unmounted (and the directory
/// removed) when dropped. Files written there meet a real `ENOSPC` once it fills, and `statvfs`
/// reports its real free space: what the fault VFS's byte budget cannot show.
///
/// Mounting needs root (`CAP_SYS_ADMIN`) and a kernel that lets this process mount; where it
/// cannot, [`Tmpfs::mount`] says why and the test skips with that message.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` at `dir`, created if missing.
    ///
    /// # Errors
    /// Why it could not be mounted (not root, no permission, no `mount(8)`), for the test to
    /// print as it skips.
    pub fn mount(dir: &Path, bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0777"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount(8): {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(dir);
            return Err(format!(
                "mount -t tmpfs at {} is not permitted here ({}): {}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The bytes still free on it, as `statvfs` reports them to an unprivileged writer.
    ///
    /// # Panics
    /// When `statvfs` fails on a mounted tmpfs.
    pub fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
            .unwrap_or_else(|e| panic!("path {}: {e}", self.dir.display()));
        // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stat` is a
        // plain C struct statvfs fills in; a zeroed one is a valid value to pass.
        let (rc, stat) = unsafe {
            let mut stat: libc::statvfs = std::mem::zeroed();
            (libc::statvfs(path.as_ptr(), &mut stat), stat)
        };
        assert_eq!(rc, 0, "statvfs {}", self.dir.display());
        stat.f_bavail.saturating_mul(stat.f_frsize)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a child still holding a file open must not keep the mount (or fail the test).
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tmpfs_fills_up_at_its_size() {
        let scratch = crate::harness::Scratch::new("tmpfs-unit");
        let fs = match Tmpfs::mount(&scratch.join("fs"), 256 << 10) {
            Ok(fs) => fs,
            Err(why) => {
                eprintln!("SKIPPED a_tmpfs_fills_up_at_its_size: {why}");
                return;
            }
        };
        let before = fs.free();
        assert!(before <= 256 << 10 && before > 128 << 10, "{before}");
        let err = std::fs::write(fs.path().join("big"), vec![7u8; 512 << 10]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert!(fs.free() < 8 << 10, "{}", fs.free());
    }
}
