//! Who may call: a peer whose user could write the file itself.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::net::UCred;

/// Whether the process `cred` could write the file at `path` by its permission bits: root,
/// its owner with the owner's write bit, a member of its group (primary or supplementary, read
/// from `/proc/<pid>/status`) with the group's, anyone with the others'. Access control lists
/// are not read: a peer they alone let write is refused. `Err` says why not, in one line.
pub(crate) fn may_write(path: &Path, cred: &UCred) -> Result<(), String> {
    let uid = cred.uid.as_raw();
    if uid == 0 {
        return Ok(());
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the permissions of {}: {e}", path.display()))?;
    let mode = meta.mode();
    let allowed = if uid == meta.uid() {
        mode & 0o200 != 0
    } else if in_group(cred, meta.gid()) {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    };
    if allowed {
        return Ok(());
    }
    Err(format!(
        "uid {uid} (pid {}) may not write {} (mode {:o}, owner uid {} gid {}), so it may not call its owner either; give that user write permission on the file",
        cred.pid.as_raw_nonzero(),
        path.display(),
        mode & 0o7777,
        meta.uid(),
        meta.gid()
    ))
}

fn in_group(cred: &UCred, gid: u32) -> bool {
    if cred.gid.as_raw() == gid {
        return true;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", cred.pid.as_raw_nonzero()))
        .unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|groups| groups.split_whitespace().any(|g| g.parse() == Ok(gid)))
}
