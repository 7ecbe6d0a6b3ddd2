//! Who holds a lock: the record an exclusive holder writes into the lock file, checked against
//! what the kernel says in `/proc/locks`.
//!
//! The record is one line at the start of the lock file:
//! `litekeep-lock v1 pid=4242 host=h since=1732512345.123456 label=litekeep migrate`.
//! It is written through the shared mapping of the lock file's first pages where there is one
//! (`bell.rs`), else with one `pwrite`, and never truncated (bytes after the first newline are
//! left over from longer records and ignored). A holder that re-takes the lock within a few
//! milliseconds of releasing it keeps its record, so `since` is the start of its current run of
//! holds. A crashed holder leaves its record behind and a foreign tool (util-linux `flock(1)`)
//! writes none, so the record is trusted only when `/proc/locks` shows its pid holding the
//! lock file's inode; otherwise the kernel's pid is reported with the process's command name.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::mode::Mode;

const MAGIC: &str = "litekeep-lock v1 ";

/// A process holding (or last known to hold) a lock.
///
/// Its `Display` is one line, as in `LockError::Timeout`'s message:
///
/// ```
/// use litekeep_lock::{Holder, Mode};
/// let h = Holder::new(4242, Mode::Exclusive).with_label("litekeep migrate").with_host("h");
/// assert_eq!(h.to_string(), "pid 4242 (litekeep migrate) on host h");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// The mode it holds.
    pub mode: Mode,
    /// The label it gave ([`FileLock::with_label`](crate::FileLock::with_label)), if it wrote
    /// a record.
    pub label: Option<String>,
    /// Its host, if it wrote a record.
    pub host: Option<String>,
    /// Since when it has held the lock, if known.
    pub since: Option<SystemTime>,
    /// Its command name from `/proc/<pid>/comm`, when it wrote no record.
    pub command: Option<String>,
    /// It is this process (another thread or task).
    pub this_process: bool,
    /// How many other processes (or, in this process, owners) share the lock with it.
    pub others: usize,
    /// The kernel confirmed it holds the lock (always true for this process); false when only
    /// the record was available.
    pub verified: bool,
}

impl Holder {
    /// A holder known only by pid and mode.
    ///
    /// ```
    /// use litekeep_lock::{Holder, Mode};
    /// assert_eq!(Holder::new(7, Mode::Shared).to_string(), "pid 7");
    /// ```
    pub fn new(pid: u32, mode: Mode) -> Self {
        Holder {
            pid,
            mode,
            label: None,
            host: None,
            since: None,
            command: None,
            this_process: false,
            others: 0,
            verified: true,
        }
    }

    /// Sets the label.
    ///
    /// ```
    /// use litekeep_lock::{Holder, Mode};
    /// assert_eq!(Holder::new(7, Mode::Exclusive).with_label("reindex").to_string(), "pid 7 (reindex)");
    /// ```
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the host.
    ///
    /// ```
    /// use litekeep_lock::{Holder, Mode};
    /// assert_eq!(Holder::new(7, Mode::Exclusive).with_host("db1").to_string(), "pid 7 on host db1");
    /// ```
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// How long it has held the lock, if known.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use litekeep_lock::{Holder, Mode};
    /// let mut h = Holder::new(7, Mode::Exclusive);
    /// assert_eq!(h.held_for(), None);
    /// h.since = Some(SystemTime::now() - Duration::from_secs(2));
    /// assert!(h.held_for().unwrap() >= Duration::from_secs(2));
    /// ```
    pub fn held_for(&self) -> Option<Duration> {
        self.since
            .map(|s| SystemTime::now().duration_since(s).unwrap_or_default())
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.this_process {
            write!(f, "this process (pid {}", self.pid)?;
            if let Some(label) = &self.label {
                write!(f, ", {label}")?;
            }
            f.write_str(")")?;
        } else {
            write!(f, "pid {}", self.pid)?;
            match (&self.label, &self.command) {
                (Some(label), _) => write!(f, " ({label})")?,
                (None, Some(cmd)) => write!(f, " [{cmd}]")?,
                (None, None) => {}
            }
            if let Some(host) = &self.host {
                write!(f, " on host {host}")?;
            }
        }
        if let Some(d) = self.held_for() {
            write!(f, " for {:.1} s", d.as_secs_f64())?;
        }
        if self.others > 0 {
            write!(f, " and {} other(s)", self.others)?;
        }
        if !self.verified {
            f.write_str(" (unverified record)")?;
        }
        Ok(())
    }
}

