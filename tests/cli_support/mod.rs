//! What the CLI's end-to-end tests share: a temp directory per test, running the built binary,
//! and reading the database afterwards.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::Connection;

pub const SCHEMA_V1: &str =
    "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);\n";

/// A temporary directory for one test: removed on drop unless the test is failing.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("litekeep-cli-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test directory");
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, contents).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// What one run of the binary did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit status 0 and returns stdout.
    pub fn success(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        &self.stdout
    }

    /// Asserts the exit status `code` and exactly one line on stderr; returns that line.
    pub fn failure(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "expected exit status {code}\n{self}");
        let line = self.stderr.trim_end();
        assert_eq!(
            line.lines().count(),
            1,
            "a failure must print exactly one line on stderr\n{self}"
        );
        assert!(line.starts_with("litekeep: "), "{self}");
        line
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn litekeep_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_litekeep"));
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs the binary with `args` and collects its output.
pub fn litekeep<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = litekeep_command()
        .args(args)
        .output()
        .expect("run the litekeep binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path as an argument (the temp directory's paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 test path")
}

pub fn bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Asserts that `path` still holds exactly `before`.
pub fn assert_unchanged(path: &Path, before: &[u8]) {
    assert!(
        bytes(path) == before,
        "{} changed although it must not",
        path.display()
    );
}

/// The names of the tables of the database at `db`, but for litekeep's own (`migrate` records
/// its history in `_litekeep_history`).
pub fn tables(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).expect("open the database");
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE '\\_litekeep\\_%' ESCAPE '\\' ORDER BY name",
        )
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("read table names")
}

/// The rows of `sql` as `(id, text)` pairs.
pub fn rows(db: &Path, sql: &str) -> Vec<(i64, String)> {
    let conn = Connection::open(db).expect("open the database");
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("read rows")
}

/// Creates a database at `db` with `sql` run on it.
pub fn make_db(db: &Path, sql: &str) {
    Connection::open(db)
        .expect("create the database")
        .execute_batch(sql)
        .expect("set up the database");
}

/// A database migrated to [`SCHEMA_V1`] by the binary, holding two rows.
pub fn migrated_db(dir: &TempDir) -> PathBuf {
    let db = dir.join("app.db");
    let schema = dir.write("v1.sql", SCHEMA_V1);
    litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)]).success();
    make_db(
        &db,
        "INSERT INTO files (id, path, size) VALUES (1, 'src/main.rs', 10), (2, 'README.md', 20);",
    );
    db
}
