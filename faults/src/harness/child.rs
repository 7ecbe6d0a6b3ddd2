//! Children: the test binary re-executed with a role ([`Spawn`], [`Child`], [`Exit`]), and what
//! a child uses to talk back ([`role`], [`say`], [`say_counters`], [`stop_on_stdin_close`]).

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{Counters, ENV_VAR, EXIT_CRASHED};

/// The variable that names a child's role; unset in an ordinary test run.
pub const ROLE_VAR: &str = "LK_HARNESS_ROLE";
/// The variable [`Spawn::db`] sets and [`db`] reads: the database a child works on.
pub const DB_VAR: &str = "LK_HARNESS_DB";
/// Marks the stdout lines a child means for its parent.
pub const MARK: &str = "@@lk:";
/// The name of the test a child runs (`--exact`): the entry point that returns at once
/// without a role.
pub const ENTRY: &str = "child_process_entry";
/// The default bound on every wait for a child: generous, so that a loaded 2-core machine
/// cannot fail a correct run, finite, so that a wrong one cannot hang.
pub const BOUND: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The child side.

/// This process's role when it is a child ([`ROLE_VAR`]); `None` in an ordinary test run, when
/// the entry point must return at once.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// The database the parent named with [`Spawn::db`].
///
/// # Panics
/// When [`DB_VAR`] is not set.
pub fn db() -> PathBuf {
    env_path(DB_VAR)
}

/// A path the parent passed in the environment variable `var`.
///
/// # Panics
/// When `var` is not set.
pub fn env_path(var: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set")))
}

/// Prints `msg` for the parent: one stdout line, marked, flushed at once (a child may be cut
/// or killed right after). A line break in `msg` is written as the two characters `\n`, so
/// that a multi-line error message reaches the parent whole.
pub fn say(msg: impl Display) {
    let msg = msg.to_string().replace('\n', "\\n");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARK}{msg}");
    let _ = out.flush();
}

/// Says the VFS's counters (since the last `configure`) after `key`; the parent reads them
/// back with [`Exit::counters`].
pub fn say_counters(key: &str) {
    say(format!("{key} {}", counters_line(&crate::counters())));
}

/// The counters as the words [`parse_counters`] reads: open read write sync truncate lock
/// faults disk_full growth held.
pub fn counters_line(c: &Counters) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} {}",
        c.open,
        c.read,
        c.write,
        c.sync,
        c.truncate,
        c.lock,
        c.faults,
        c.disk_full,
        c.growth,
        c.held
    )
}

/// The counters back from [`counters_line`]'s words.
pub fn parse_counters(words: &str) -> Option<Counters> {
    let n: Vec<u64> = words
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [
        open,
        read,
        write,
        sync,
        truncate,
        lock,
        faults,
        disk_full,
        growth,
        held,
    ] = n[..]
    else {
        return None;
    };
    Some(Counters {
        open,
        read,
        write,
        sync,
        truncate,
        lock,
        faults,
        disk_full,
        growth,
        held,
    })
}

