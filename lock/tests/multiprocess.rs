//! Cross-process behaviour with real processes: no threads pretending to be processes.
//!
//! # How the child processes work
//! They are `litekeep_faults::harness` children: this very test binary re-executed with a role
//! (hold the lock exclusive, hold it shared, try to re-enter it). [`child_process_entry`] is
//! therefore not a real test: in an ordinary `cargo test` run it has no role and returns at
//! once, passing trivially.
//!
//! A child says `LOCKED` on a marked stdout line once it holds the lock, and holds it until its
//! stdin reaches end of file (the parent closes it) or until it is killed. Other processes are
//! util-linux `flock(1)` ([`Child::program`], in a process group of its own), run with `-o` so
//! that only the `flock` process itself holds the lock, announcing through the same kind of
//! line that it holds it.
//!
//! No fixed sleep is used to synchronize: the parent waits for a child's line (bounded by
//! [`BOUND`], far beyond anything a loaded machine needs), or for its exit.
// The loom build (`--cfg loom`) has no `litekeep-faults`.
#![cfg(not(loom))]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use litekeep_faults::harness::{self, BOUND, Child, MARK, Scratch, Tmpfs};
use litekeep_lock::{FileLock, Holder, LockError, LockGuard, Mode, Wait};

/// The lock file a child works on.
const PATH_VAR: &str = "LK_LOCK_PATH";
/// The label a child gives its lock (optional).
const LABEL_VAR: &str = "LK_LABEL";
/// How long a child keeps the lock after its stdin closes, in milliseconds (optional).
const LINGER_VAR: &str = "LK_LINGER_MS";
/// System calls that fail with `EIO` in a child, comma-separated (optional; see
/// `harness::fail_syscalls`).
const FAIL_VAR: &str = "LK_FAIL_SYSCALLS";

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes the tests below spawn (see the
/// module docs). Without a role it returns at once and passes.
#[test]
fn child_process_entry() {
    if let Some(role) = harness::role() {
        child::run(&role);
    }
}

mod child {
    use super::*;

    pub fn run(role: &str) {
        if let Ok(calls) = std::env::var(FAIL_VAR) {
            let calls: Vec<&str> = calls.split(',').collect();
            harness::fail_syscalls(&calls, libc::EIO).unwrap_or_else(|e| panic!("{e}"));
        }
        match role {
            "try-exclusive" => try_exclusive(),
            "hold-exclusive" => hold(Mode::Exclusive),
            "hold-shared" => hold(Mode::Shared),
            "reenter" => reenter(),
            "churn" => churn(),
            "busy-queue" => busy_queue(),
            "wait-exclusive" => wait_exclusive(),
            "queue-once" => queue_once(),
            other => panic!("unknown child role {other:?}"),
        }
    }

    fn lock() -> FileLock {
        let lock =
            FileLock::open(harness::env_path(PATH_VAR)).expect("child cannot open the lock file");
        match std::env::var(LABEL_VAR) {
            Ok(label) => lock.with_label(label),
            Err(_) => lock,
        }
    }

    /// Takes the lock without waiting (the tests spawn a holder only when it must get the lock
    /// at once), says LOCKED, holds it until stdin closes (and `LK_LINGER_MS` more), releases.
    fn hold(mode: Mode) {
        let lock = lock();
        let guard = lock
            .acquire(mode, Wait::None)
            .unwrap_or_else(|e| panic!("child {} could not take it: {e}", std::process::id()));
        harness::say("LOCKED");
        harness::until_stdin_closes();
        if let Ok(ms) = std::env::var(LINGER_VAR) {
            thread::sleep(Duration::from_millis(ms.parse().unwrap()));
        }
        guard.release().unwrap();
        harness::say("RELEASED");
    }

    /// Takes and releases flock locks on 200 other files in the lock file's directory, over
    /// and over, until stdin closes: `/proc/locks` grows and shrinks by pages in front of the
    /// holders' older entries.
    fn churn() {
        let dir = harness::env_path(PATH_VAR).with_file_name("churn");
        fs::create_dir_all(&dir).unwrap();
        let files: Vec<fs::File> = (0..200)
            .map(|i| {
                fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(format!("{i}.lock")))
                    .unwrap()
            })
            .collect();
        let stop = harness::stop_on_stdin_close();
        harness::say("CHURNING");
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            for op in [
                rustix::fs::FlockOperation::LockExclusive,
                rustix::fs::FlockOperation::Unlock,
            ] {
                for f in &files {
                    rustix::fs::flock(f, op).unwrap();
                }
            }
        }
    }

    /// Takes the lock exclusive with a timeout (so it queues on the bell), holds it ~100 µs,
    /// lets go, over and over until stdin closes.
    fn busy_queue() {
        let lock = lock();
        let stop = harness::stop_on_stdin_close();
        harness::say("BUSY");
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let guard = lock
                .exclusive(Wait::Timeout(Duration::from_secs(30)))
                .unwrap();
            let until = std::time::Instant::now() + Duration::from_micros(100);
            while std::time::Instant::now() < until {}
            drop(guard);
        }
    }

    /// Tries the lock exclusive for 200 ms: says `GOT`, or `HOLDER <pid> <label>` (`-` for no
    /// label) when it timed out.
    fn try_exclusive() {
        match lock().exclusive(Wait::Timeout(Duration::from_millis(200))) {
            Ok(_) => harness::say("GOT"),
            Err(e) => {
                let h = e.holder().unwrap_or_else(|| panic!("no holder named: {e}"));
                harness::say(format!(
                    "HOLDER {} {}",
                    h.pid,
                    h.label.as_deref().unwrap_or("-")
                ));
            }
        }
    }

    /// Says WAITING, then waits for the lock exclusive (a minute at most): the parent kills it
    /// while it waits.
    fn wait_exclusive() {
        let lock = lock();
        harness::say("WAITING");
        let _ = lock.exclusive(Wait::Timeout(Duration::from_secs(60)));
    }

    /// Says READY; when its stdin closes, waits for the lock exclusive (a minute at most), says
    /// `GOT <CLOCK_MONOTONIC ns>` the moment it has it, holds it 5 ms (longer than the bell's
    /// 2 ms of patience), lets go.
    fn queue_once() {
        let lock = lock();
        harness::say("READY");
        harness::until_stdin_closes();
        let guard = lock
            .exclusive(Wait::Timeout(Duration::from_secs(60)))
            .unwrap();
        harness::say(format!("GOT {}", monotonic_ns()));
        thread::sleep(Duration::from_millis(5));
        drop(guard);
    }

    /// Holds the lock exclusive and asks for it again, without re-entry, through the same handle
    /// and through a second handle on the same file: both must be refused with WouldDeadlock
    /// (with Wait::Forever, a wrong answer hangs and the parent's bound fails the test).
    fn reenter() {
        let lock = lock();
        let _guard = lock.exclusive(Wait::None).unwrap();
        let second_handle = FileLock::open(lock.path()).unwrap();
        let attempts = [
            ("exclusive, same handle", lock.exclusive(Wait::Forever)),
            ("shared, same handle", lock.shared(Wait::Forever)),
            (
                "exclusive, second handle",
                second_handle.exclusive(Wait::Forever),
            ),
        ];
        for (what, result) in attempts {
            match result {
                Err(LockError::WouldDeadlock {
                    held: Mode::Exclusive,
                    ..
                }) => {}
                other => panic!("re-entry ({what}) was not refused as a deadlock: {other:?}"),
            }
        }
        harness::say("REENTRY_REFUSED");
        harness::until_stdin_closes();
    }
}

