//! The process-wide state behind one mutex: the configuration, the counters, the disk budget
//! spent and the held writes; and the decisions taken at each operation.

use std::ffi::c_int;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::ffi;

use crate::config::{Config, CrashAt, Op};
use crate::held::Held;

/// The exit code of a process whose power was cut (by a crash point or [`cut_power`]).
///
/// [`cut_power`]: crate::cut_power
pub const EXIT_CRASHED: i32 = 86;

/// What the VFS counted since the last [`configure`](crate::configure) or
/// [`reset_counters`](crate::reset_counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// `xOpen` calls (temporary files included).
    pub open: u64,
    /// `xRead` calls.
    pub read: u64,
    /// `xWrite` calls.
    pub write: u64,
    /// `xSync` calls.
    pub sync: u64,
    /// `xTruncate` calls.
    pub truncate: u64,
    /// `xLock` calls.
    pub lock: u64,
    /// Faults injected: failed operations and `SQLITE_FULL`s.
    pub faults: u64,
    /// Of which `SQLITE_FULL`s.
    pub disk_full: u64,
    /// Bytes written past a file's end (the full-disk budget's measure).
    pub growth: u64,
    /// Operations held right now (written or truncated, not yet synced) that a cut could lose.
    pub held: u64,
}

impl Counters {
    /// The count of one kind.
    pub fn get(&self, op: Op) -> u64 {
        match op {
            Op::Open => self.open,
            Op::Read => self.read,
            Op::Write => self.write,
            Op::Sync => self.sync,
            Op::Truncate => self.truncate,
            Op::Lock => self.lock,
        }
    }

    fn bump(&mut self, op: Op) -> u64 {
        let slot = match op {
            Op::Open => &mut self.open,
            Op::Read => &mut self.read,
            Op::Write => &mut self.write,
            Op::Sync => &mut self.sync,
            Op::Truncate => &mut self.truncate,
            Op::Lock => &mut self.lock,
        };
        *slot += 1;
        *slot
    }

    /// Writes, syncs and truncates together: the points [`CrashAt::Random`] chooses among.
    pub fn mutations(&self) -> u64 {
        self.write + self.sync + self.truncate
    }
}

pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    /// The mutation a `CrashAt::Random` cuts at.
    random_target: Option<u64>,
    pub(crate) held: Held,
}

static STATE: Mutex<State> = Mutex::new(State {
    config: Config::new(),
    counters: Counters {
        open: 0,
        read: 0,
        write: 0,
        sync: 0,
        truncate: 0,
        lock: 0,
        faults: 0,
        disk_full: 0,
        growth: 0,
        held: 0,
    },
    random_target: None,
    held: Held::new(),
});

/// The state, locked. A panic elsewhere never stops the VFS: poisoning is ignored.
pub(crate) fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Seeds the random crash point; the cut uses a stream of its own.
const CUT_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

impl State {
    /// Takes `config`, zeroes the counters, forgets held writes (what they hold is durable
    /// from now on) and draws the random crash point.
    pub(crate) fn configure(&mut self, config: Config) {
        self.random_target = match config.crash {
            Some(CrashAt::Random(within)) => {
                Some(fastrand::Rng::with_seed(config.seed).u64(1..=within))
            }
            _ => None,
        };
        self.counters = Counters::default();
        self.held.clear();
        self.config = config;
    }

    pub(crate) fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }

    /// Whether writes are being held for a cut.
    pub(crate) fn holding(&self) -> bool {
        self.config.crash.is_some()
    }

    /// Counts one `op`; cuts the power if it is the crash point (never returning), or gives the
    /// error code if it is to fail.
    pub(crate) fn enter(&mut self, op: Op, file: Option<&Path>) -> Result<(), c_int> {
        if let Some(name) = &self.config.thread
            && std::thread::current().name() != Some(name.as_str())
        {
            return Ok(());
        }
        let n = self.counters.bump(op);
        let at_point = match self.config.crash {
            Some(CrashAt::Nth(kind, nth)) => kind == op && nth == n,
            Some(CrashAt::Random(_)) => {
                op.is_mutation() && self.random_target == Some(self.counters.mutations())
            }
            Some(CrashAt::Manual) | None => false,
        };
        if at_point {
            let file = file.map_or("a temporary file".into(), Path::to_string_lossy);
            let thread = std::thread::current();
            let on = thread
                .name()
                .map_or(String::new(), |t| format!(" on thread {t}"));
            self.cut(&format!("instead of {op} #{n} (of {file}){on}"));
        }
        let fails = self
            .config
            .fails
            .iter()
            .any(|f| f.op == op && (f.nth == n || (f.persistent && n > f.nth)));
        if fails {
            self.counters.faults += 1;
            return Err(op.error_code());
        }
        Ok(())
    }

    /// Charges `growth` bytes to the disk budget, or says the disk is full.
    pub(crate) fn check_budget(&mut self, growth: u64) -> Result<(), c_int> {
        match self.config.disk_budget {
            Some(budget) if growth > 0 && self.counters.growth + growth > budget => {
                self.counters.faults += 1;
                self.counters.disk_full += 1;
                Err(ffi::SQLITE_FULL)
            }
            _ => Ok(()),
        }
    }

    /// Counters, with the number of held operations filled in.
    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            held: self.held.len() as u64,
            ..self.counters
        }
    }

    /// Leaves on disk what a power cut would, says so on stderr and ends the process with
    /// [`EXIT_CRASHED`]. The caller holds the state lock, so no other thread of this process
    /// can write through the VFS meanwhile.
    pub(crate) fn cut(&mut self, when: &str) -> ! {
        let mut rng = fastrand::Rng::with_seed(self.config.seed ^ CUT_STREAM);
        let report = self.held.cut(self.config.keep, self.config.tear, &mut rng);
        let torn = match &report.torn {
            Some((path, offset, written, len)) => format!(
                ", tore the write of {len} bytes at {offset} in {} after {written} bytes",
                path.display()
            ),
            None => String::new(),
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "litekeep-faults: power cut {when}: {} of {} unsynced operations in {} files \
             reached the disk{torn}",
            report.kept, report.held, report.files
        );
        if report.deletions.0 > 0 {
            let _ = writeln!(
                err,
                "litekeep-faults: {} of {} deletions not made durable by a directory sync were \
                 lost (the files came back)",
                report.deletions.1, report.deletions.0
            );
        }
        for e in &report.errors {
            let _ = writeln!(err, "litekeep-faults: could not restore {e}");
        }
        let _ = err.flush();
        // SAFETY: `_exit` ends the process at once, running no destructor or atexit handler (a
        // power cut runs nothing either); nothing of this process runs after it, so no state
        // it leaves behind can be observed.
        unsafe { libc::_exit(EXIT_CRASHED) }
    }
}