/// This machine's host name, read once.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    })
}

/// The record line for this process holding the lock since `since` under `label`.
pub fn format_record(label: &str, since: SystemTime) -> String {
    let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
    let label: String = label
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "{MAGIC}pid={} host={} since={}.{:06} label={label}\n",
        std::process::id(),
        host_name(),
        since.as_secs(),
        since.subsec_micros()
    )
}

/// Writes a record (see [`format_record`]) at the start of the lock file with one `pwrite`, no
/// truncation.
pub fn write_record(file: &File, record: &[u8]) -> std::io::Result<()> {
    file.write_all_at(record, 0)
}

/// Parses the first line of a lock file. `None` for anything that is not a v1 record.
pub fn parse_record(bytes: &[u8]) -> Option<Holder> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix(MAGIC)?;
    let (fields, label) = rest.split_once(" label=")?;
    let mut pid = None;
    let mut host = None;
    let mut since = None;
    for field in fields.split(' ') {
        match field.split_once('=')? {
            ("pid", v) => pid = v.parse::<u32>().ok(),
            ("host", v) => host = Some(v.to_owned()),
            ("since", v) => since = parse_since(v),
            _ => {}
        }
    }
    let mut holder = Holder::new(pid?, Mode::Exclusive);
    holder.host = host;
    holder.since = since;
    if !label.is_empty() {
        holder.label = Some(label.to_owned());
    }
    Some(holder)
}

fn parse_since(v: &str) -> Option<SystemTime> {
    let (secs, micros) = v.split_once('.')?;
    let d = Duration::from_secs(secs.parse().ok()?) + Duration::from_micros(micros.parse().ok()?);
    UNIX_EPOCH.checked_add(d)
}

/// Reads the record of the lock file, if any.
pub fn read_record(file: &File) -> Option<Holder> {
    let mut buf = [0u8; 512];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_record(&buf[..n])
}

/// One flock on a file, from `/proc/locks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLock {
    /// The process that took it.
    pub pid: u32,
    /// Its mode.
    pub mode: Mode,
}

/// The granted flocks (not the waiting requests) on the inode `(major, minor, ino)`, parsed from
/// the text of `/proc/locks`.
pub fn parse_proc_locks(text: &str, dev: (u32, u32), ino: u64) -> Vec<KernelLock> {
    text.lines()
        .filter_map(|line| parse_proc_lock_line(line, dev, ino))
        .collect()
}

fn parse_proc_lock_line(line: &str, dev: (u32, u32), ino: u64) -> Option<KernelLock> {
    let mut words = line.split_whitespace();
    words.next()?; // "1:"
    if words.next()? != "FLOCK" {
        return None; // POSIX, OFDLCK, or a blocked request "->"
    }
    words.next()?; // ADVISORY
    let mode = match words.next()? {
        "WRITE" => Mode::Exclusive,
        "READ" => Mode::Shared,
        _ => return None,
    };
    let pid = words.next()?.parse::<u32>().ok()?;
    let mut id = words.next()?.split(':');
    let major = u32::from_str_radix(id.next()?, 16).ok()?;
    let minor = u32::from_str_radix(id.next()?, 16).ok()?;
    let inode = id.next()?.parse::<u64>().ok()?;
    (major, minor, inode)
        .eq(&(dev.0, dev.1, ino))
        .then_some(KernelLock { pid, mode })
}

/// How many times [`kernel_locks`] reads `/proc/locks`.
const PROC_LOCKS_READS: usize = 3;