// ---------------------------------------------------------------------------------------------
// The parent side: helpers.

/// A fresh directory for one test and the lock file in it; the directory goes when the test
/// ends (and stays, for a look, when it fails).
fn lock_path(test: &str) -> (Scratch, PathBuf) {
    let dir = Scratch::new(&format!("lock-mp-{test}"));
    let path = dir.join("app.db.lock");
    (dir, path)
}

/// This test binary, re-executed as a child in `role` on `lock_path`.
fn spawn_child(role: &str, lock_path: &Path, env: &[(&str, &str)]) -> Child {
    env.iter()
        .fold(Child::build(role).env(PATH_VAR, lock_path), |s, (k, v)| {
            s.env(k, v)
        })
        .spawn()
}

/// A child holding the lock exclusive or shared, once it says so.
fn holder(mode: Mode, lock_path: &Path, env: &[(&str, &str)]) -> Child {
    let role = match mode {
        Mode::Exclusive => "hold-exclusive",
        Mode::Shared => "hold-shared",
    };
    let child = spawn_child(role, lock_path, env);
    expect(&child, "LOCKED");
    child
}

/// util-linux `flock(1)` holding the lock exclusive, once it says so. `-o`: the command it
/// runs does not inherit the lock, so the lock is gone as soon as `flock` itself is.
fn flock_holder(lock_path: &Path) -> Child {
    let say_locked = format!("echo '{MARK}LOCKED' && exec sleep 60");
    let args = [
        "-o".as_ref(),
        lock_path.as_os_str(),
        "sh".as_ref(),
        "-c".as_ref(),
        say_locked.as_ref(),
    ];
    let flock = Child::program("flock(1)", flock_bin(), args).spawn();
    expect(&flock, "LOCKED");
    flock
}

/// Waits (bounded) for the process to say exactly `msg`.
fn expect(child: &Child, msg: &str) {
    let got = child.line();
    assert_eq!(
        got,
        msg,
        "{} (pid {}) said something else",
        child.role(),
        child.pid()
    );
}

/// Closes its stdin and checks that it releases, says so and exits successfully.
fn finish(mut child: Child) {
    child.close_stdin();
    expect(&child, "RELEASED");
    child.wait().assert_success();
}

/// util-linux `flock(1)`, which some tests need: fail loudly rather than skip when it is missing.
fn flock_bin() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("flock"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "this test needs util-linux flock(1) on PATH (e.g. /usr/bin/flock): install util-linux"
        )
    })
}

/// `flock(1)` with `args` and `true` as the command on `lock_path`: its exit code.
fn flock_try(args: &[&str], lock_path: &Path) -> i32 {
    let status = Command::new(flock_bin())
        .args(args)
        .arg(lock_path)
        .arg("true")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    status
        .code()
        .unwrap_or_else(|| panic!("flock killed: {status}"))
}

/// The holder named by a busy error, which must be one.
fn named_holder(err: &LockError) -> &Holder {
    assert!(err.is_transient(), "not a busy error: {err}");
    err.holder()
        .unwrap_or_else(|| panic!("the error names no holder: {err}"))
}

fn expect_would_block(result: Result<LockGuard, LockError>, wanted: Mode) -> LockError {
    match result {
        Err(e @ LockError::WouldBlock { wanted: w, .. }) if w == wanted => e,
        other => panic!("expected WouldBlock for {wanted}, got {other:?}"),
    }
}

/// A `queue-once` child (with `env`) waits for the lock while `holder` has it; the holder
/// lets go, and the waiter gets it.
fn hand_over_to_a_waiter(holder: Child, lock_path: &Path, env: &[(&str, &str)]) {
    let mut waiter = spawn_child("queue-once", lock_path, env);
    expect(&waiter, "READY");
    waiter.close_stdin();
    finish(holder);
    let got = waiter.expect_line("GOT ");
    assert!(got.len() > "GOT ".len(), "{got}");
    waiter.wait().assert_success();
}

