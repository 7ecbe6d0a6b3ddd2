//! Handoff latency and fairness, litekeep against raw flock(2), measured in one run:
//!
//! 1. handoff latency: a holder releases while another taker is already waiting for the lock;
//!    the time from the release to the waiter holding it. Between two threads of one process
//!    (one `FileLock`, against raw flock on two descriptors), and between two processes
//!    (litekeep and raw flock taking turns, so both meet the same moments of a noisy machine);
//! 2. fairness: one process re-takes the lock in a busy loop (holding it ~50 µs each time)
//!    while a second process asks for it 200 times; the second one's longest wait, litekeep
//!    against raw flock (which lets the busy process win almost every race).
//!
//! `cargo run --release -p litekeep-lock --example handoff [--json FILE]`; `--json` also writes
//! the numbers (nanoseconds) as one JSON document, what `scripts/measured` reads.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use litekeep_lock::{FileLock, Wait};

const TRIALS: usize = 200;

fn open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open lock file")
}

fn raw(file: &File, op: i32) {
    // SAFETY: flock on a descriptor the caller keeps open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    assert_eq!(rc, 0, "flock failed");
}

/// Takes the lock `n` times, `hold` each time; litekeep or raw flock.
fn take_turns(path: &Path, raw_flock: bool, n: u32, hold: Duration) {
    let spin = |d: Duration| {
        let t = Instant::now();
        while t.elapsed() < d {}
    };
    if raw_flock {
        let file = open(path);
        for _ in 0..n {
            raw(&file, libc::LOCK_EX);
            spin(hold);
            raw(&file, libc::LOCK_UN);
        }
    } else {
        let lock = FileLock::open(path).expect("open");
        for _ in 0..n {
            let g = lock.exclusive(Wait::Forever).expect("lock");
            spin(hold);
            drop(g);
        }
    }
}

fn child(args: &[&str]) -> Child {
    let mut c = Command::new(std::env::current_exe().expect("exe"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    c
}

const HANDOFFS: usize = 600;

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes on one machine.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {}
}

fn median(mut v: Vec<u64>) -> Duration {
    v.sort_unstable();
    Duration::from_nanos(v[v.len() / 2])
}

/// Handoff between two threads: the waiter is already waiting when the holder releases. With
/// litekeep both threads share one `FileLock`; with raw flock each has its own descriptor of
/// the file (flock locks belong to open file descriptions, so two threads of one process wait
/// on each other only that way).
fn thread_handoff(path: &Path, raw_flock: bool) -> Duration {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    let lock = FileLock::open(path).expect("open");
    let (mine, theirs) = (open(path), open(path));
    // Takes the lock; the returned closure releases it.
    fn take<'a>(lock: &'a FileLock, file: &'a File, raw_flock: bool) -> Box<dyn FnOnce() + 'a> {
        if raw_flock {
            raw(file, libc::LOCK_EX);
            Box::new(move || raw(file, libc::LOCK_UN))
        } else {
            let g = lock.exclusive(Wait::Forever).expect("lock");
            Box::new(move || drop(g))
        }
    }
    let go = AtomicU64::new(0);
    let took = AtomicU64::new(0);
    let mut lat = Vec::with_capacity(HANDOFFS);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=HANDOFFS as u64 {
                while go.load(SeqCst) != i {
                    std::hint::spin_loop();
                }
                let release = take(&lock, &theirs, raw_flock);
                took.store(mono_ns(), SeqCst);
                release();
            }
        });
        for i in 1..=HANDOFFS as u64 {
            let release = take(&lock, &mine, raw_flock);
            took.store(0, SeqCst);
            go.store(i, SeqCst);
            spin(Duration::from_micros(5)); // the waiter is now waiting
            let released = mono_ns();
            release();
            while took.load(SeqCst) == 0 {
                std::hint::spin_loop();
            }
            lat.push(took.load(SeqCst).saturating_sub(released));
        }
    });
    median(lat)
}

/// One waiting child process of [`process_handoffs`], litekeep or raw flock.
struct Waiter {
    child: Child,
    to: std::process::ChildStdin,
    from: BufReader<std::process::ChildStdout>,
}

impl Waiter {
    fn spawn(path: &Path, raw_flock: bool) -> Waiter {
        let kind = if raw_flock { "raw" } else { "litekeep" };
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--waiter", kind, &path.display().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let to = child.stdin.take().expect("stdin");
        let from = BufReader::new(child.stdout.take().expect("stdout"));
        Waiter { child, to, from }
    }

    /// Tells the child to take the lock (the caller holds it), waits 1.5 ms, releases with
    /// `release`, and returns the time from the release to the child holding the lock.
    fn handoff(&mut self, release: impl FnOnce()) -> u64 {
        writeln!(self.to, "go").expect("write");
        self.to.flush().expect("flush");
        // The child is now blocked. 1.5 ms, not 1: a litekeep waiter also wakes on its own
        // every 1 ms (the bell's BELL_MAX), and would often be awake already at a release 1 ms
        // after it began to wait, which flattered it.
        std::thread::sleep(Duration::from_micros(1500));
        let released = mono_ns();
        release();
        let mut line = String::new();
        self.from.read_line(&mut line).expect("read");
        let took: u64 = line.trim().parse().expect("ns");
        took.saturating_sub(released)
    }

    fn finish(self) {
        drop(self.to);
        let mut child = self.child;
        let _ = child.wait();
    }
}