/// A flag that turns true when this process's stdin closes (the parent's [`Child::wait`] or
/// drop of the [`Child`]), for a child that works until told to stop.
pub fn stop_on_stdin_close() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    thread::spawn(move || {
        until_stdin_closes();
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// A start line for children that must begin together: blocks until the file named by the
/// environment variable `var` exists (the parent creates it once every child is ready), at most
/// [`BOUND`]. Returns at once when `var` is not set.
pub fn wait_for_go(var: &str) {
    let Some(go) = std::env::var_os(var) else {
        return;
    };
    let until = Instant::now() + BOUND;
    while !Path::new(&go).exists() && Instant::now() < until {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Blocks until this process's stdin reaches end of file.
pub fn until_stdin_closes() {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// How to start a child; [`Child::build`] makes one, [`Spawn::spawn`] starts it.
#[derive(Debug, Clone)]
#[must_use = "a child starts with .spawn() or .run()"]
pub struct Spawn {
    role: String,
    /// Another program with its arguments, run instead of this test binary
    /// ([`Child::program`]).
    program: Option<(OsString, Vec<OsString>)>,
    envs: Vec<(OsString, OsString)>,
    faults: Option<String>,
    entry: String,
    bound: Duration,
    inherit_stderr: bool,
    /// Run as this user and group instead of this process's ([`Spawn::as_user`]).
    user: Option<(u32, u32)>,
}

impl Spawn {
    /// Sets an environment variable of the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spawn {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Names the child's database ([`DB_VAR`], read back with [`db`]).
    pub fn db(self, path: impl AsRef<Path>) -> Spawn {
        self.env(DB_VAR, path.as_ref())
    }

    /// The child's [`LK_FAULTS`](crate::ENV_VAR): a [`Config`](crate::Config) or its text form.
    /// Without it the child gets none, whatever this process's environment says.
    pub fn faults(mut self, faults: impl Display) -> Spawn {
        self.faults = Some(faults.to_string());
        self
    }

    /// The test the child runs, when not [`ENTRY`] (a test in a module: `module::entry`).
    pub fn entry(mut self, name: impl Into<String>) -> Spawn {
        self.entry = name.into();
        self
    }

    /// The bound on each wait for this child (default [`BOUND`]).
    pub fn bound(mut self, bound: Duration) -> Spawn {
        self.bound = bound;
        self
    }

    /// Let the child's stderr through to this process's instead of collecting it into
    /// [`Exit::stderr`].
    pub fn inherit_stderr(mut self, inherit: bool) -> Spawn {
        self.inherit_stderr = inherit;
        self
    }

    /// Runs the child as user `uid` and group `gid` (this process must be root): file
    /// permissions then apply to it, as they never do to root. The test binary is run from a
    /// copy that user can execute ([`runnable_copy`]); a [`Child::program`] is run as it is.
    pub fn as_user(mut self, uid: u32, gid: u32) -> Spawn {
        self.user = Some((uid, gid));
        self
    }

    /// Starts the child.
    ///
    /// # Panics
    /// When the test binary cannot be found or started.
    pub fn spawn(self) -> Child {
        let mut cmd = match &self.program {
            None => {
                let exe = match self.user {
                    Some(_) => runnable_copy(),
                    None => std::env::current_exe().expect("current_exe"),
                };
                let mut cmd = Command::new(&exe);
                if self.user.is_some()
                    && let Some(dir) = exe.parent()
                {
                    // The copies of the libraries that user could not read where they were.
                    let mut paths = OsString::from(dir);
                    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
                        paths.push(":");
                        paths.push(old);
                    }
                    cmd.env("LD_LIBRARY_PATH", paths);
                }
                cmd.args([
                    "--exact",
                    self.entry.as_str(),
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROLE_VAR, &self.role);
                cmd
            }
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).process_group(0);
                cmd
            }
        };
        cmd.env_remove(ENV_VAR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if self.inherit_stderr {
                Stdio::inherit()
            } else {
                Stdio::piped()
            });
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = self.user {
            // std drops root's supplementary groups when it sets the uid.
            cmd.uid(uid).gid(gid);
        }
        if let Some(faults) = &self.faults {
            cmd.env(ENV_VAR, faults);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn child {}: {e}", self.role));
        let out = child.stdout.take().expect("child stdout");
        let all = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = {
            let all = all.clone();
            thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    // The test harness may print its own text before ours on the same line.
                    if let Some(at) = line.find(MARK) {
                        let ours = line[at + MARK.len()..].to_owned();
                        all.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(ours.clone());
                        let _ = tx.send(ours);
                    }
                }
            })
        };
        let err_text = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().map(|mut err| {
            let text = err_text.clone();
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = err.read(&mut chunk) {
                    text.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]);
                }
            })
        });
        Child {
            group: self.program.is_some(),
            role: self.role,
            faults: self.faults,
            bound: self.bound,
            started: Instant::now(),
            child,
            lines,
            all,
            stdout: Some(stdout),
            stderr,
            err_text,
        }
    }

    /// Starts the child and waits for its end ([`Child::wait`]).
    pub fn run(self) -> Exit {
        self.spawn().wait()
    }
}

