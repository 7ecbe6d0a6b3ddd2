//! The file wrapper: our `sqlite3_file` header, the real file (the wrapped VFS's) right after
//! it in the same allocation, and the I/O methods that count, fail, hold and pass through.

use std::ffi::{c_int, c_void};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::ffi;

use crate::config::Op;
use crate::held::{FileId, HeldOp};
use crate::state::state;

/// What SQLite allocates `szOsFile` bytes for: this header, then (at [`HEADER`]) the real file.
#[repr(C)]
pub(crate) struct FaultFile {
    /// `pMethods`: one of [`IO_V1`], [`IO_V2`], [`IO_V3`], or null while not open.
    base: ffi::sqlite3_file,
    /// The real file, right after the header.
    real: *mut ffi::sqlite3_file,
    /// Owned; freed by `xClose`.
    info: *mut FileInfo,
}

/// Bytes before the real file: the header, rounded up to keep the real file 8-byte aligned.
pub(crate) const HEADER: usize = size_of::<FaultFile>().next_multiple_of(8);

/// What the wrapper knows of an open file.
#[derive(Debug)]
pub(crate) struct FileInfo {
    /// The name SQLite opened it under (`None` for some temporary files).
    pub(crate) path: Option<PathBuf>,
    /// Its identity when opened.
    pub(crate) id: Option<FileId>,
    /// Whether a power cut can lose its unsynced writes: databases, journals, WAL files, not
    /// temporary files.
    pub(crate) durable: bool,
    /// A journal or WAL file SQLite created: its first sync also syncs its directory.
    pub(crate) dir_sync: AtomicBool,
}

impl FileInfo {
    /// The name its writes are held under, if they are held now.
    fn held_as(&self, holding: bool) -> Option<(&Path, Option<FileId>)> {
        match &self.path {
            Some(path) if holding && self.durable => Some((path, self.id)),
            _ => None,
        }
    }
}

/// Fills in the header of `file` once the real file at [`HEADER`] is open.
///
/// # Safety
///
/// `file` must point to `szOsFile` writable bytes SQLite gave our `xOpen`, and the real file in
/// them must be open, with a non-null method table.
pub(crate) unsafe fn adopt(file: *mut ffi::sqlite3_file, info: FileInfo) {
    let this = file.cast::<FaultFile>();
    let real = real_slot(file);
    // SAFETY: the real file is open (caller's contract), so its method table is valid.
    let version = unsafe { (*(*real).pMethods).iVersion };
    let methods: &'static ffi::sqlite3_io_methods = match version {
        ..=1 => &IO_V1,
        2 => &IO_V2,
        _ => &IO_V3,
    };
    // SAFETY: `this` points to our header inside the caller's allocation, which is ours to
    // write and aligned for it (SQLite allocates files 8-byte aligned).
    unsafe {
        this.write(FaultFile {
            base: ffi::sqlite3_file { pMethods: methods },
            real,
            info: Box::into_raw(Box::new(info)),
        });
    }
}

/// Where the real file lives inside `file`'s allocation.
pub(crate) fn real_slot(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>().wrapping_add(HEADER).cast()
}

/// The real file and its method table.
///
/// # Safety
///
/// `file` must be a file our `xOpen` opened and that is not closed yet: SQLite only calls the
/// methods of [`IO_V3`] and its siblings on those.
unsafe fn real<'a>(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'a ffi::sqlite3_io_methods) {
    // SAFETY: per the contract `file` is our open header, whose `real` is the open real file
    // with a valid method table that outlives the call.
    unsafe {
        let real = (*file.cast::<FaultFile>()).real;
        (real, &*(*real).pMethods)
    }
}

/// The name writes to `file` are held under.
///
/// # Safety
///
/// As for [`real`].
unsafe fn info<'a>(file: *mut ffi::sqlite3_file) -> &'a FileInfo {
    // SAFETY: per the contract `info` came from `Box::into_raw` in `adopt` and is freed only by
    // `xClose`, after which SQLite calls nothing on the file.
    unsafe { &*(*file.cast::<FaultFile>()).info }
}