fn expect_timeout(result: Result<LockGuard, LockError>) -> LockError {
    match result {
        Err(e @ LockError::Timeout { .. }) => e,
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// SIGKILLs `children` all at once (none waits for another to die); reap them with
/// [`Child::kill`].
fn sigkill_all<'a>(children: impl IntoIterator<Item = &'a Child>) {
    for child in children {
        let pid = libc::pid_t::try_from(child.pid()).unwrap();
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is this process's child,
        // not yet reaped (the caller reaps it), so it names no other process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// CLOCK_MONOTONIC in nanoseconds, comparable across processes.
fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec * 1_000_000_000 + now.tv_nsec) as u64
}

/// Takes and releases `lock` in a loop, each hold ~100 µs, for at most 5 s, until the bell of
/// `path` counts no waiter; gives how many times it took the lock.
fn take_until_no_waiter_is_counted(lock: &FileLock, path: &Path) -> u32 {
    let until = Instant::now() + Duration::from_secs(5);
    let mut takes = 0u32;
    while bell_waiters(path) != 0 && Instant::now() < until {
        let g = lock
            .exclusive(Wait::Timeout(Duration::from_secs(10)))
            .unwrap();
        let held = Instant::now() + Duration::from_micros(100);
        while Instant::now() < held {}
        drop(g);
        takes += 1;
    }
    takes
}

fn first_line(path: &Path) -> String {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.lines().next().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn exclusive_excludes_another_process() {
    let (_dir, path) = lock_path("excludes");
    let child = holder(Mode::Exclusive, &path, &[(LABEL_VAR, "holder one")]);
    let lock = FileLock::open(&path).unwrap();

    let err = expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);
    let h = named_holder(&err);
    assert_eq!(h.pid, child.pid(), "{err}");
    assert_eq!(h.mode, Mode::Exclusive);
    assert_eq!(h.label.as_deref(), Some("holder one"));
    assert!(h.host.is_some(), "the child wrote a record: {h:?}");
    assert!(!h.this_process && h.verified, "{h:?}");
    match &err {
        LockError::WouldBlock { path: p, .. } => assert_eq!(p, &path),
        _ => unreachable!(),
    }
    // Shared is excluded by an exclusive holder too.
    let err = expect_would_block(lock.shared(Wait::None), Mode::Shared);
    assert_eq!(named_holder(&err).pid, child.pid());

    finish(child);
    let guard = lock
        .exclusive(Wait::None)
        .expect("the child has exited: the lock must be free");
    assert_eq!(guard.mode(), Mode::Exclusive);
}

#[test]
fn timeout_fires_within_bound_and_names_the_holder() {
    let (_dir, path) = lock_path("timeout");
    let child = holder(Mode::Exclusive, &path, &[(LABEL_VAR, "litekeep migrate")]);
    let lock = FileLock::open(&path).unwrap();

    let timeout = Duration::from_millis(300);
    let err = expect_timeout(lock.exclusive(Wait::Timeout(timeout)));
    let LockError::Timeout {
        path: p,
        wanted,
        waited,
        holder,
    } = &err
    else {
        unreachable!()
    };
    assert_eq!(p, &path);
    assert_eq!(*wanted, Mode::Exclusive);
    assert!(*waited >= timeout, "gave up early, after {waited:?}");
    assert!(
        *waited < timeout + Duration::from_secs(2),
        "gave up late, after {waited:?}"
    );
    let h = holder.as_deref().expect("the timeout names no holder");
    assert_eq!(h.pid, child.pid());
    assert_eq!(h.label.as_deref(), Some("litekeep migrate"));
    assert!(!h.this_process);
    let msg = err.to_string();
    let expected = format!("held by pid {} (litekeep migrate)", child.pid());
    assert!(msg.contains(&expected), "{msg:?} lacks {expected:?}");
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg:?} lacks the path"
    );

    finish(child);
}

#[test]
fn sigkill_of_the_holder_frees_the_lock_at_once() {
    let (_dir, path) = lock_path("sigkill");
    let lock = FileLock::open(&path).unwrap().with_label("survivor");

    // A holder killed with SIGKILL: the kernel drops its lock; ours comes at once.
    let doomed = holder(Mode::Exclusive, &path, &[(LABEL_VAR, "doomed holder")]);
    let err = expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);
    assert_eq!(named_holder(&err).pid, doomed.pid());
    doomed.kill();
    let got = lock.exclusive(Wait::Timeout(Duration::from_secs(2)));
    let guard = got.expect("SIGKILL of the holder did not free the lock");
    drop(guard);

    // A second one, killed: its record stays in the lock file, and must not be believed once
    // another process (flock(1), which writes no record) holds the lock.
    let doomed = holder(Mode::Exclusive, &path, &[(LABEL_VAR, "doomed holder")]);
    let doomed_pid = doomed.pid();
    doomed.kill();
    let record = first_line(&path);
    assert!(
        record.contains(&format!("pid={doomed_pid} ")) && record.contains("doomed holder"),
        "precondition: the killed holder's record should still be in the lock file: {record:?}"
    );
    let flock = flock_holder(&path);
    let err = expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);
    let h = named_holder(&err);
    assert_eq!(h.pid, flock.pid(), "{err}");
    assert_ne!(h.pid, doomed_pid, "the stale record was believed: {err}");
    assert_eq!(
        h.label, None,
        "the stale record's label was believed: {err}"
    );
    assert_eq!(h.host, None, "{h:?}");
    assert!(h.verified && !h.this_process, "{h:?}");
    let comm = fs::read_to_string(format!("/proc/{}/comm", flock.pid())).unwrap();
    assert_eq!(h.command.as_deref(), Some(comm.trim_end()), "{h:?}");
    assert_eq!(h.command.as_deref(), Some("flock"), "{h:?}");
    let msg = err.to_string();
    assert!(!msg.contains("doomed"), "{msg:?}");
    assert!(
        msg.contains(&format!("pid {} [flock]", flock.pid())),
        "{msg:?}"
    );

    flock.kill();
    let got = lock.exclusive(Wait::Timeout(Duration::from_secs(2)));
    let _guard = got.expect("SIGKILL of flock(1) did not free the lock");
}

