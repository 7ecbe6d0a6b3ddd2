//! Helpers shared by the test binaries: scratch directories, connections through the VFS, and
//! children (this test binary re-executed, a role in the environment).

#![allow(dead_code)] // each binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::{Connection, OpenFlags};

/// The variable that names a child's role.
pub const ROLE_VAR: &str = "LK_FAULTS_TEST_ROLE";
/// The variable that names a child's database.
pub const DB_VAR: &str = "LK_FAULTS_TEST_DB";
/// Children mark the lines meant for the parent with this.
pub const MARK: &str = "@@lkf:";

/// A fresh directory of its own.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lk-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A connection through the fault VFS (registered first).
pub fn open_faulty(path: &Path) -> rusqlite::Result<Connection> {
    litekeep_faults::register().expect("register the VFS");
    Connection::open_with_flags_and_vfs(path, OpenFlags::default(), litekeep_faults::VFS_NAME)
}

/// A connection through SQLite's default VFS (unix), for checking what a child left.
pub fn open_plain(path: &Path) -> Connection {
    Connection::open_with_flags_and_vfs(path, OpenFlags::default(), "unix").unwrap()
}

/// `PRAGMA integrity_check`'s verdict.
pub fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// The extended result code of a SQLite failure.
pub fn code(err: &rusqlite::Error) -> Option<i32> {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.extended_code),
        _ => None,
    }
}

/// Prints a line for the parent.
pub fn say(msg: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARK}{msg}");
    let _ = out.flush();
}

/// What a child said and how it ended.
pub struct Finished {
    pub lines: Vec<String>,
    pub code: Option<i32>,
    pub stderr: String,
}

impl Finished {
    /// The words after `KEY` on the line that starts with it.
    pub fn field(&self, key: &str) -> Vec<u64> {
        let line = self
            .lines
            .iter()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| {
                panic!("no {key} line in {:?}; stderr: {}", self.lines, self.stderr)
            });
        line[key.len()..]
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect()
    }
}

/// Runs this test binary's `child_process_entry` with `role`, the database and `faults` (the
/// `LK_FAULTS` value, if any), to its end.
pub fn run_child(role: &str, db: &Path, faults: Option<&str>) -> Finished {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE_VAR, role)
    .env(DB_VAR, db)
    .env_remove(litekeep_faults::ENV_VAR);
    if let Some(faults) = faults {
        cmd.env(litekeep_faults::ENV_VAR, faults);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run child");
    let lines = String::from_utf8_lossy(&stdout)
        .lines()
        .filter_map(|l| l.find(MARK).map(|at| l[at + MARK.len()..].to_owned()))
        .collect();
    Finished {
        lines,
        code: status.code(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
