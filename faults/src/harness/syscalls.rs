//! I/O errors below any VFS: [`fail_syscalls`] makes chosen system calls of the calling process
//! fail with an error (a seccomp filter), for a child process that must meet an `EIO` from a
//! call no SQLite VFS sees (a lock file's `fallocate`, `pwrite`, `pread`; DuckDB's `fsync`);
//! [`fail_syscalls_in_every_thread`] does it at once in every thread of a process that runs
//! already.

/// The system calls [`fail_syscalls`] knows, by name.
const KNOWN: [&str; 5] = ["fallocate", "pwrite64", "pread64", "fsync", "fdatasync"];

/// The number of the system call `name` (one of `KNOWN`) on this target.
fn number(name: &str) -> Option<u32> {
    let nr = match name {
        "fallocate" => libc::SYS_fallocate,
        "pwrite64" => libc::SYS_pwrite64,
        "pread64" => libc::SYS_pread64,
        "fsync" => libc::SYS_fsync,
        "fdatasync" => libc::SYS_fdatasync,
        _ => return None,
    };
    u32::try_from(nr).ok()
}

/// The `AUDIT_ARCH_*` value of this target, which the filter checks before it trusts a number.
fn audit_arch() -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        Some(0xc000_003e)
    } else if cfg!(target_arch = "aarch64") {
        Some(0xc000_00b7)
    } else {
        None
    }
}

/// From now on, every call of the system calls `names` (`fallocate`, `pwrite64`, `pread64`,
/// `fsync`, `fdatasync`) by this process's calling thread, and by the threads it starts later,
/// fails with `errno`; nothing else changes. For it to cover every thread, call it before
/// starting any (first thing in a child role). It cannot be undone.
///
/// # Errors
/// An unknown name, a target without a known `AUDIT_ARCH`, or a kernel that refused the
/// filter (no seccomp): say why, for the test to skip or fail with.
pub fn fail_syscalls(names: &[&str], errno: i32) -> Result<(), String> {
    install(names, errno, false)
}

/// [`fail_syscalls`] in every thread of this process at once, those running included
/// (`SECCOMP_FILTER_FLAG_TSYNC`): for a fault that must come in the middle of a run, say after
/// a server's first commits.
///
/// # Errors
/// As [`fail_syscalls`]; also when a thread of the process cannot take the filter.
pub fn fail_syscalls_in_every_thread(names: &[&str], errno: i32) -> Result<(), String> {
    install(names, errno, true)
}

fn install(names: &[&str], errno: i32, every_thread: bool) -> Result<(), String> {
    let arch = audit_arch().ok_or("no AUDIT_ARCH known for this target")?;
    let numbers = names
        .iter()
        .map(|n| number(n).ok_or_else(|| format!("unknown system call {n:?} (known: {KNOWN:?})")))
        .collect::<Result<Vec<u32>, String>>()?;
    let n = u8::try_from(numbers.len()).map_err(|_| "too many system calls")?;
    let stmt = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: u16::try_from(code).unwrap_or(0),
        jt,
        jf,
        k,
    };
    let (load, jeq, ret) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    // struct seccomp_data: the call's number at offset 0, the architecture at 4.
    let mut filter = vec![
        stmt(load, 4, 0, 0),
        stmt(jeq, arch, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW, 0, 0),
        stmt(load, 0, 0, 0),
    ];
    // The i-th comparison jumps over the ones after it and the ALLOW, to the ERRNO.
    for (i, &nr) in (0u8..).zip(&numbers) {
        filter.push(stmt(jeq, nr, n - i, 0));
    }
    filter.push(stmt(ret, libc::SECCOMP_RET_ALLOW, 0, 0));
    let errno = u32::try_from(errno).map_err(|_| "a negative errno")?;
    filter.push(stmt(ret, libc::SECCOMP_RET_ERRNO | (errno & 0xffff), 0, 0));
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(|_| "filter too long")?,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prctl(2) with integer arguments has no memory-safety preconditions.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        ));
    }
    if every_thread {
        // SAFETY: seccomp(2) with SECCOMP_SET_MODE_FILTER reads `prog`, which points to
        // `filter`, a valid BPF program of `prog.len` instructions that outlives the call (the
        // kernel copies it).
        let set = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &raw const prog,
            )
        };
        if set != 0 {
            // With TSYNC a positive result names a thread that could not take the filter.
            let why = if set > 0 {
                format!("thread {set} could not take the filter")
            } else {
                std::io::Error::last_os_error().to_string()
            };
            return Err(format!("seccomp(SET_MODE_FILTER, TSYNC): {why}"));
        }
        return Ok(());
    }
    // SAFETY: `prog` points to `filter`, a valid BPF program of `prog.len` instructions that
    // outlives the call (the kernel copies it).
    let set = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &raw const prog,
        )
    };
    if set != 0 {
        return Err(format!(
            "PR_SET_SECCOMP: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