#[test]
fn shared_holders_coexist_and_block_an_exclusive_one() {
    let (_dir, path) = lock_path("shared");
    // Each child takes the lock with Wait::None: the second gets it only if it coexists with
    // the first, which holds on until killed.
    let a = holder(Mode::Shared, &path, &[]);
    let b = holder(Mode::Shared, &path, &[]);
    let lock = FileLock::open(&path).unwrap();

    let ours = lock
        .shared(Wait::None)
        .expect("a third shared holder must be admitted");
    assert_eq!(ours.mode(), Mode::Shared);
    drop(ours);

    let err = expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);
    let h = named_holder(&err);
    assert_eq!(h.mode, Mode::Shared, "{err}");
    assert!(h.pid == a.pid() || h.pid == b.pid(), "{err}");
    assert_eq!(h.others, 1, "the other shared holder is not counted: {err}");
    assert!(
        err.to_string()
            .contains(&format!("held shared by pid {}", h.pid)),
        "{err}"
    );

    a.kill();
    expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);
    b.kill();
    let _guard = lock
        .exclusive(Wait::None)
        .expect("both shared holders are dead: the lock must be free");
}

/// `/proc/locks` is built one page per read, walking the whole list again each time: when
/// locks elsewhere come and go between two reads, a record can be skipped. Both shared holders
/// must still be named every time, while another process churns 200 locks in front of theirs.
#[test]
fn holders_are_named_while_other_locks_come_and_go() {
    let (_dir, path) = lock_path("churn");
    let a = holder(Mode::Shared, &path, &[]);
    let b = holder(Mode::Shared, &path, &[]);
    let churn = spawn_child("churn", &path, &[]);
    expect(&churn, "CHURNING");
    let lock = FileLock::open(&path).unwrap();
    let mut missed = Vec::new();
    for _ in 0..300 {
        let err = expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);
        match err.holder() {
            Some(h) if h.others == 1 && (h.pid == a.pid() || h.pid == b.pid()) => {}
            _ => missed.push(err.to_string()),
        }
    }
    churn.wait();
    assert!(
        missed.is_empty(),
        "{} of 300 missed a holder: {:?}",
        missed.len(),
        missed.first()
    );
    a.kill();
    b.kill();
}

/// An async acquisition never queues (it polls without blocking the executor); while two
/// processes keep the lock busy, queueing for it in turn, it must still get the lock, again
/// and again, well within its timeout.
#[test]
fn an_async_acquirer_gets_its_turn_beside_processes_that_queue() {
    let (_dir, path) = lock_path("async-beside-queue");
    fs::write(&path, b"").unwrap();
    let busy: Vec<Child> = (0..2)
        .map(|_| spawn_child("busy-queue", &path, &[]))
        .collect();
    for b in &busy {
        expect(b, "BUSY");
    }
    let lock = FileLock::open(&path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut waits = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let guard = runtime
            .block_on(lock.acquire_async(Mode::Exclusive, Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("starved beside the queue: {e}"));
        waits.push(started.elapsed());
        drop(guard);
    }
    for b in busy {
        b.wait();
    }
    waits.sort();
    eprintln!(
        "async waits beside a busy queue: median {:?}, max {:?}",
        waits[10], waits[19]
    );
}

#[test]
fn interop_with_util_linux_flock_both_directions() {
    let (_dir, path) = lock_path("interop");
    let lock = FileLock::open(&path).unwrap();
    const BUSY: i32 = 1; // flock(1)'s exit code for a conflict with -n

    // (a) flock(1) sees our locks.
    let guard = lock.exclusive(Wait::None).unwrap();
    assert_eq!(
        flock_try(&["-n"], &path),
        BUSY,
        "flock -n got our exclusive lock"
    );
    assert_eq!(
        flock_try(&["-s", "-n"], &path),
        BUSY,
        "flock -s -n got our exclusive lock"
    );
    drop(guard);
    assert_eq!(
        flock_try(&["-n"], &path),
        0,
        "our released lock is still held"
    );

    let guard = lock.shared(Wait::None).unwrap();
    assert_eq!(
        flock_try(&["-s", "-n"], &path),
        0,
        "flock -s -n was refused beside our shared lock"
    );
    assert_eq!(
        flock_try(&["-n"], &path),
        BUSY,
        "flock -n got our shared lock"
    );
    drop(guard);
    assert_eq!(
        flock_try(&["-n"], &path),
        0,
        "our released lock is still held"
    );

    // (b) we see flock(1)'s lock.
    let flock = flock_holder(&path);
    let err = expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);
    assert_eq!(named_holder(&err).pid, flock.pid(), "{err}");
    let err = expect_would_block(lock.shared(Wait::None), Mode::Shared);
    assert_eq!(named_holder(&err).pid, flock.pid(), "{err}");
    let timeout = Duration::from_millis(200);
    match lock.exclusive(Wait::Timeout(timeout)) {
        Err(ref err @ LockError::Timeout { waited, .. }) => {
            assert!(waited >= timeout, "gave up early, after {waited:?}");
            let h = named_holder(err);
            assert_eq!(h.pid, flock.pid(), "{err}");
            assert_eq!(h.label, None, "{err}");
        }
        other => panic!("expected a timeout while flock(1) holds the lock, got {other:?}"),
    }

    flock.kill();
    let _guard = lock
        .exclusive(Wait::Timeout(Duration::from_secs(2)))
        .expect("flock(1) is dead: the lock must be free");
}