/// A copy of this test binary that every user can execute, made once per process: the
/// original usually sits under a directory (root's home, a private target dir) that other users
/// cannot enter. It lives in a directory of its own under the temporary directory, beside
/// copies of the shared libraries this process loaded from places other users cannot read
/// (a prebuilt `libduckdb.so` in root's cache): a child run with [`Spawn::as_user`] finds them
/// there through `LD_LIBRARY_PATH`.
///
/// # Panics
/// When the copy cannot be made.
pub fn runnable_copy() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let dir = std::env::temp_dir().join(format!("lk-exe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        super::remove_at_exit(&dir);
        let copy = dir.join(exe.file_name().unwrap_or_else(|| OsStr::new("test-binary")));
        std::fs::copy(&exe, &copy)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", exe.display(), copy.display()));
        for (path, mode) in [(&dir, 0o755), (&copy, 0o755)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        }
        for lib in private_libraries() {
            let to = dir.join(lib.file_name().unwrap_or_else(|| OsStr::new("lib.so")));
            std::fs::copy(&lib, &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", lib.display(), to.display()));
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
        }
        copy
    })
    .clone()
}

/// The shared libraries mapped into this process that other users cannot read where they are.
fn private_libraries() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/') && path.contains(".so"))
        .map(PathBuf::from)
        .filter(|path| !readable_by_others(path))
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

/// Whether a user who is neither the owner nor in the group can read `path`: every directory
/// above it lets others search it, and the file lets others read it.
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let file_ok = mode(path).is_ok_and(|m| m & 0o004 != 0);
    file_ok
        && path
            .ancestors()
            .skip(1)
            .all(|dir| mode(dir).is_ok_and(|m| m & 0o001 != 0))
}

