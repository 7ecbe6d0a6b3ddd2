//! What to inject: [`Config`], its parts, and its text form (the [`ENV_VAR`](crate::ENV_VAR)
//! syntax).
//!
//! ```text
//! LK_FAULTS = item { ";" item }          blanks around items and empty items are ignored
//! item      = "crash=" op ":" N          cut the power instead of the Nth `op` (1-based, all files)
//!           | "crash=random:" N          ... instead of the k-th write/sync/truncate, k drawn
//!                                        from 1..=N with the seed
//!           | "crash=manual"             hold unsynced writes; the cut comes from `cut_power()`
//!           | "keep=" ("random"|"all"|"none")
//!                                        which unsynced writes reach the disk at the cut
//!                                        (default random: each one with probability 1/2)
//!           | "tear" | "tear=" ("0"|"1") tear one of the writes that reach the disk: only a
//!                                        prefix of whole 512-byte sectors of it is written
//!           | "seed=" N                  seed of every random choice (default 0)
//!           | "fail=" op ":" N           the Nth `op` fails (once)
//!           | "fail=" op ":" N "+"       every `op` from the Nth on fails
//!           | "full=" BYTES              SQLITE_FULL once BYTES of file growth are spent
//!           | "default"                  make the VFS the process's default (`init_from_env`)
//!           | "thread=" NAME             count, fail and cut only the operations made on the
//!                                        thread of that name (others pass uncounted)
//! op        = "open" | "read" | "write" | "sync" | "truncate" | "lock"
//! ```
//!
//! For example `crash=write:57;seed=3;tear`, `fail=sync:2+;full=65536` or
//! `thread=litekeep-checkpoint;crash=random:40`. Paths are not part of the syntax, so no quoting
//! is needed; a thread's name holds no `;`.

use std::fmt;
use std::str::FromStr;

use rusqlite::ffi;

/// A kind of file operation that the VFS counts, and can fail or cut the power at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `xOpen` (of any file, temporary files included). Fails with `SQLITE_CANTOPEN`.
    Open,
    /// `xRead`. Fails with `SQLITE_IOERR_READ`.
    Read,
    /// `xWrite`. Fails with `SQLITE_IOERR_WRITE`.
    Write,
    /// `xSync`. Fails with `SQLITE_IOERR_FSYNC`.
    Sync,
    /// `xTruncate`. Fails with `SQLITE_IOERR_TRUNCATE`.
    Truncate,
    /// `xLock` (every call, whatever level it asks for). Fails with `SQLITE_IOERR_LOCK`.
    Lock,
}

impl Op {
    /// Every kind, in [`Counters`](crate::Counters) order.
    pub const ALL: [Op; 6] = [
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Sync,
        Op::Truncate,
        Op::Lock,
    ];

    /// Its name in the text form: `open`, `read`, `write`, `sync`, `truncate`, `lock`.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Sync => "sync",
            Op::Truncate => "truncate",
            Op::Lock => "lock",
        }
    }

    /// The (extended) result code an injected failure of this kind returns to SQLite.
    pub const fn error_code(self) -> i32 {
        match self {
            Op::Open => ffi::SQLITE_CANTOPEN,
            Op::Read => ffi::SQLITE_IOERR_READ,
            Op::Write => ffi::SQLITE_IOERR_WRITE,
            Op::Sync => ffi::SQLITE_IOERR_FSYNC,
            Op::Truncate => ffi::SQLITE_IOERR_TRUNCATE,
            Op::Lock => ffi::SQLITE_IOERR_LOCK,
        }
    }

    /// Whether it changes what a power cut can lose (write, sync, truncate): the operations
    /// [`CrashAt::Random`] chooses among.
    pub const fn is_mutation(self) -> bool {
        matches!(self, Op::Write | Op::Sync | Op::Truncate)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Op, ParseError> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| {
                ParseError(format!(
                    "unknown operation `{s}`: use open, read, write, sync, truncate or lock"
                ))
            })
    }
}

/// When the power is cut. Any of them makes the VFS hold (log) unsynced writes from the moment
/// the configuration is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashAt {
    /// Instead of the Nth operation of this kind, counted over all files from the last
    /// [`configure`](crate::configure), 1-based.
    Nth(Op, u64),
    /// Instead of the k-th mutation (write, sync or truncate, counted together), k drawn
    /// uniformly from `1..=N` with the seed. Take N from a counting run's
    /// [`Counters::mutations`](crate::Counters::mutations).
    Random(u64),
    /// Only when the program calls [`cut_power`](crate::cut_power).
    Manual,
}

/// Which of the writes held since each file's last sync reach the disk at the cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Each one independently, with probability 1/2 (seeded), applied in their order.
    #[default]
    Random,
    /// All of them (the cut loses nothing written; only a tear can damage).
    All,
    /// None of them: every file is as it was at its last sync.
    None,
}