/// The fairness bound: against a process that re-takes the lock in a loop (plain flock lets
/// it win nearly every race: waits of 0.5 to 1.2 s in `--example handoff`), a waiting process
/// gets its turn once the busy one's slice is over (at most 1 ms with one waiter). The bound
/// asserted is 100× that, for a loaded machine; what was measured is printed.
#[test]
fn a_waiting_process_gets_its_turn_against_one_that_retakes_in_a_loop() {
    let (_dir, path) = lock_path("turn-against-busy");
    fs::write(&path, b"").unwrap();
    let busy = spawn_child("busy-queue", &path, &[]);
    expect(&busy, "BUSY");
    let lock = FileLock::open(&path).unwrap();
    let mut waits = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let guard = lock
            .exclusive(Wait::Timeout(Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("starved by a busy process: {e}"));
        waits.push(started.elapsed());
        drop(guard);
        // Let the busy process have the lock back before the next try.
        thread::sleep(Duration::from_millis(2));
    }
    busy.wait();
    waits.sort();
    eprintln!(
        "waits against a busy process: median {:?}, max {:?}",
        waits[25], waits[49]
    );
    assert!(
        waits[49] < Duration::from_millis(100),
        "a waiter waited {:?} for a process that re-takes the lock in a loop",
        waits[49]
    );
}

/// Word `index` of the lock file's bell (its second page, see `bell.rs`), as any process reads
/// it: 1 is the count of registered waiters, 3 the next ticket to hand out, 5 the layout.
fn bell_word(path: &Path, index: u64) -> u32 {
    use std::os::unix::fs::FileExt;
    let mut word = [0u8; 4];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut word, rustix::param::page_size() as u64 + 4 * index)
        .unwrap();
    u32::from_ne_bytes(word)
}

fn bell_waiters(path: &Path) -> u32 {
    bell_word(path, 1)
}

fn bell_next_ticket(path: &Path) -> u32 {
    bell_word(path, 3)
}

/// Processes that wait get the lock in the order they asked for it, even when every turn
/// (5 ms) outlasts the bell's patience (2 ms): a waiter's turn is only skipped when nobody holds
/// its place. (The first bell let a later waiter take a turn that had stood still for 2 ms and
/// moved the turn past its own ticket: the waiters it jumped were never rung again, and
/// 100-row writers saw writes of 30–230 ms.)
#[test]
fn waiting_processes_get_the_lock_in_the_order_they_asked() {
    let (_dir, path) = lock_path("fifo");
    let lock = FileLock::open(&path).unwrap();
    for round in 0..12 {
        let mut waiters: Vec<Child> = (0..5)
            .map(|_| spawn_child("queue-once", &path, &[]))
            .collect();
        for waiter in &waiters {
            expect(waiter, "READY");
        }
        let guard = lock.exclusive(Wait::None).unwrap();
        for waiter in &mut waiters {
            // Let it go, and wait until it has its ticket before the next one goes.
            let ticket = bell_next_ticket(&path);
            waiter.close_stdin();
            let queued = Instant::now() + BOUND;
            while bell_next_ticket(&path) == ticket {
                assert!(Instant::now() < queued, "a waiter never took a ticket");
                thread::sleep(Duration::from_micros(100));
            }
        }
        // The first waiter's turn stands still past the patience (not for the bell's
        // LONG_TURN, after which the others may try too), then the lock goes.
        thread::sleep(Duration::from_millis(10));
        drop(guard);
        let got: Vec<u64> = waiters
            .into_iter()
            .map(|w| {
                let line = w.expect_line("GOT ");
                w.wait();
                line["GOT ".len()..].parse().unwrap()
            })
            .collect();
        let mut in_order = got.clone();
        in_order.sort_unstable();
        assert_eq!(
            got, in_order,
            "round {round}: the waiters (in the order they asked) got the lock at these times"
        );
    }
}

/// Waits until the bell of `path` has handed out `ticket`: the waiter `who` just let go has its
/// place in the queue.
fn await_ticket(path: &Path, ticket: u32, who: &str) {
    let queued = Instant::now() + BOUND;
    while bell_next_ticket(path) == ticket {
        assert!(Instant::now() < queued, "{who} never took a ticket");
        thread::sleep(Duration::from_micros(100));
    }
}

/// Starts `n` processes that wait for the lock of `path` (held elsewhere, for a minute at
/// most), one after another: each has its ticket before the next starts, so the first is the
/// one whose turn it is and waiter `i` has `i` tickets ahead of it.
fn queue_waiters(path: &Path, n: usize) -> Vec<Child> {
    (0..n)
        .map(|i| {
            let ticket = bell_next_ticket(path);
            let child = spawn_child("wait-exclusive", path, &[]);
            expect(&child, "WAITING");
            await_ticket(path, ticket, &format!("waiter {i}"));
            child
        })
        .collect()
}