/// Handoff between two processes, litekeep and raw flock in turns (so both meet the same
/// moments of a noisy machine): each child is blocked waiting when the parent releases.
/// Returns the medians, litekeep's first.
fn process_handoffs(lk_path: &Path, raw_path: &Path) -> (Duration, Duration) {
    let mut lk_waiter = Waiter::spawn(lk_path, false);
    let mut raw_waiter = Waiter::spawn(raw_path, true);
    let lock = FileLock::open(lk_path).expect("open");
    let file = open(raw_path);
    let (mut lk, mut rw) = (Vec::with_capacity(HANDOFFS), Vec::with_capacity(HANDOFFS));
    for round in 0..HANDOFFS {
        let mut litekeep = || {
            let g = lock.exclusive(Wait::Forever).expect("lock");
            lk.push(lk_waiter.handoff(|| drop(g)));
        };
        let mut raw_flock = || {
            raw(&file, libc::LOCK_EX);
            rw.push(raw_waiter.handoff(|| raw(&file, libc::LOCK_UN)));
        };
        // Alternating which goes first, so neither always follows the other.
        if round % 2 == 0 {
            litekeep();
            raw_flock();
        } else {
            raw_flock();
            litekeep();
        }
    }
    lk_waiter.finish();
    raw_waiter.finish();
    (median(lk), median(rw))
}

/// The child of [`process_handoffs`]: on each "go", takes the lock and reports when it had it.
fn waiter(path: &Path, raw_flock: bool) {
    let lock = FileLock::open(path).expect("open");
    let file = open(path);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        if line.is_err() {
            break;
        }
        let took = if raw_flock {
            raw(&file, libc::LOCK_EX);
            let t = mono_ns();
            raw(&file, libc::LOCK_UN);
            t
        } else {
            let g = lock.exclusive(Wait::Forever).expect("lock");
            let t = mono_ns();
            drop(g);
            t
        };
        writeln!(out, "{took}").expect("write");
        out.flush().expect("flush");
    }
}

/// (p50, p99, max) of the second process's waits against a busy first one.
fn fairness(path: &Path, raw_flock: bool) -> (Duration, Duration, Duration) {
    let kind = if raw_flock { "raw" } else { "litekeep" };
    let mut busy = child(&["--busy", kind, &path.display().to_string()]);
    let mut waits = Vec::with_capacity(TRIALS);
    let lock = FileLock::open(path).expect("open");
    let file = open(path);
    for _ in 0..TRIALS {
        let start = Instant::now();
        if raw_flock {
            raw(&file, libc::LOCK_EX);
            waits.push(start.elapsed());
            raw(&file, libc::LOCK_UN);
        } else {
            let g = lock.exclusive(Wait::Forever).expect("lock");
            waits.push(start.elapsed());
            drop(g);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = busy.kill();
    let _ = busy.wait();
    waits.sort();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), at(1.0))
}

fn ready() {
    println!("ready");
    let _ = std::io::stdout().flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--waiter") => return waiter(Path::new(&args[2]), args[1] == "raw"),
        Some("--busy") => {
            ready();
            return take_turns(
                Path::new(&args[2]),
                args[1] == "raw",
                u32::MAX,
                Duration::from_micros(50),
            );
        }
        _ => {}
    }
    let dir = std::env::temp_dir().join(format!("lk-handoff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = |name: &str| -> PathBuf { dir.join(name) };

    let threads = thread_handoff(&file("threads.lock"), false);
    let threads_raw = thread_handoff(&file("threads-raw.lock"), true);
    let (procs, procs_raw) = process_handoffs(&file("procs.lock"), &file("procs-raw.lock"));
    let (p50, p99, max) = fairness(&file("fair.lock"), false);
    let (rp50, rp99, rmax) = fairness(&file("fair-raw.lock"), true);

    println!("handoff latency, release → waiter holds it (median of {HANDOFFS})");
    println!("  2 threads, one FileLock     {threads:>10.1?}");
    println!("  2 threads, raw flock        {threads_raw:>10.1?}");
    println!("  2 processes, litekeep       {procs:>10.1?}");
    println!("  2 processes, raw flock      {procs_raw:>10.1?}");
    println!(
        "  litekeep / raw flock between processes: {:.2}x",
        procs.as_secs_f64() / procs_raw.as_secs_f64()
    );
    println!(
        "  litekeep / raw flock between threads: {:.2}x",
        threads.as_secs_f64() / threads_raw.as_secs_f64()
    );
    println!("wait of a 2nd process against a busy one ({TRIALS} trials)");
    println!("  litekeep   p50 {p50:>10.1?}  p99 {p99:>10.1?}  max {max:>10.1?}");
    println!("  raw flock  p50 {rp50:>10.1?}  p99 {rp99:>10.1?}  max {rmax:>10.1?}");
    println!(
        "  max wait litekeep / raw flock: {:.3}x",
        max.as_secs_f64() / rmax.as_secs_f64()
    );
    if let Some(at) = args.iter().position(|a| a == "--json") {
        let ns = |d: Duration| d.as_nanos();
        let doc = format!(
            "{{\"handoffs\":{HANDOFFS},\"trials\":{TRIALS},\"threads_ns\":{},\"threads_raw_ns\":{},\"processes_ns\":{},\"processes_raw_ns\":{},\"busy_p50_ns\":{},\"busy_p99_ns\":{},\"busy_max_ns\":{},\"busy_raw_p50_ns\":{},\"busy_raw_p99_ns\":{},\"busy_raw_max_ns\":{}}}",
            ns(threads),
            ns(threads_raw),
            ns(procs),
            ns(procs_raw),
            ns(p50),
            ns(p99),
            ns(max),
            ns(rp50),
            ns(rp99),
            ns(rmax)
        );
        let path = args.get(at + 1).expect("--json takes a file");
        std::fs::write(path, doc).expect("writing the --json file");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