/// Whether the process `pid` is still running: it exists and is not a zombie waiting to be
/// reaped (a child that ended on its own, or was SIGKILLed by another process).
pub fn running(pid: u32) -> bool {
    // `/proc/<pid>/stat` is `pid (comm) S …`: the state follows the last `)`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Whether this process runs as root (effective uid 0): file permissions do not apply to it.
pub fn is_root() -> bool {
    // `/proc/self/status` holds `Uid: real effective saved fs`.
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

/// A running child: this test binary re-executed with a role.
#[derive(Debug)]
pub struct Child {
    /// It leads a process group of its own ([`Child::program`]): kills go to the group.
    group: bool,
    role: String,
    faults: Option<String>,
    bound: Duration,
    started: Instant,
    child: std::process::Child,
    lines: Receiver<String>,
    all: Arc<Mutex<Vec<String>>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<()>>,
    /// What it wrote to stderr so far (when collected).
    err_text: Arc<Mutex<Vec<u8>>>,
}

impl Child {
    /// A child with `role`, to configure before [`Spawn::spawn`].
    pub fn build(role: impl Into<String>) -> Spawn {
        Spawn {
            role: role.into(),
            program: None,
            envs: Vec::new(),
            faults: None,
            entry: ENTRY.to_owned(),
            bound: BOUND,
            inherit_stderr: false,
            user: None,
        }
    }

    /// A child that is another program (`flock(1)`, a shell), not this test binary: `program`
    /// with `args`, without a role, entry point or test-harness arguments, named `what` in
    /// messages. Its marked lines are read as a test child's are (`sh -c 'echo @@lk:READY;
    /// …'`). It runs in a process group of its own, which it leads: [`Child::kill`] (and the
    /// drop of a `Child` still running) SIGKILLs the whole group, the program and whatever it
    /// started, so that nothing it started keeps a lock or a file after the kill.
    pub fn program<S: AsRef<OsStr>>(
        what: impl Into<String>,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Spawn {
        let args = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        Spawn {
            program: Some((program.as_ref().to_owned(), args)),
            ..Child::build(what)
        }
    }

    /// Starts a child with `role` and environment variables `envs`.
    pub fn spawn<K, V>(role: &str, envs: impl IntoIterator<Item = (K, V)>) -> Child
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        envs.into_iter()
            .fold(Child::build(role), |s, (k, v)| s.env(k, v))
            .spawn()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The role it was given.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The next marked line, or `None` when none came within `timeout` or the child closed its
    /// stdout (ended).
    pub fn try_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The next marked line.
    ///
    /// # Panics
    /// When none comes within the bound, showing its stderr so far (the panic drops the
    /// `Child`, which kills it).
    pub fn line(&self) -> String {
        match self.lines.recv_timeout(self.bound) {
            Ok(line) => line,
            Err(e) => {
                let why = match e {
                    RecvTimeoutError::Timeout => format!("said nothing within {:?}", self.bound),
                    RecvTimeoutError::Disconnected => "ended without a word".to_owned(),
                };
                let stderr = self.stderr_so_far();
                let tail: Vec<&str> = stderr.lines().collect();
                panic!(
                    "child {} (pid {}) {why}; stderr:\n  {}",
                    self.role,
                    self.pid(),
                    tail[tail.len().saturating_sub(30)..].join("\n  ")
                );
            }
        }
    }

    /// What it wrote to stderr so far (empty when inherited).
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.err_text.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// The next marked line, which must start with `prefix`; gives the whole line.
    ///
    /// # Panics
    /// As [`Child::line`], and when the line says something else.
    pub fn expect_line(&self, prefix: &str) -> String {
        let line = self.line();
        assert!(
            line.starts_with(prefix),
            "child {} said {line:?}, wanted {prefix:?}",
            self.role
        );
        line
    }

    /// Closes its stdin (a child waiting in [`stop_on_stdin_close`] stops).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Closes its stdin, reads the next marked line (a child that works until its stdin closes
    /// says how it went) and waits for its end; gives that line.
    ///
    /// # Panics
    /// As [`Child::line`] and [`Child::wait`].
    pub fn finish(mut self) -> String {
        self.close_stdin();
        let last = self.line();
        self.wait();
        last
    }

    /// Closes its stdin and waits for its end, at most the bound.
    ///
    /// # Panics
    /// When it does not end within the bound (it is killed first).
    pub fn wait(mut self) -> Exit {
        self.close_stdin();
        let deadline = Instant::now() + self.bound;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.end(false),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
                Ok(None) => {
                    let exit = self.end(true);
                    panic!(
                        "child did not end within {:?}: {}",
                        self.bound,
                        exit.describe()
                    );
                }
                Err(e) => panic!("waiting for child {}: {e}", self.role),
            }
        }
    }

    /// SIGKILL now. [`Exit::killed`] tells whether it was still running.
    pub fn kill(mut self) -> Exit {
        self.end(true)
    }

    /// SIGKILL after `delay`.
    pub fn kill_after(mut self, delay: Duration) -> Exit {
        thread::sleep(delay);
        let mut exit = self.end(true);
        exit.killed_after = Some(delay);
        exit
    }

    /// SIGKILL after a delay in `[0, within)` drawn from `rng` ([`super::random_delay`]).
    pub fn kill_at_random(self, rng: &mut fastrand::Rng, within: Duration) -> Exit {
        let delay = super::random_delay(rng, within);
        self.kill_after(delay)
    }

    /// Kills (if `kill`) and reaps the child, then collects what it said.
    fn end(&mut self, kill: bool) -> Exit {
        if kill {
            let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
            // A group leader's pid is its group's id; kill(2) takes a group as its negation.
            let target = if self.group { -pid } else { pid };
            // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child, not
            // yet reaped (it is reaped only below), so it cannot name another process, nor
            // (while the leader is unreaped) can its group id name another group.
            unsafe { libc::kill(target, libc::SIGKILL) };
        }
        self.close_stdin();
        let status = self.child.wait().expect("wait for child");
        let elapsed = self.started.elapsed();
        // The readers end at end of file, unless a grandchild still holds the pipes: then
        // what they have read so far is all.
        for reader in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            join_within(reader, Duration::from_secs(2));
        }
        let stderr = self.stderr_so_far();
        let lines = std::mem::take(&mut *self.all.lock().unwrap_or_else(PoisonError::into_inner));
        Exit {
            role: self.role.clone(),
            faults: self.faults.clone(),
            status,
            lines,
            stderr,
            elapsed,
            killed_after: None,
        }
    }
}