/// Queues `dead` waiters and then a live one behind a lock this process holds, SIGKILLs the
/// dead ones, lets the lock go, and gives how long after the release the live waiter had it.
fn live_waiter_behind_killed_ones(test: &str, dead: usize) -> Duration {
    let (_dir, path) = lock_path(test);
    let lock = FileLock::open(&path).unwrap();
    let guard = lock.exclusive(Wait::None).unwrap();
    let doomed = queue_waiters(&path, dead);
    let mut next = spawn_child("queue-once", &path, &[]);
    expect(&next, "READY");
    let ticket = bell_next_ticket(&path);
    next.close_stdin();
    await_ticket(&path, ticket, "the live waiter");
    // The waiters ahead of it are all SIGKILLed at once, and the lock goes.
    sigkill_all(&doomed);
    let released = monotonic_ns();
    drop(guard);
    let line = next.expect_line("GOT ");
    next.wait();
    for child in doomed {
        assert!(child.kill().killed());
    }
    let got: u64 = line["GOT ".len()..].parse().unwrap();
    Duration::from_nanos(got.saturating_sub(released))
}

/// [`live_waiter_behind_killed_ones`], and the live waiter had the lock within 100 ms of the
/// release (a bound for a loaded machine).
fn assert_live_waiter_behind_killed_ones_is_not_held_up(test: &str, dead: usize) {
    let waited = live_waiter_behind_killed_ones(test, dead);
    eprintln!("the waiter behind {dead} dead turn(s) got the lock {waited:?} after its release");
    assert!(
        waited < Duration::from_millis(100),
        "the waiter behind {dead} SIGKILLed one(s) waited {waited:?} after the release"
    );
}

/// A waiter SIGKILLed while its turn has come does not hold the queue up: the kernel drops its
/// place with the process, and the waiter behind it skips the dead turn within the bell's
/// patience (2 ms, looked at every 1 ms) instead of waiting for the 250 ms after which anyone
/// may try. The bound asserted is 100 ms, for a loaded machine.
#[test]
fn a_sigkilled_waiters_turn_is_skipped_at_once() {
    assert_live_waiter_behind_killed_ones_is_not_held_up("dead-turn", 1);
}

/// Many waiters SIGKILLed at once (a deploy stopping a pool of workers that queue for the
/// gate) cost the live waiter behind them one patience, not one each: their dead turns are
/// skipped in one go. Skipped one per patience, 64 of them would take 128 ms at the least;
/// the bound asserted is 100 ms, for a loaded machine.
#[test]
fn sixty_four_sigkilled_waiters_are_skipped_in_one_go() {
    assert_live_waiter_behind_killed_ones_is_not_held_up("dead-turns", 64);
}

/// A waiter SIGKILLed while it waits leaves the bell's count of waiters one too high; a process
/// that keeps taking the lock would then end every slice in a pause for a waiter that never
/// comes. It must notice (the kernel dropped the dead waiter's marker) and reset the count.
/// Wake-ups so far of process `pid`: the voluntary context switches of all its threads.
fn wake_ups(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let status = fs::read_to_string(task.unwrap().path().join("status")).unwrap();
            let count = status
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                .expect("/proc/<pid>/task/<tid>/status counts context switches");
            count.trim().parse::<u64>().unwrap()
        })
        .sum()
}

/// A waiter far back in the queue looks on its own less often than the ones at its head: it
/// is rung when its turn comes, and looks only to skip dead turns ahead of it, for a turn that
/// lasts too long, and for its deadline (the bell's `nap`: 1 ms at the head, 8 ms from eight
/// tickets back). With every waiter looking every 1 ms, 64 writer processes queued at the gate
/// woke 64,000 times a second between them. Nobody rings here (the lock is held throughout),
/// so every wake-up counted is a waiter looking on its own: about 8 times fewer at the back,
/// and at least 2 times fewer on a loaded machine, where a short sleep overruns more.
#[test]
fn waiters_far_back_in_the_queue_look_less_often_than_the_head() {
    let (_dir, path) = lock_path("naps");
    let lock = FileLock::open(&path).unwrap();
    let guard = lock.exclusive(Wait::None).unwrap();
    let waiters = queue_waiters(&path, 12);
    let before: Vec<u64> = waiters.iter().map(|w| wake_ups(w.pid())).collect();
    thread::sleep(Duration::from_millis(400));
    let looks: Vec<u64> = waiters
        .iter()
        .zip(before)
        .map(|(w, before)| wake_ups(w.pid()) - before)
        .collect();
    sigkill_all(&waiters);
    for waiter in waiters {
        assert!(waiter.kill().killed());
    }
    drop(guard);
    eprintln!("wake-ups in 400 ms of the waiters, from the head of the queue: {looks:?}");
    // The turn's waiter and the one right behind it look every 1 ms; the last four, 8 or more
    // tickets back, every 8 ms.
    let head = (looks[0] + looks[1]) as f64 / 2.0;
    let back = looks[8..].iter().sum::<u64>() as f64 / 4.0;
    assert!(
        head >= 40.0,
        "the head of the queue looked {head} times in 400 ms: it no longer looks every 1 ms"
    );
    assert!(
        back * 2.0 <= head,
        "waiters 8 or more tickets back looked {back} times each in 400 ms, the head {head}"
    );
}

#[test]
fn a_sigkilled_waiter_is_forgotten_by_a_busy_process() {
    let (_dir, path) = lock_path("leaked-waiter");
    let lock = FileLock::open(&path).unwrap();
    let guard = lock.exclusive(Wait::None).unwrap();
    let waiter = spawn_child("wait-exclusive", &path, &[]);
    expect(&waiter, "WAITING");
    let registered = Instant::now() + BOUND;
    while bell_waiters(&path) != 1 {
        assert!(Instant::now() < registered, "the waiter never registered");
        thread::sleep(Duration::from_millis(1));
    }
    assert!(waiter.kill().killed());
    assert_eq!(bell_waiters(&path), 1, "the dead waiter is still counted");
    drop(guard);
    // Busy: take and release the lock in a loop, each hold ~100 µs, for at most 5 s.
    let takes = take_until_no_waiter_is_counted(&lock, &path);
    assert_eq!(
        bell_waiters(&path),
        0,
        "the dead waiter was still counted after {takes} acquisitions"
    );
}

