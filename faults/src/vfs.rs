//! The `sqlite3_vfs`: built once around the default VFS found at the first registration,
//! registered under [`VFS_NAME`](crate::VFS_NAME), optionally as the default. `xOpen` wraps the
//! real file (see [`crate::file`]), `xDelete` forgets what was held for the deleted file, and
//! everything else is handed to the real VFS.

use std::ffi::{CStr, OsStr, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::{Mutex, PoisonError};

use rusqlite::ffi;

use crate::Error;
use crate::config::Op;
use crate::file::{FileInfo, HEADER, adopt, real_slot};
use crate::held::file_id;
use crate::state::state;
use std::sync::atomic::AtomicBool;

/// The name, NUL-terminated, for SQLite.
const NAME: &CStr = c"litekeep-faults";

/// Our VFS, once built; it is never freed (SQLite keeps a pointer in its list).
struct Registered {
    vfs: *mut ffi::sqlite3_vfs,
}

// SAFETY: the pointer is to a heap `sqlite3_vfs` that is never freed nor written after it is
// built (SQLite itself links it under its own mutex); sending it between threads is harmless.
unsafe impl Send for Registered {}

static REGISTERED: Mutex<Option<Registered>> = Mutex::new(None);

/// Registers the VFS; as the process's default if `make_default` (a later call without it
/// leaves it where it is).
pub(crate) fn register(make_default: bool) -> Result<(), Error> {
    let mut slot = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    let vfs = match &*slot {
        Some(_) if !make_default => return Ok(()),
        Some(registered) => registered.vfs,
        None => build()?,
    };
    // SAFETY: `vfs` is a complete `sqlite3_vfs` that lives for the rest of the process.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, c_int::from(make_default)) };
    if rc != ffi::SQLITE_OK {
        return Err(Error::Register(format!("sqlite3_vfs_register gave {rc}")));
    }
    *slot = Some(Registered { vfs });
    Ok(())
}

/// Builds our VFS around the current default one.
fn build() -> Result<*mut ffi::sqlite3_vfs, Error> {
    // SAFETY: with a null name `sqlite3_vfs_find` initializes SQLite if needed and returns the
    // default VFS, or null.
    let real = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if real.is_null() {
        return Err(Error::Register("SQLite has no default VFS".to_owned()));
    }
    // SAFETY: a registered VFS stays valid while registered; the default one (unix) for the
    // whole process.
    let r = unsafe { &*real };
    let Ok(size) = c_int::try_from(HEADER) else {
        return Err(Error::Register("file header too large".to_owned()));
    };
    let vfs = ffi::sqlite3_vfs {
        iVersion: r.iVersion.min(3),
        szOsFile: r.szOsFile + size,
        mxPathname: r.mxPathname,
        pNext: ptr::null_mut(),
        zName: NAME.as_ptr(),
        pAppData: real.cast(),
        xOpen: Some(x_open),
        xDelete: Some(x_delete),
        xAccess: Some(x_access),
        xFullPathname: Some(x_full_pathname),
        xDlOpen: r.xDlOpen.and(Some(x_dl_open)),
        xDlError: r.xDlError.and(Some(x_dl_error)),
        xDlSym: r.xDlSym.and(Some(x_dl_sym)),
        xDlClose: r.xDlClose.and(Some(x_dl_close)),
        xRandomness: Some(x_randomness),
        xSleep: Some(x_sleep),
        xCurrentTime: Some(x_current_time),
        xGetLastError: r.xGetLastError.and(Some(x_get_last_error)),
        xCurrentTimeInt64: (r.iVersion >= 2)
            .then_some(r.xCurrentTimeInt64)
            .flatten()
            .and(Some(x_current_time_int64)),
        xSetSystemCall: (r.iVersion >= 3)
            .then_some(r.xSetSystemCall)
            .flatten()
            .and(Some(x_set_system_call)),
        xGetSystemCall: (r.iVersion >= 3)
            .then_some(r.xGetSystemCall)
            .flatten()
            .and(Some(x_get_system_call)),
        xNextSystemCall: (r.iVersion >= 3)
            .then_some(r.xNextSystemCall)
            .flatten()
            .and(Some(x_next_system_call)),
    };
    Ok(Box::into_raw(Box::new(vfs)))
}

/// The wrapped VFS.
///
/// # Safety
///
/// `vfs` must be ours (SQLite passes each VFS its own pointer).
unsafe fn real<'a>(vfs: *mut ffi::sqlite3_vfs) -> (*mut ffi::sqlite3_vfs, &'a ffi::sqlite3_vfs) {
    // SAFETY: our VFS's `pAppData` is the real VFS, which outlives ours.
    unsafe {
        let real = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        (real, &*real)
    }
}

/// Whether a power cut can lose unsynced writes to a file opened with `flags`: databases,
/// journals and WAL files, not temporary files.
fn durable_kind(flags: c_int) -> bool {
    let kinds = ffi::SQLITE_OPEN_MAIN_DB
        | ffi::SQLITE_OPEN_MAIN_JOURNAL
        | ffi::SQLITE_OPEN_WAL
        | ffi::SQLITE_OPEN_SUPER_JOURNAL;
    flags & kinds != 0 && flags & ffi::SQLITE_OPEN_DELETEONCLOSE == 0
}