/// The real file's size.
///
/// # Safety
///
/// `real` must be an open real file and `methods` its table.
unsafe fn size_of_real(
    real: *mut ffi::sqlite3_file,
    methods: &ffi::sqlite3_io_methods,
) -> Result<u64, c_int> {
    let Some(file_size) = methods.xFileSize else {
        return Err(ffi::SQLITE_IOERR_FSTAT);
    };
    let mut size: i64 = 0;
    // SAFETY: `real` is open (caller's contract) and `size` is a valid out-pointer.
    match unsafe { file_size(real, &mut size) } {
        ffi::SQLITE_OK => Ok(size.max(0) as u64),
        rc => Err(rc),
    }
}

/// Reads the `len` bytes at `offset` of the real file (all of which exist).
///
/// # Safety
///
/// As for [`size_of_real`].
unsafe fn read_real(
    real: *mut ffi::sqlite3_file,
    methods: &ffi::sqlite3_io_methods,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, c_int> {
    let mut buf = vec![0u8; len as usize];
    if len == 0 {
        return Ok(buf);
    }
    let Some(read) = methods.xRead else {
        return Err(ffi::SQLITE_IOERR_READ);
    };
    let Ok(amount) = c_int::try_from(len) else {
        return Err(ffi::SQLITE_IOERR_NOMEM);
    };
    // SAFETY: `real` is open and `buf` has `len` writable bytes.
    match unsafe { read(real, buf.as_mut_ptr().cast(), amount, offset as i64) } {
        ffi::SQLITE_OK | ffi::SQLITE_IOERR_SHORT_READ => Ok(buf),
        rc => Err(rc),
    }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls xClose once, on a file our xOpen opened.
    let (real, methods) = unsafe { real(file) };
    let rc = match methods.xClose {
        // SAFETY: `real` is the open real file; this is its one close.
        Some(close) => unsafe { close(real) },
        None => ffi::SQLITE_OK,
    };
    let this = file.cast::<FaultFile>();
    // SAFETY: `this` is our header; `info` came from `Box::into_raw` in `adopt`, and is freed
    // here only, once (the pointer is nulled after).
    unsafe {
        if !(*this).info.is_null() {
            drop(Box::from_raw((*this).info));
            (*this).info = ptr::null_mut();
        }
    }
    rc
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls xRead on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    // SAFETY: as above.
    let info = unsafe { info(file) };
    if let Err(rc) = state().enter(Op::Read, info.path.as_deref()) {
        return rc;
    }
    match methods.xRead {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(read) => unsafe { read(real, buf, amount, offset) },
        None => ffi::SQLITE_IOERR_READ,
    }
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls xWrite on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    // SAFETY: as above.
    let info = unsafe { info(file) };
    let Some(write) = methods.xWrite else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut st = state();
    if let Err(rc) = st.enter(Op::Write, info.path.as_deref()) {
        return rc;
    }
    // SAFETY: `real` is open.
    let size = match unsafe { size_of_real(real, methods) } {
        Ok(size) => size,
        Err(rc) => return rc,
    };
    let (start, len) = (offset.max(0) as u64, amount.max(0) as u64);
    let growth = (start + len).saturating_sub(size);
    if let Err(rc) = st.check_budget(growth) {
        return rc;
    }
    let held_as = info.held_as(st.holding());
    let Some((path, id)) = held_as else {
        drop(st);
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        let rc = unsafe { write(real, buf, amount, offset) };
        if rc == ffi::SQLITE_OK {
            state().counters.growth += growth;
        }
        return rc;
    };
    // Held: the write goes through, logged with the bytes it overwrites, all under the state
    // lock so that a cut in another thread never sees half of it.
    let existing = size.saturating_sub(start).min(len);
    // SAFETY: `real` is open.
    let before = match unsafe { read_real(real, methods, start, existing) } {
        Ok(before) => before,
        Err(rc) => return rc,
    };
    // SAFETY: the arguments are SQLite's own, passed on to the real file.
    let rc = unsafe { write(real, buf, amount, offset) };
    if rc == ffi::SQLITE_OK {
        st.counters.growth += growth;
        // SAFETY: SQLite hands xWrite `amount` readable bytes at `buf`.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
        let op = HeldOp::Write {
            offset: start,
            data: data.to_vec(),
            before,
            size_before: size,
        };
        st.held.record(path, id, op);
    }
    rc
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    // SAFETY: SQLite calls xTruncate on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    // SAFETY: as above.
    let info = unsafe { info(file) };
    let Some(truncate) = methods.xTruncate else {
        return ffi::SQLITE_IOERR_TRUNCATE;
    };
    let mut st = state();
    if let Err(rc) = st.enter(Op::Truncate, info.path.as_deref()) {
        return rc;
    }
    let held_as = info.held_as(st.holding());
    let Some((path, id)) = held_as else {
        drop(st);
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        return unsafe { truncate(real, size) };
    };
    // SAFETY: `real` is open.
    let size_before = match unsafe { size_of_real(real, methods) } {
        Ok(s) => s,
        Err(rc) => return rc,
    };
    let new_size = size.max(0) as u64;
    let cut_off = size_before.saturating_sub(new_size);
    // SAFETY: `real` is open.
    let removed = match unsafe { read_real(real, methods, new_size, cut_off) } {
        Ok(removed) => removed,
        Err(rc) => return rc,
    };
    // SAFETY: the arguments are SQLite's own, passed on to the real file.
    let rc = unsafe { truncate(real, size) };
    if rc == ffi::SQLITE_OK {
        let op = HeldOp::Truncate {
            size: new_size,
            removed,
            size_before,
        };
        st.held.record(path, id, op);
    }
    rc
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: SQLite calls xSync on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    // SAFETY: as above.
    let info = unsafe { info(file) };
    let Some(sync) = methods.xSync else {
        return ffi::SQLITE_IOERR_FSYNC;
    };
    let mut st = state();
    if let Err(rc) = st.enter(Op::Sync, info.path.as_deref()) {
        return rc;
    }
    let held_as = info.held_as(st.holding());
    let Some((path, _)) = held_as else {
        drop(st);
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        return unsafe { sync(real, flags) };
    };
    // Under the lock: a write from another thread between the sync and forgetting the log
    // would otherwise be forgotten too.
    // SAFETY: the arguments are SQLite's own, passed on to the real file.
    let rc = unsafe { sync(real, flags) };
    if rc == ffi::SQLITE_OK {
        st.held.synced(path);
        if info.dir_sync.swap(false, Ordering::SeqCst) {
            st.held.dir_synced(path.parent().unwrap_or(Path::new(".")));
        }
    }
    rc
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls xFileSize on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    match methods.xFileSize {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(file_size) => unsafe { file_size(real, out) },
        None => ffi::SQLITE_IOERR_FSTAT,
    }
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: SQLite calls xLock on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    // SAFETY: as above.
    let info = unsafe { info(file) };
    if let Err(rc) = state().enter(Op::Lock, info.path.as_deref()) {
        return rc;
    }
    match methods.xLock {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(lock) => unsafe { lock(real, level) },
        None => ffi::SQLITE_IOERR_LOCK,
    }
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: SQLite calls xUnlock on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    match methods.xUnlock {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(unlock) => unsafe { unlock(real, level) },
        None => ffi::SQLITE_IOERR_UNLOCK,
    }
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: SQLite calls xCheckReservedLock on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    match methods.xCheckReservedLock {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(check) => unsafe { check(real, out) },
        None => ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
    }
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls xFileControl on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    match methods.xFileControl {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(control) => unsafe { control(real, op, arg) },
        None => ffi::SQLITE_NOTFOUND,
    }
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls xSectorSize on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    match methods.xSectorSize {
        // SAFETY: the argument is SQLite's own, passed on to the real file.
        Some(sector_size) => unsafe { sector_size(real) },
        None => 4096,
    }
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls xDeviceCharacteristics on an open file of ours.
    let (real, methods) = unsafe { real(file) };
    match methods.xDeviceCharacteristics {
        // SAFETY: the argument is SQLite's own, passed on to the real file.
        Some(characteristics) => unsafe { characteristics(real) },
        None => 0,
    }
}

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls xShmMap on an open file of ours (of version 2 or more, so the real
    // file's table has the field).
    let (real, methods) = unsafe { real(file) };
    match methods.xShmMap {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(map) => unsafe { map(real, page, page_size, extend, out) },
        None => ffi::SQLITE_IOERR_SHMMAP,
    }
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: SQLite calls xShmLock on an open file of ours, of version 2 or more.
    let (real, methods) = unsafe { real(file) };
    match methods.xShmLock {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(lock) => unsafe { lock(real, offset, n, flags) },
        None => ffi::SQLITE_IOERR_SHMLOCK,
    }
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls xShmBarrier on an open file of ours, of version 2 or more.
    let (real, methods) = unsafe { real(file) };
    if let Some(barrier) = methods.xShmBarrier {
        // SAFETY: the argument is SQLite's own, passed on to the real file.
        unsafe { barrier(real) }
    }
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: SQLite calls xShmUnmap on an open file of ours, of version 2 or more.
    let (real, methods) = unsafe { real(file) };
    match methods.xShmUnmap {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(unmap) => unsafe { unmap(real, delete) },
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn x_fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls xFetch on an open file of ours, of version 3.
    let (real, methods) = unsafe { real(file) };
    match methods.xFetch {
        // SAFETY: the arguments are SQLite's own, passed on to the real file. Writes reach the
        // real file at once (held writes are write-through), so a mapping shows them.
        Some(fetch) => unsafe { fetch(real, offset, amount, out) },
        None => {
            // SAFETY: `out` is SQLite's out-pointer; null means "use xRead".
            unsafe { *out = ptr::null_mut() };
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn x_unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls xUnfetch on an open file of ours, of version 3.
    let (real, methods) = unsafe { real(file) };
    match methods.xUnfetch {
        // SAFETY: the arguments are SQLite's own, passed on to the real file.
        Some(unfetch) => unsafe { unfetch(real, offset, page) },
        None => ffi::SQLITE_OK,
    }
}

const fn io_methods(version: c_int) -> ffi::sqlite3_io_methods {
    ffi::sqlite3_io_methods {
        iVersion: version,
        xClose: Some(x_close),
        xRead: Some(x_read),
        xWrite: Some(x_write),
        xTruncate: Some(x_truncate),
        xSync: Some(x_sync),
        xFileSize: Some(x_file_size),
        xLock: Some(x_lock),
        xUnlock: Some(x_unlock),
        xCheckReservedLock: Some(x_check_reserved_lock),
        xFileControl: Some(x_file_control),
        xSectorSize: Some(x_sector_size),
        xDeviceCharacteristics: Some(x_device_characteristics),
        xShmMap: if version >= 2 { Some(x_shm_map) } else { None },
        xShmLock: if version >= 2 { Some(x_shm_lock) } else { None },
        xShmBarrier: if version >= 2 {
            Some(x_shm_barrier)
        } else {
            None
        },
        xShmUnmap: if version >= 2 {
            Some(x_shm_unmap)
        } else {
            None
        },
        xFetch: if version >= 3 { Some(x_fetch) } else { None },
        xUnfetch: if version >= 3 { Some(x_unfetch) } else { None },
    }
}

/// For real files of version 1: no shared memory (no WAL), no mmap.
pub(crate) static IO_V1: ffi::sqlite3_io_methods = io_methods(1);
/// For real files of version 2: shared memory, no mmap.
pub(crate) static IO_V2: ffi::sqlite3_io_methods = io_methods(2);
/// For real files of version 3 (the unix VFS's): shared memory and mmap.
pub(crate) static IO_V3: ffi::sqlite3_io_methods = io_methods(3);