#[test]
fn exclusive_waiter_gets_the_lock_when_the_holder_releases() {
    let (_dir, path) = lock_path("waiter");
    let hold = Duration::from_millis(300);
    let linger = hold.as_millis().to_string();
    let mut child = holder(Mode::Exclusive, &path, &[(LINGER_VAR, &linger)]);
    let lock = FileLock::open(&path).unwrap();
    expect_would_block(lock.exclusive(Wait::None), Mode::Exclusive);

    // The child keeps the lock `hold` longer after its stdin closes, then releases and exits.
    let start = Instant::now();
    child.close_stdin();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let lock = lock.clone();
        thread::spawn(move || {
            let result = lock.exclusive(Wait::Forever).map(drop);
            let _ = tx.send((result, start.elapsed()));
        })
    };
    let (result, elapsed) = rx
        .recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("Wait::Forever still waiting after {BOUND:?}"));
    result.expect("Wait::Forever failed");
    waiter.join().unwrap();
    assert!(
        elapsed >= hold,
        "got the lock after {elapsed:?}, before the holder released it"
    );
    expect(&child, "RELEASED");
    child.wait().assert_success();
}

#[test]
fn reentry_from_another_process_is_not_deadlock() {
    let (_dir, path) = lock_path("reentry");
    // The child holds exclusive and checks that asking again is refused at once.
    let child = spawn_child("reenter", &path, &[(LABEL_VAR, "reentrant child")]);
    expect(&child, "REENTRY_REFUSED");

    // Another process asking is not re-entry: it waits and times out, naming the child.
    let lock = FileLock::open(&path).unwrap();
    match lock.exclusive(Wait::Timeout(Duration::from_millis(200))) {
        Err(ref err @ LockError::Timeout { .. }) => {
            let h = named_holder(err);
            assert_eq!(h.pid, child.pid(), "{err}");
            assert_eq!(h.label.as_deref(), Some("reentrant child"), "{err}");
            assert!(!h.this_process, "{err}");
        }
        other => panic!("expected a timeout from another process, got {other:?}"),
    }

    child.wait().assert_success();
    let _guard = lock
        .exclusive(Wait::None)
        .expect("the child has exited: the lock must be free");
}

/// Fills the file system holding `dir` to its last byte (a real `ENOSPC`).
fn fill(dir: &Path) {
    use std::io::Write;
    let mut filler = fs::File::create(dir.join("filler")).unwrap();
    let chunk = [0x5a_u8; 4096];
    loop {
        match filler.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    // Byte by byte to the end (a short write above may have left part of a page).
    while let Ok(1) = filler.write(&[0x5a]) {}
    let more = filler.write(&[0x5a]).and_then(|_| filler.sync_all());
    assert!(more.is_err(), "the disk took one more byte");
}

/// On a full disk (a size-limited tmpfs) the lock keeps every promise but the waiters' bell:
/// a lock file made before the disk filled keeps its bell (its pages were allocated then, and
/// writing to them needs no space: no `SIGBUS`), one made on the full disk has none (its pages
/// cannot be allocated) and its waiters poll. Either way another process is excluded, a
/// timeout names the holder (by pid from the kernel; its label only where the record could be
/// written), and a waiter gets the lock when the holder lets go.
#[test]
fn on_a_full_disk_the_lock_excludes_names_its_holder_and_hands_over() {
    let dir = Scratch::new("lock-mp-full-disk");
    let fs = match Tmpfs::mount(&dir.join("fs"), 256 << 10) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "SKIPPED on_a_full_disk_the_lock_excludes_names_its_holder_and_hands_over: {why}"
            );
            return;
        }
    };
    let before = fs.path().join("before.lock");
    drop(FileLock::open(&before).unwrap());
    fill(fs.path());
    assert_eq!(fs.free(), 0);
    let on_full = fs.path().join("on-full.lock");
    drop(FileLock::open(&on_full).unwrap());
    let page = rustix::param::page_size() as u64;
    assert!(
        fs::metadata(&before).unwrap().len() >= 2 * page,
        "no bell made before"
    );
    assert!(
        fs::metadata(&on_full).unwrap().len() < page,
        "a bell on a full disk"
    );
    for (path, labelled) in [(&before, true), (&on_full, false)] {
        let child = holder(Mode::Exclusive, path, &[(LABEL_VAR, "full-disk holder")]);
        let lock = FileLock::open(path).unwrap();
        let err = expect_timeout(lock.exclusive(Wait::Timeout(Duration::from_millis(200))));
        let named = named_holder(&err);
        assert_eq!(named.pid, child.pid(), "{}: {err}", path.display());
        let label = if labelled {
            Some("full-disk holder")
        } else {
            None
        };
        assert_eq!(named.label.as_deref(), label, "{}: {err}", path.display());
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        // A waiter in another process gets the lock once the holder lets go.
        hand_over_to_a_waiter(child, path, &[]);
        // And this process, after it.
        drop(lock.exclusive(Wait::Timeout(BOUND)).unwrap());
    }
    drop(fs);
}