impl Keep {
    const fn name(self) -> &'static str {
        match self {
            Keep::Random => "random",
            Keep::All => "all",
            Keep::None => "none",
        }
    }
}

/// Fail an operation: the `nth` one of kind `op` (1-based, counted over all files from the last
/// [`configure`](crate::configure)), or every one from the `nth` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail {
    /// Which kind.
    pub op: Op,
    /// Which one, 1-based.
    pub nth: u64,
    /// Also every later one (not just the `nth`).
    pub persistent: bool,
}

/// The process-wide fault plan. [`Default`] injects nothing: the VFS only counts.
///
/// Build one with the methods or parse the text form ([`FromStr`]); [`Display`](fmt::Display)
/// gives the text form back, ready for a child's [`ENV_VAR`](crate::ENV_VAR).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// When to cut the power, if ever.
    pub crash: Option<CrashAt>,
    /// Which held writes survive the cut.
    pub keep: Keep,
    /// Tear one surviving write at a sector boundary.
    pub tear: bool,
    /// Seed of the random choices (crash point, surviving writes, tear).
    pub seed: u64,
    /// Operations to fail; the first that matches an operation wins.
    pub fails: Vec<Fail>,
    /// Bytes of growth (written past a file's end, summed over files) before writes get
    /// `SQLITE_FULL`.
    pub disk_budget: Option<u64>,
    /// Make the VFS the process's default when installed from the environment.
    pub default_vfs: bool,
    /// Count, fail and cut only the operations made on the thread of this name: the others
    /// pass uncounted (their unsynced writes are still held for a cut, and the disk budget
    /// counts them). `None`: every thread.
    pub thread: Option<String>,
}

impl Config {
    /// Injects nothing.
    pub const fn new() -> Config {
        Config {
            crash: None,
            keep: Keep::Random,
            tear: false,
            seed: 0,
            fails: Vec::new(),
            disk_budget: None,
            default_vfs: false,
            thread: None,
        }
    }

    /// Cut the power instead of the `nth` operation of kind `op`.
    pub fn crash_at(mut self, op: Op, nth: u64) -> Config {
        self.crash = Some(CrashAt::Nth(op, nth));
        self
    }

    /// Cut the power at a seeded random mutation among the first `within`.
    pub fn crash_random(mut self, within: u64) -> Config {
        self.crash = Some(CrashAt::Random(within));
        self
    }

    /// Hold unsynced writes; the power goes when the program calls
    /// [`cut_power`](crate::cut_power).
    pub fn crash_manual(mut self) -> Config {
        self.crash = Some(CrashAt::Manual);
        self
    }

    /// Which held writes survive the cut.
    pub fn keep(mut self, keep: Keep) -> Config {
        self.keep = keep;
        self
    }

    /// Tear one surviving write.
    pub fn tear(mut self, tear: bool) -> Config {
        self.tear = tear;
        self
    }

    /// The seed.
    pub fn seed(mut self, seed: u64) -> Config {
        self.seed = seed;
        self
    }

    /// Fail the `nth` operation of kind `op` only.
    pub fn fail_once(mut self, op: Op, nth: u64) -> Config {
        self.fails.push(Fail {
            op,
            nth,
            persistent: false,
        });
        self
    }

    /// Fail every operation of kind `op` from the `nth` on.
    pub fn fail_from(mut self, op: Op, nth: u64) -> Config {
        self.fails.push(Fail {
            op,
            nth,
            persistent: true,
        });
        self
    }

    /// Report a full disk once `bytes` of growth are spent.
    pub fn disk_budget(mut self, bytes: u64) -> Config {
        self.disk_budget = Some(bytes);
        self
    }

    /// Make the VFS the default VFS when installed by [`init_from_env`](crate::init_from_env).
    pub fn default_vfs(mut self, yes: bool) -> Config {
        self.default_vfs = yes;
        self
    }

    /// Count, fail and cut only the operations made on the thread named `name` (say a
    /// library's background thread): crash points and failures number that thread's
    /// operations alone.
    pub fn on_thread(mut self, name: &str) -> Config {
        self.thread = Some(name.to_owned());
        self
    }
}

/// A text form that does not follow the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad fault configuration: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

fn number(s: &str, what: &str) -> Result<u64, ParseError> {
    s.trim()
        .parse()
        .map_err(|_| ParseError(format!("{what}: `{s}` is not a number")))
}

fn positive(s: &str, what: &str) -> Result<u64, ParseError> {
    match number(s, what)? {
        0 => Err(ParseError(format!("{what}: counts start at 1"))),
        n => Ok(n),
    }
}

fn op_and_count<'a>(value: &'a str, item: &str) -> Result<(Op, &'a str), ParseError> {
    let (op, n) = value
        .split_once(':')
        .ok_or_else(|| ParseError(format!("{item}: expected `{item}=OP:N`")))?;
    Ok((op.trim().parse()?, n.trim()))
}

impl FromStr for Config {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Config, ParseError> {
        parse(text)
    }
}

