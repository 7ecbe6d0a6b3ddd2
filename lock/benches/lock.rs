//! What one acquisition costs, against raw `flock(2)` as the baseline (issue 3).
//!
//! - `uncontended`: one thread takes and releases a lock nobody else wants. `raw_flock` is the
//!   floor: `flock(LOCK_EX)` + `flock(LOCK_UN)` on an open descriptor through libc;
//!   `rustix_flock` makes the same calls through rustix (non-blocking, as `FileLock` does),
//!   inlined; `rustix_flock_outlined` makes them through a function that is not inlined, which
//!   here costs ~110 ns a call more (the first return after a system call into a frame entered
//!   before it is that slow on this machine; libc's wrapper pays it too, see `Core::acquire`);
//!   `exclusive` and `shared` are a [`FileLock`] doing the same through its in-process state.
//! - `contended_threads`: 4 threads of one process hammer one lock; the time is per acquisition
//!   (total wall time / total acquisitions). `exclusive` is one shared [`FileLock`];
//!   `raw_flock_4_fds` is what naive code does: every thread opens its own descriptor of the same
//!   file and blocks in `flock`, so every handoff goes through the kernel.
//!
//! `cargo bench -p litekeep-lock --bench lock` takes well under a minute on 2 cores.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use litekeep_lock::{FileLock, Wait};

const THREADS: u64 = 4;

/// A scratch directory of this bench run.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lk-bench-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open the lock file")
}

/// `flock(fd, op)`, retried on EINTR; panics on any other error.
fn raw_flock(fd: RawFd, op: libc::c_int) {
    loop {
        // SAFETY: flock takes no pointers; `fd` is a descriptor the caller keeps open.
        if unsafe { libc::flock(fd, op) } == 0 {
            return;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "flock: {err}");
    }
}

/// One `flock` through rustix in a call that is not inlined.
#[inline(never)]
fn rustix_flock_outlined(file: &File, op: rustix::fs::FlockOperation) {
    rustix::fs::flock(file, op).expect("flock");
}

fn uncontended(c: &mut Criterion) {
    let dir = scratch_dir();
    let mut g = c.benchmark_group("uncontended");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);

    let raw = open_rw(&dir.join("raw.lock"));
    let fd = raw.as_raw_fd();
    g.bench_function("raw_flock", |b| {
        b.iter(|| {
            raw_flock(black_box(fd), libc::LOCK_EX);
            raw_flock(black_box(fd), libc::LOCK_UN);
        })
    });

    g.bench_function("raw_flock_shared", |b| {
        b.iter(|| {
            raw_flock(black_box(fd), libc::LOCK_SH);
            raw_flock(black_box(fd), libc::LOCK_UN);
        })
    });

    // The same two system calls through rustix, as `FileLock` (and fd-lock) make them: the
    // floor of what the lock's own OS calls cost, so `exclusive - rustix_flock` is its overhead.
    g.bench_function("rustix_flock", |b| {
        use rustix::fs::{FlockOperation, flock};
        b.iter(|| {
            flock(black_box(&raw), FlockOperation::NonBlockingLockExclusive).expect("flock");
            flock(black_box(&raw), FlockOperation::Unlock).expect("flock");
        })
    });

    g.bench_function("rustix_flock_outlined", |b| {
        use rustix::fs::FlockOperation;
        b.iter(|| {
            rustix_flock_outlined(black_box(&raw), FlockOperation::NonBlockingLockExclusive);
            rustix_flock_outlined(black_box(&raw), FlockOperation::Unlock);
        })
    });

    let lock = FileLock::open(dir.join("lk.lock")).expect("open the lock file");
    g.bench_function("exclusive", |b| {
        b.iter(|| drop(black_box(lock.exclusive(Wait::None).expect("uncontended"))))
    });
    g.bench_function("shared", |b| {
        b.iter(|| drop(black_box(lock.shared(Wait::None).expect("uncontended"))))
    });
    g.finish();
    drop(raw);
    drop(lock);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `iters` calls of `one` split over [`THREADS`] threads that start together; returns the
/// wall time from the common start until the last thread is done.
fn hammer<S: Sync>(iters: u64, per_thread: impl Fn(u64) -> S, one: impl Fn(&S) + Sync) -> Duration {
    let states: Vec<S> = (0..THREADS).map(per_thread).collect();
    let start_line = Barrier::new(THREADS as usize + 1);
    thread::scope(|s| {
        for (i, state) in states.iter().enumerate() {
            let n = iters / THREADS + u64::from((i as u64) < iters % THREADS);
            let (start_line, one) = (&start_line, &one);
            s.spawn(move || {
                start_line.wait();
                for _ in 0..n {
                    one(state);
                }
            });
        }
        start_line.wait();
        let start = Instant::now();
        // The scope joins every thread before it returns.
        start
    })
    .elapsed()
}

fn contended_threads(c: &mut Criterion) {
    let dir = scratch_dir();
    let mut g = c.benchmark_group("contended_threads");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);

    let lock = FileLock::open(dir.join("lk.lock")).expect("open the lock file");
    g.bench_function("exclusive", |b| {
        b.iter_custom(|iters| {
            hammer(
                iters,
                |_| lock.clone(),
                |l| drop(black_box(l.exclusive(Wait::Forever).expect("forever"))),
            )
        })
    });

    let raw_path = dir.join("raw.lock");
    g.bench_function("raw_flock_4_fds", |b| {
        b.iter_custom(|iters| {
            hammer(
                iters,
                |_| open_rw(&raw_path),
                |f| {
                    raw_flock(f.as_raw_fd(), libc::LOCK_EX);
                    raw_flock(f.as_raw_fd(), libc::LOCK_UN);
                },
            )
        })
    });
    g.finish();
    drop(lock);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, uncontended, contended_threads);
criterion_main!(benches);