/// The locks other processes hold on inode `ino` of device `dev`, from `/proc/locks`; `None`
/// where it cannot be read.
///
/// The kernel builds `/proc/locks` one page per `read` call, walking the list of every lock on
/// the system again from the record it stopped at: a lock taken or released elsewhere between
/// two calls shifts the list, and a record can be skipped. On a busy machine (SQLite's WAL
/// locks alone fill pages) a holder would be missing now and then. So the file is read a few
/// times and the locks seen are merged (by pid, in the order first seen): a holder that held on
/// throughout is missed only if every read skipped it.
fn kernel_locks(dev: (u32, u32), ino: u64) -> Option<Vec<KernelLock>> {
    let me = std::process::id();
    let mut held: Vec<KernelLock> = Vec::new();
    let mut read_any = false;
    for _ in 0..PROC_LOCKS_READS {
        let Ok(text) = std::fs::read_to_string("/proc/locks") else {
            continue;
        };
        read_any = true;
        for k in parse_proc_locks(&text, dev, ino) {
            if k.pid != me && !held.iter().any(|h| h.pid == k.pid) {
                held.push(k);
            }
        }
    }
    read_any.then_some(held)
}

/// The command name of `pid`, from `/proc/<pid>/comm`.
pub fn command_of(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_owned()).filter(|c| !c.is_empty())
}

/// Who, outside this process, holds the lock file `file` (device `dev`, inode `ino`): the
/// kernel's view from `/proc/locks`, with the record's label, host and start time where the
/// record's pid agrees. Without `/proc/locks`, the record alone, marked unverified.
pub fn foreign_holder(file: &File, dev: u64, ino: u64) -> Option<Holder> {
    let record = read_record(file);
    let dev = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let Some(held) = kernel_locks(dev, ino) else {
        return record.map(|mut r| {
            r.verified = false;
            r
        });
    };
    let first = *held.first()?;
    let mut holder = match record {
        Some(r) if r.pid == first.pid && r.host.as_deref() == Some(host_name()) => r,
        _ => {
            let mut h = Holder::new(first.pid, first.mode);
            h.command = command_of(first.pid);
            h
        }
    };
    holder.mode = first.mode;
    holder.others = held.len() - 1;
    Some(holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_ignores_leftover_bytes() {
        let since = UNIX_EPOCH + Duration::from_micros(1_732_512_345_123_456);
        let mut bytes = format_record("litekeep migrate", since).into_bytes();
        bytes.extend_from_slice(b"leftover of a longer record\n");
        let h = parse_record(&bytes).unwrap();
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.label.as_deref(), Some("litekeep migrate"));
        assert_eq!(h.host.as_deref(), Some(host_name()));
        assert_eq!(h.since, Some(since));
    }

    #[test]
    fn control_characters_in_labels_cannot_break_the_record() {
        let line = format_record("a\nb\tc", SystemTime::now());
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(
            parse_record(line.as_bytes()).unwrap().label.as_deref(),
            Some("a b c")
        );
    }

    #[test]
    fn garbage_is_not_a_record() {
        for junk in [
            &b""[..],
            b"\0\0\0",
            b"litekeep-lock v1 pid=x label=",
            b"hello\n",
        ] {
            assert_eq!(parse_record(junk), None);
        }
    }

    #[test]
    fn proc_locks_lines_are_matched_by_device_and_inode() {
        let text = "\
1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1234 0 EOF
3: FLOCK  ADVISORY  READ  77 fd:01:999 0 EOF
4: POSIX  ADVISORY  READ  88 fd:01:1234 0 EOF
5: FLOCK  ADVISORY  READ  99 fd:01:1234 0 EOF
";
        let got = parse_proc_locks(text, (0xfd, 1), 1234);
        assert_eq!(
            got,
            vec![
                KernelLock {
                    pid: 4242,
                    mode: Mode::Exclusive
                },
                KernelLock {
                    pid: 99,
                    mode: Mode::Shared
                },
            ]
        );
    }

    #[test]
    fn display_names_pid_label_host_and_duration() {
        let mut h = Holder::new(4242, Mode::Exclusive)
            .with_label("litekeep migrate")
            .with_host("h");
        h.since = Some(SystemTime::now() - Duration::from_millis(3100));
        let s = h.to_string();
        assert!(
            s.starts_with("pid 4242 (litekeep migrate) on host h for 3.1 s"),
            "{s}"
        );
    }
}