/// The text form, item by item.
fn parse<'t>(text: &'t str) -> Result<Config, ParseError> {
    let mut cfg = Config::new();
    for item in text.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (item, None),
        };
        let need = |v: Option<&'t str>| -> Result<&'t str, ParseError> {
            v.ok_or_else(|| ParseError(format!("`{key}` needs a value (`{key}=...`)")))
        };
        match key {
            "crash" => {
                let value = need(value)?;
                cfg.crash = Some(if value == "manual" {
                    CrashAt::Manual
                } else if let Some(n) = value.strip_prefix("random:") {
                    CrashAt::Random(positive(n, "crash=random")?)
                } else {
                    let (op, n) = op_and_count(value, "crash")?;
                    CrashAt::Nth(op, positive(n, "crash")?)
                });
            }
            "keep" => {
                cfg.keep = match need(value)? {
                    "random" => Keep::Random,
                    "all" => Keep::All,
                    "none" => Keep::None,
                    other => {
                        return Err(ParseError(format!(
                            "keep: `{other}`: use random, all or none"
                        )));
                    }
                }
            }
            "tear" => {
                cfg.tear = match value {
                    None | Some("1") => true,
                    Some("0") => false,
                    Some(other) => {
                        return Err(ParseError(format!("tear: `{other}`: use 0 or 1")));
                    }
                }
            }
            "seed" => cfg.seed = number(need(value)?, "seed")?,
            "fail" => {
                let (op, n) = op_and_count(need(value)?, "fail")?;
                let (n, persistent) = match n.strip_suffix('+') {
                    Some(n) => (n, true),
                    None => (n, false),
                };
                cfg.fails.push(Fail {
                    op,
                    nth: positive(n, "fail")?,
                    persistent,
                });
            }
            "full" => cfg.disk_budget = Some(number(need(value)?, "full")?),
            "default" => {
                cfg.default_vfs = match value {
                    None | Some("1") => true,
                    Some("0") => false,
                    Some(other) => {
                        return Err(ParseError(format!("default: `{other}`: use 0 or 1")));
                    }
                }
            }
            "thread" => {
                let name = need(value)?;
                if name.is_empty() {
                    return Err(ParseError("thread: the name is empty".to_owned()));
                }
                cfg.thread = Some(name.to_owned());
            }
            other => {
                return Err(ParseError(format!(
                    "unknown item `{other}`: use crash, keep, tear, seed, fail, full, default or thread"
                )));
            }
        }
    }
    Ok(cfg)
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items = Vec::new();
        match self.crash {
            Some(CrashAt::Nth(op, n)) => items.push(format!("crash={op}:{n}")),
            Some(CrashAt::Random(n)) => items.push(format!("crash=random:{n}")),
            Some(CrashAt::Manual) => items.push("crash=manual".to_owned()),
            None => {}
        }
        if self.keep != Keep::Random {
            items.push(format!("keep={}", self.keep.name()));
        }
        if self.tear {
            items.push("tear".to_owned());
        }
        if self.seed != 0 {
            items.push(format!("seed={}", self.seed));
        }
        for fail in &self.fails {
            let plus = if fail.persistent { "+" } else { "" };
            items.push(format!("fail={}:{}{plus}", fail.op, fail.nth));
        }
        if let Some(bytes) = self.disk_budget {
            items.push(format!("full={bytes}"));
        }
        if self.default_vfs {
            items.push("default".to_owned());
        }
        if let Some(name) = &self.thread {
            items.push(format!("thread={name}"));
        }
        f.write_str(&items.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let cfg: Config = "crash=write:57;seed=3;tear=1".parse().unwrap();
        assert_eq!(
            cfg,
            Config::new().crash_at(Op::Write, 57).seed(3).tear(true)
        );
    }

    #[test]
    fn round_trips_every_item() {
        let cfg = Config::new()
            .crash_random(40)
            .keep(Keep::None)
            .tear(true)
            .seed(9)
            .fail_once(Op::Read, 3)
            .fail_from(Op::Sync, 2)
            .disk_budget(4096)
            .default_vfs(true)
            .on_thread("litekeep-checkpoint");
        let text = cfg.to_string();
        assert_eq!(
            text,
            "crash=random:40;keep=none;tear;seed=9;fail=read:3;fail=sync:2+;full=4096;default;\
             thread=litekeep-checkpoint"
        );
        assert_eq!(text.parse::<Config>().unwrap(), cfg);
        assert_eq!(
            " crash = manual ; ; keep=all ".parse::<Config>().unwrap(),
            Config::new().crash_manual().keep(Keep::All)
        );
        assert_eq!("".parse::<Config>().unwrap(), Config::default());
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        for bad in [
            "crash=write",
            "crash=flush:1",
            "crash=sync:0",
            "fail=write:x",
            "keep=some",
            "tear=2",
            "full",
            "boom=1",
        ] {
            assert!(bad.parse::<Config>().is_err(), "{bad} parsed");
        }
    }
}