/// Two versions side by side (a rolling deploy) whose bells' words mean different things: the
/// newer one finds a page of another layout, uses no bell on that file and polls, and leaves
/// the other version's words alone. The lock is `flock` for both: a holder still excludes,
/// and a waiter still gets the lock when it lets go.
#[test]
fn a_bell_of_another_layout_is_left_alone_and_waiters_poll() {
    use std::os::unix::fs::FileExt;
    let (_dir, path) = lock_path("other-layout");
    drop(FileLock::open(&path).unwrap());
    let ours = bell_word(&path, 5);
    assert_ne!(ours, 0, "no layout written");
    // Another layout: its own words, a different magic.
    let page = rustix::param::page_size() as u64;
    let other: Vec<u8> = [9u32, 4, 0, 1000, 996, ours ^ 0xff]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&other, page)
        .unwrap();
    let child = holder(Mode::Exclusive, &path, &[(LABEL_VAR, "other layout")]);
    let lock = FileLock::open(&path).unwrap();
    let err = expect_timeout(lock.exclusive(Wait::Timeout(Duration::from_millis(200))));
    assert_eq!(named_holder(&err).pid, child.pid(), "{err}");
    hand_over_to_a_waiter(child, &path, &[]);
    drop(lock.exclusive(Wait::Timeout(BOUND)).unwrap());
    let mut words = vec![0u8; other.len()];
    fs::File::open(&path)
        .unwrap()
        .read_exact_at(&mut words, page)
        .unwrap();
    assert_eq!(words, other, "the other layout's words were touched");
}

/// What a power cut leaves in a lock file: the bell's words and the holder record as the
/// processes left them at some moment (a page reaches the disk whole, and the processes are
/// all gone after the reboot, their `flock`s and marks with them). Made here by SIGKILLing at
/// once a holder and three queued waiters: the next processes find a record naming a dead
/// holder, three waiters counted and three dead turns ahead of any new ticket. None of it may
/// hold them up: the lock is free at once, a timeout names the live holder and not the dead
/// one, a waiter gets the lock when it is let go, and a busy process forgets the dead waiters.
#[test]
fn after_everything_is_killed_at_once_the_lock_file_holds_nobody_up() {
    let (_dir, path) = lock_path("cut");
    let before = holder(Mode::Exclusive, &path, &[(LABEL_VAR, "before the cut")]);
    let dead_pid = before.pid();
    let waiters: Vec<Child> = (0..3)
        .map(|i| {
            let ticket = bell_next_ticket(&path);
            let child = spawn_child("wait-exclusive", &path, &[]);
            expect(&child, "WAITING");
            let queued = Instant::now() + BOUND;
            while bell_next_ticket(&path) == ticket || bell_waiters(&path) != i + 1 {
                assert!(Instant::now() < queued, "waiter {i} never queued");
                thread::sleep(Duration::from_micros(100));
            }
            child
        })
        .collect();
    sigkill_all(waiters.iter().chain([&before]));
    for child in waiters.into_iter().chain([before]) {
        assert!(child.kill().killed());
    }
    assert!(
        first_line(&path).contains(&format!("pid={dead_pid} ")),
        "no record left"
    );
    assert_eq!(bell_waiters(&path), 3, "the dead waiters are still counted");
    // The lock is free at once.
    let lock = FileLock::open(&path).unwrap();
    drop(lock.exclusive(Wait::None).unwrap());
    // A timeout names the live holder, not the dead one of the record.
    let child = holder(Mode::Exclusive, &path, &[(LABEL_VAR, "after the cut")]);
    let err = expect_timeout(lock.exclusive(Wait::Timeout(Duration::from_millis(200))));
    let named = named_holder(&err);
    assert_eq!(named.pid, child.pid(), "{err}");
    assert_eq!(named.label.as_deref(), Some("after the cut"), "{err}");
    // A waiter behind the dead turns gets the lock when the holder lets go.
    hand_over_to_a_waiter(child, &path, &[]);
    // A busy process forgets the dead waiters (at most 5 s of ~100 µs holds).
    let takes = take_until_no_waiter_is_counted(&lock, &path);
    assert_eq!(
        bell_waiters(&path),
        0,
        "the dead waiters are still counted after {takes} acquisitions"
    );
}

/// I/O errors on every read and write of the lock file (`fallocate`, `pwrite`, `pread` fail
/// with `EIO` in the children, by a seccomp filter) cost the bell and the holder's label, and
/// nothing else: a holder whose writes all fail still excludes, is named by its pid (the
/// kernel's `/proc/locks`), and hands the lock over to a waiter whose calls fail too (it
/// polls); a process whose reads of the record fail still names the holder by pid.
#[test]
fn io_errors_on_the_lock_file_cost_only_the_bell_and_the_label() {
    let (_dir, path) = lock_path("io-errors");
    let fail = (FAIL_VAR, "fallocate,pwrite64,pread64");
    let child = holder(Mode::Exclusive, &path, &[fail, (LABEL_VAR, "failing disk")]);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        0,
        "a failing write wrote"
    );
    let lock = FileLock::open(&path).unwrap();
    let err = expect_timeout(lock.exclusive(Wait::Timeout(Duration::from_millis(200))));
    let named = named_holder(&err);
    assert_eq!(
        (named.pid, named.label.as_deref()),
        (child.pid(), None),
        "{err}"
    );
    hand_over_to_a_waiter(child, &path, &[fail]);
    // This process holds it (its record written); one whose reads fail names it by pid.
    let guard = lock.exclusive(Wait::Timeout(BOUND)).unwrap();
    let asker = spawn_child("try-exclusive", &path, &[fail]);
    assert_eq!(asker.line(), format!("HOLDER {} -", std::process::id()));
    asker.wait().assert_success();
    let asker = spawn_child("try-exclusive", &path, &[]);
    let label = lock.label().to_owned();
    assert_eq!(
        asker.line(),
        format!("HOLDER {} {label}", std::process::id()),
        "without faults"
    );
    asker.wait().assert_success();
    drop(guard);
}