/// `name` as a path.
///
/// # Safety
///
/// `name` must be null or a NUL-terminated string.
unsafe fn path_of(name: *const c_char) -> Option<PathBuf> {
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes();
    Some(PathBuf::from(OsStr::from_bytes(bytes)))
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: `file` points to `szOsFile` bytes for us to fill; a null method table tells
    // SQLite not to close it if the open fails.
    unsafe { (*file).pMethods = ptr::null() };
    // SAFETY: SQLite's file names are null or NUL-terminated.
    let path = unsafe { path_of(name) };
    if let Err(rc) = state().enter(Op::Open, path.as_deref()) {
        return rc;
    }
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    let Some(open) = r.xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    let real_file = real_slot(file);
    // SAFETY: the real file gets the bytes after our header, `szOsFile - HEADER` of them: the
    // real VFS's `szOsFile`. The other arguments are SQLite's own.
    let rc = unsafe { open(real_vfs, name, real_file, flags, out_flags) };
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // SAFETY: the real file is open; its VFS set its method table (checked below).
    if unsafe { (*real_file).pMethods }.is_null() {
        return ffi::SQLITE_CANTOPEN;
    }
    let durable = durable_kind(flags);
    // The unix VFS syncs the directory at the first sync of a journal or WAL it created.
    let dir_sync = durable
        && flags & ffi::SQLITE_OPEN_CREATE != 0
        && flags
            & (ffi::SQLITE_OPEN_MAIN_JOURNAL
                | ffi::SQLITE_OPEN_WAL
                | ffi::SQLITE_OPEN_SUPER_JOURNAL)
            != 0;
    let id = path.as_deref().filter(|_| durable).and_then(file_id);
    if let Some(path) = path.as_deref().filter(|_| durable) {
        state().held.opened(path, id);
    }
    // SAFETY: `file` is SQLite's allocation of `szOsFile` bytes, the real file in it is open.
    unsafe {
        adopt(
            file,
            FileInfo {
                path,
                id,
                durable,
                dir_sync: AtomicBool::new(dir_sync),
            },
        );
    };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    let Some(delete) = r.xDelete else {
        return ffi::SQLITE_IOERR_DELETE;
    };
    // SAFETY: SQLite's file names are NUL-terminated.
    let path = unsafe { path_of(name) };
    // Without `syncDir` the deletion is held (see `held.rs`): keep what a cut would bring back.
    let contents = {
        let st = state();
        match &path {
            Some(path) if st.holding() && sync_dir == 0 => st.held.durable_contents(path).ok(),
            _ => None,
        }
    };
    // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
    let rc = unsafe { delete(real_vfs, name, sync_dir) };
    if rc == ffi::SQLITE_OK
        && let Some(path) = path
    {
        state().held.deleted(&path, contents);
    }
    rc
}

unsafe extern "C" fn x_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xAccess {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(access) => unsafe { access(real_vfs, name, flags, out) },
        None => ffi::SQLITE_IOERR_ACCESS,
    }
}

unsafe extern "C" fn x_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xFullPathname {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(full) => unsafe { full(real_vfs, name, n_out, out) },
        None => ffi::SQLITE_CANTOPEN_FULLPATH,
    }
}

unsafe extern "C" fn x_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xDlOpen {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(dl_open) => unsafe { dl_open(real_vfs, name) },
        None => ptr::null_mut(),
    }
}

unsafe extern "C" fn x_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    if let Some(dl_error) = r.xDlError {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        unsafe { dl_error(real_vfs, n, out) }
    }
}

type DlSym = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);

unsafe extern "C" fn x_dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    handle: *mut c_void,
    symbol: *const c_char,
) -> Option<DlSym> {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xDlSym {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(dl_sym) => unsafe { dl_sym(real_vfs, handle, symbol) },
        None => None,
    }
}

unsafe extern "C" fn x_dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    if let Some(dl_close) = r.xDlClose {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        unsafe { dl_close(real_vfs, handle) }
    }
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xRandomness {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(randomness) => unsafe { randomness(real_vfs, n, out) },
        None => 0,
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xSleep {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(sleep) => unsafe { sleep(real_vfs, micros) },
        None => 0,
    }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xCurrentTime {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(now) => unsafe { now(real_vfs, out) },
        None => ffi::SQLITE_ERROR,
    }
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xGetLastError {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS.
        Some(last_error) => unsafe { last_error(real_vfs, n, out) },
        None => 0,
    }
}

unsafe extern "C" fn x_current_time_int64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xCurrentTimeInt64 {
        // SAFETY: the arguments are SQLite's own, passed on to the real VFS (of version 2 or
        // more: we only offer this method then).
        Some(now) => unsafe { now(real_vfs, out) },
        None => ffi::SQLITE_ERROR,
    }
}

unsafe extern "C" fn x_set_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    call: ffi::sqlite3_syscall_ptr,
) -> c_int {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xSetSystemCall {
        // SAFETY: the arguments are the caller's own, passed on to the real VFS (of version 3:
        // we only offer this method then).
        Some(set) => unsafe { set(real_vfs, name, call) },
        None => ffi::SQLITE_NOTFOUND,
    }
}

unsafe extern "C" fn x_get_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
) -> ffi::sqlite3_syscall_ptr {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xGetSystemCall {
        // SAFETY: the arguments are the caller's own, passed on to the real VFS (of version 3).
        Some(get) => unsafe { get(real_vfs, name) },
        None => None,
    }
}

unsafe extern "C" fn x_next_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
) -> *const c_char {
    // SAFETY: SQLite passes each VFS its own pointer.
    let (real_vfs, r) = unsafe { real(vfs) };
    match r.xNextSystemCall {
        // SAFETY: the arguments are the caller's own, passed on to the real VFS (of version 3).
        Some(next) => unsafe { next(real_vfs, name) },
        None => ptr::null(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_c_name_is_the_public_name() {
        assert_eq!(super::NAME.to_str(), Ok(crate::VFS_NAME));
    }
}