/// Joins `reader` if it ends within `limit`; otherwise leaves it be.
fn join_within(reader: JoinHandle<()>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !reader.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    if reader.is_finished() {
        let _ = reader.join();
    }
}

impl Drop for Child {
    /// A child left running (a test that panicked mid-way) is killed, not leaked.
    fn drop(&mut self) {
        if self.stdout.is_some() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.end(true);
        }
    }
}

/// How a child ended and everything it said.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Its role.
    pub role: String,
    /// The `LK_FAULTS` it was given.
    pub faults: Option<String>,
    /// Its exit status.
    pub status: ExitStatus,
    /// Every marked line it said, in order, without the mark (those already read with
    /// [`Child::line`] too).
    pub lines: Vec<String>,
    /// Its stderr (empty when it was inherited).
    pub stderr: String,
    /// From start to end.
    pub elapsed: Duration,
    /// The delay before [`Child::kill_after`] or [`Child::kill_at_random`] killed it.
    pub killed_after: Option<Duration>,
}

impl Exit {
    /// Its exit code; `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether the VFS cut its power: it exited with [`EXIT_CRASHED`].
    pub fn crashed(&self) -> bool {
        self.code() == Some(EXIT_CRASHED)
    }

    /// Whether SIGKILL ended it (it was still running when killed).
    pub fn killed(&self) -> bool {
        self.status.signal() == Some(libc::SIGKILL)
    }

    /// Whether it exited with 0 (its test passed).
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Checks that it exited with 0.
    ///
    /// # Panics
    /// Otherwise, showing what it said.
    #[track_caller]
    pub fn assert_success(&self) -> &Exit {
        assert!(self.success(), "child failed: {}", self.describe());
        self
    }

    /// The first marked line starting with `key`, without the key.
    pub fn find(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix(key))
    }

    /// Every marked line starting with `key`, without the key.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines.iter().filter_map(move |l| l.strip_prefix(key))
    }

    /// The numbers after `key` on the first line that starts with it.
    ///
    /// # Panics
    /// When there is no such line or a word is not a number.
    #[track_caller]
    pub fn field(&self, key: &str) -> Vec<u64> {
        let rest = self
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} line: {}", self.describe()));
        rest.split_whitespace()
            .map(|w| {
                w.parse()
                    .unwrap_or_else(|_| panic!("{key:?} line: {w:?} is not a number"))
            })
            .collect()
    }

    /// The counters a child said with [`say_counters`]`(key)`.
    ///
    /// # Panics
    /// When there is no such line.
    #[track_caller]
    pub fn counters(&self, key: &str) -> Counters {
        self.find(&format!("{key} "))
            .and_then(parse_counters)
            .unwrap_or_else(|| panic!("no {key} counters: {}", self.describe()))
    }

    /// One paragraph for a failure message: role, faults, how it ended, its lines and its
    /// stderr's last lines.
    pub fn describe(&self) -> String {
        let ended = match (self.code(), self.status.signal()) {
            (Some(EXIT_CRASHED), _) => format!("power cut (exit {EXIT_CRASHED})"),
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "unknown end".to_owned(),
        };
        let stderr: Vec<&str> = self.stderr.lines().collect();
        let tail = stderr[stderr.len().saturating_sub(30)..].join("\n  ");
        format!(
            "role {:?}, LK_FAULTS={:?}, {ended} after {:?}; said {:?}; stderr:\n  {tail}",
            self.role,
            self.faults.as_deref().unwrap_or(""),
            self.elapsed,
            self.lines,
        )
    }
}
