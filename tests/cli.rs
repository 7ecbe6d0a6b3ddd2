//! End-to-end tests of the `litekeep` command-line tool: every subcommand (`migrate`, `recover`,
//! `check`, `lock`) is run as the built binary, and each test asserts the exit status, the
//! important parts of stdout and stderr, and the state of the database file afterwards.
//!
//! The house rule under test: success exits 0; a failure exits non-zero with exactly one line
//! on stderr that names the cause (bad usage exits 2, a lock held past the timeout exits 75);
//! a refused or dry-run command leaves the database byte-for-byte as it was.
//!
//! Each test works in its own directory under the system temp directory (named after the
//! process id and the test), removed when the test passes and kept for inspection when it fails.

#![cfg(feature = "cli")]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

mod cli_support;
use cli_support::*;

/// The exit status for "the lock stays held past the timeout" (sysexits.h EX_TEMPFAIL).
const EXIT_LOCKED: i32 = 75;

/// A file that is certainly not a SQLite database (longer than a database header).
fn text_file(dir: &TempDir) -> PathBuf {
    dir.write(
        "notes.db",
        &"These are notes, not a database; litekeep must not touch them.\n".repeat(4),
    )
}

/// A database as an interrupted Django migration leaves it: the rebuilt `new__files` holds the
/// rows and `files` has been dropped.
fn django_leftover(db: &Path) {
    make_db(
        db,
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL);
         INSERT INTO files (id, path) VALUES (1, 'src/main.rs'), (2, 'src/lib.rs'), (3, 'README.md');
         CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);
         INSERT INTO new__files (id, path) SELECT id, path FROM files;
         PRAGMA foreign_keys = OFF;
         DROP TABLE files;",
    );
}

const DJANGO_ROWS: [(i64, &str); 3] = [(1, "src/main.rs"), (2, "src/lib.rs"), (3, "README.md")];

fn owned(expected: &[(i64, &str)]) -> Vec<(i64, String)> {
    expected.iter().map(|&(i, p)| (i, p.to_owned())).collect()
}

// ---------------------------------------------------------------------------------- migrate --

#[test]
fn migrate_creates_a_new_database_from_a_schema_file() {
    let dir = TempDir::new("migrate_creates");
    let db = dir.join("app.db");
    let schema = dir.write("schema.sql", SCHEMA_V1);

    let run = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)]);
    let stdout = run.success();
    assert!(stdout.contains("create table files"), "{run}");
    assert!(stdout.contains("applied in"), "{run}");
    // Creating a file is announced (a typo in --db should not pass silently), on one line.
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run}");
    assert!(run.stderr.contains("does not exist; creating it"), "{run}");
    assert!(run.stderr.contains(s(&db)), "{run}");
    assert_eq!(tables(&db), ["files"]);

    // The second time, nothing to do, and nothing on stderr.
    let before = bytes(&db);
    let again = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)]);
    assert!(again.success().contains("up to date"), "{again}");
    assert!(again.stderr.is_empty(), "{again}");
    assert_unchanged(&db, &before);
}

#[test]
fn migrate_dry_run_prints_the_plan_and_changes_nothing() {
    let dir = TempDir::new("migrate_dry_run");
    let db = migrated_db(&dir);
    let schema = dir.write(
        "v2.sql",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, mtime INTEGER);\n\
         CREATE INDEX files_path ON files(path);\n",
    );
    let before = bytes(&db);

    let run = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--dry-run",
    ]);
    let stdout = run.success();
    assert!(stdout.contains("migration "), "{run}");
    assert!(stdout.contains("1. "), "the plan lists its steps\n{run}");
    assert!(stdout.contains("files_path"), "{run}");
    assert!(stdout.contains("dry run: nothing changed"), "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    assert_unchanged(&db, &before);
}

#[test]
fn migrate_dry_run_of_a_missing_database_is_refused() {
    let dir = TempDir::new("migrate_dry_run_missing");
    let db = dir.join("typo.db");
    let schema = dir.write("schema.sql", SCHEMA_V1);

    let run = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--dry-run",
    ]);
    let line = run.failure(1);
    assert!(line.contains(s(&db)), "{run}");
    assert!(line.contains("does not exist"), "{run}");
    assert!(!db.exists(), "a dry run must not create the database");
}

#[test]
fn migrate_json_prints_one_document() {
    let dir = TempDir::new("migrate_json");
    let db = migrated_db(&dir);
    let schema = dir.write(
        "v2.sql",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, mtime INTEGER);\n",
    );

    let run = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema), "--json"]);
    let stdout = run.success().trim();
    // serde_json is not a dev-dependency: assert on the document's shape and key fields.
    assert!(stdout.starts_with('{') && stdout.ends_with('}'), "{run}");
    for key in [
        "\"applied\": true",
        "\"dry_run\": false",
        "\"up_to_date\": false",
        "\"steps\": [",
        "\"data_loss\": []",
        "\"before\":",
        "\"after\":",
        "\"elapsed_s\":",
    ] {
        assert!(stdout.contains(key), "missing {key}\n{run}");
    }
    assert!(stdout.contains("mtime"), "{run}");
    assert!(run.stderr.is_empty(), "{run}");

    let cols = rows(
        &db,
        "SELECT cid, name FROM pragma_table_info('files') ORDER BY cid",
    );
    assert!(cols.iter().any(|(_, name)| name == "mtime"), "{cols:?}");

    let dry = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--json",
        "--dry-run",
    ]);
    let stdout = dry.success();
    assert!(stdout.contains("\"applied\": false"), "{dry}");
    assert!(stdout.contains("\"up_to_date\": true"), "{dry}");
}

#[test]
fn migrate_rename_hint_renames_a_column_and_keeps_its_values() {
    let dir = TempDir::new("migrate_rename");
    let db = migrated_db(&dir);
    let schema = dir.write(
        "v2.sql",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, file_path TEXT NOT NULL, size INTEGER);\n",
    );

    let run = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--rename",
        "files.path=files.file_path",
    ]);
    assert!(
        run.success()
            .contains("rename column files.path to file_path"),
        "{run}"
    );
    assert_eq!(
        rows(&db, "SELECT id, file_path FROM files ORDER BY id"),
        owned(&[(1, "src/main.rs"), (2, "README.md")])
    );
}

#[test]
fn migrate_malformed_rename_hint_is_one_line() {
    let dir = TempDir::new("migrate_bad_rename");
    let db = migrated_db(&dir);
    let schema = dir.write("v1.sql", SCHEMA_V1);
    let before = bytes(&db);

    let run = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--rename",
        "files.path",
    ]);
    let line = run.failure(1);
    assert!(line.contains("files.path"), "{run}");
    assert!(line.contains("old=new"), "{run}");
    assert_unchanged(&db, &before);
}

#[test]
fn migrate_refuses_to_drop_a_column_unless_allowed() {
    let dir = TempDir::new("migrate_data_loss");
    let db = migrated_db(&dir);
    let schema = dir.write(
        "v2.sql",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL);\n",
    );
    let before = bytes(&db);

    let run = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)]);
    let line = run.failure(1);
    assert!(
        line.contains("column files.size"),
        "names what would be dropped\n{run}"
    );
    assert!(line.contains("--allow-data-loss"), "{run}");
    assert!(line.contains("nothing was changed"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert_unchanged(&db, &before);

    let run = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--allow-data-loss",
    ]);
    let stdout = run.success();
    assert!(stdout.contains("drops column files.size"), "{run}");
    let cols = rows(
        &db,
        "SELECT cid, name FROM pragma_table_info('files') ORDER BY cid",
    );
    assert_eq!(cols, owned(&[(0, "id"), (1, "path")]));
    assert_eq!(
        rows(&db, "SELECT id, path FROM files ORDER BY id"),
        owned(&[(1, "src/main.rs"), (2, "README.md")])
    );
}

#[test]
fn migrate_malformed_schema_points_at_the_statement_in_one_line() {
    let dir = TempDir::new("migrate_malformed");
    let db = migrated_db(&dir);
    let before = bytes(&db);

    // A statement spread over several lines: the error still takes exactly one line.
    let schema = dir.write(
        "bad.sql",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);\n\
         CREATE TABLE oops (\n  a INTEGER,\n  b TEXT NOT NUL,\n  c\n);\n",
    );
    let run = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)]);
    let line = run.failure(1);
    assert!(line.contains("statement 2"), "{run}");
    assert!(line.contains("CREATE TABLE oops"), "{run}");
    assert!(line.contains("NUL"), "SQLite's complaint is kept\n{run}");
    assert_unchanged(&db, &before);

    // Valid SQL that is not a CREATE statement.
    let schema = dir.write(
        "insert.sql",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);\n\
         INSERT INTO files (path) VALUES ('x');\n",
    );
    let run = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)]);
    let line = run.failure(1);
    assert!(line.contains("statement 2"), "{run}");
    assert!(line.contains("not a CREATE statement"), "{run}");
    assert_unchanged(&db, &before);
}

#[test]
fn migrate_missing_schema_file_names_it() {
    let dir = TempDir::new("migrate_missing_schema");
    let db = migrated_db(&dir);
    let before = bytes(&db);
    let schema = dir.join("no-such-schema.sql");

    let run = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)]);
    let line = run.failure(1);
    assert!(line.contains(s(&schema)), "{run}");
    assert!(line.contains("schema file"), "{run}");
    assert_unchanged(&db, &before);

    // Nor is a database created when the schema cannot be read.
    let fresh = dir.join("fresh.db");
    let run = litekeep(["migrate", "--db", s(&fresh), "--schema", s(&schema)]);
    run.failure(1);
    assert!(!fresh.exists());
}

#[test]
fn migrate_refuses_a_file_that_is_not_a_database() {
    let dir = TempDir::new("migrate_not_a_db");
    let text = text_file(&dir);
    let before = bytes(&text);
    let schema = dir.write("schema.sql", SCHEMA_V1);

    let run = litekeep(["migrate", "--db", s(&text), "--schema", s(&schema)]);
    let line = run.failure(1);
    assert!(line.contains(s(&text)), "{run}");
    assert!(line.contains("not a SQLite database"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert_unchanged(&text, &before);
}

// ---------------------------------------------------------------------------------- recover --

#[test]
fn recover_repairs_a_django_leftover() {
    let dir = TempDir::new("recover_django");
    let db = dir.join("app.db");
    django_leftover(&db);

    let run = litekeep(["recover", "--db", s(&db)]);
    let stdout = run.success();
    assert!(stdout.contains("repaired 1 leftover(s)"), "{run}");
    assert!(stdout.contains("new__files"), "{run}");
    assert!(stdout.contains("rename it back to files"), "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    assert_eq!(tables(&db), ["files"]);
    assert_eq!(
        rows(&db, "SELECT id, path FROM files ORDER BY id"),
        owned(&DJANGO_ROWS)
    );

    // Idempotent: a second run finds nothing.
    let again = litekeep(["recover", "--db", s(&db)]);
    assert!(again.success().contains("nothing to repair"), "{again}");
}

#[test]
fn recover_dry_run_reports_and_changes_nothing() {
    let dir = TempDir::new("recover_dry_run");
    let db = dir.join("app.db");
    django_leftover(&db);
    let before = bytes(&db);

    let run = litekeep(["recover", "--db", s(&db), "--dry-run"]);
    let stdout = run.success();
    assert!(stdout.contains("found 1 leftover(s)"), "{run}");
    assert!(stdout.contains("new__files"), "{run}");
    assert_unchanged(&db, &before);
    assert_eq!(tables(&db), ["new__files"]);
}

#[test]
fn recover_json_lists_the_findings() {
    let dir = TempDir::new("recover_json");
    let db = dir.join("app.db");
    django_leftover(&db);
    let before = bytes(&db);

    let dry = litekeep(["recover", "--db", s(&db), "--json", "--dry-run"]);
    let stdout = dry.success().trim();
    assert!(stdout.starts_with('{') && stdout.ends_with('}'), "{dry}");
    for key in [
        "\"findings\": [",
        "\"table\": \"new__files\"",
        "\"original\": \"files\"",
        "\"case\": \"original-missing\"",
        "\"applied\": false",
        "\"dry_run\": true",
    ] {
        assert!(stdout.contains(key), "missing {key}\n{dry}");
    }
    assert_unchanged(&db, &before);

    let run = litekeep(["recover", "--db", s(&db), "--json"]);
    let stdout = run.success();
    assert!(stdout.contains("\"findings\""), "{run}");
    assert!(stdout.contains("\"applied\": true"), "{run}");
    assert_eq!(tables(&db), ["files"]);
}

#[test]
fn recover_leaves_an_ambiguous_leftover_alone() {
    let dir = TempDir::new("recover_ambiguous");
    let db = dir.join("app.db");
    make_db(
        &db,
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL);
         INSERT INTO files (id, path) VALUES (1, 'a.rs'), (2, 'b.rs');
         CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT NOT NULL);
         INSERT INTO new__files (id, path) VALUES (1, 'x.rs'), (2, 'y.rs');",
    );
    let before = bytes(&db);

    let run = litekeep(["recover", "--db", s(&db)]);
    let line = run.failure(1);
    assert!(line.contains(s(&db)), "{run}");
    assert!(line.contains("left as they were"), "{run}");
    assert!(
        run.stdout.contains("left as it is"),
        "the reason is on stdout\n{run}"
    );
    assert_unchanged(&db, &before);

    let json = litekeep(["recover", "--db", s(&db), "--json"]);
    json.failure(1);
    assert!(json.stdout.contains("\"kind\": \"leave\""), "{json}");
    assert_unchanged(&db, &before);
}

#[test]
fn recover_clean_database_has_nothing_to_repair() {
    let dir = TempDir::new("recover_clean");
    let db = migrated_db(&dir);
    let before = bytes(&db);

    let run = litekeep(["recover", "--db", s(&db)]);
    assert!(run.success().contains("nothing to repair"), "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    assert_unchanged(&db, &before);
}

#[test]
fn recover_bad_paths_fail_in_one_line() {
    let dir = TempDir::new("recover_bad_paths");
    let text = text_file(&dir);
    let before = bytes(&text);

    let run = litekeep(["recover", "--db", s(&text)]);
    let line = run.failure(1);
    assert!(line.contains(s(&text)), "{run}");
    assert!(line.contains("not a SQLite database"), "{run}");
    assert_unchanged(&text, &before);

    let missing = dir.join("missing.db");
    let run = litekeep(["recover", "--db", s(&missing)]);
    let line = run.failure(1);
    assert!(line.contains(s(&missing)), "{run}");
    assert!(line.contains("does not exist"), "{run}");
    assert!(!missing.exists());
}

// ------------------------------------------------------------------------------------ check --

#[test]
fn check_healthy_database() {
    let dir = TempDir::new("check_healthy");
    let db = migrated_db(&dir);
    let before = bytes(&db);

    let run = litekeep(["check", "--db", s(&db)]);
    let stdout = run.success();
    assert!(stdout.contains(&format!("{}: healthy", s(&db))), "{run}");
    assert!(stdout.contains("integrity_check: ok"), "{run}");
    assert!(stdout.contains("foreign keys: ok"), "{run}");
    assert!(stdout.contains("leftover tables: none"), "{run}");
    assert!(run.stderr.is_empty(), "{run}");

    let quick = litekeep(["check", "--db", s(&db), "--quick"]);
    let stdout = quick.success();
    assert!(stdout.contains("healthy"), "{quick}");
    assert!(stdout.contains("quick_check: ok"), "{quick}");
    assert!(!stdout.contains("integrity_check"), "{quick}");
    assert_unchanged(&db, &before);
}

#[test]
fn check_several_databases_and_json() {
    let dir = TempDir::new("check_several");
    let a = migrated_db(&dir);
    let b = dir.join("other.db");
    make_db(&b, "CREATE TABLE t (a INTEGER);");

    let run = litekeep(["check", "--db", s(&a), "--db", s(&b)]);
    let stdout = run.success();
    assert!(stdout.contains(&format!("{}: healthy", s(&a))), "{run}");
    assert!(stdout.contains(&format!("{}: healthy", s(&b))), "{run}");

    let json = litekeep(["check", "--db", s(&a), "--db", s(&b), "--json"]);
    let stdout = json.success().trim();
    assert!(
        stdout.starts_with('[') && stdout.ends_with(']'),
        "an array\n{json}"
    );
    assert_eq!(stdout.matches("\"integrity\"").count(), 2, "{json}");
    assert!(
        stdout.contains(&format!("\"path\": \"{}\"", s(&a))),
        "{json}"
    );
    assert!(
        stdout.contains(&format!("\"path\": \"{}\"", s(&b))),
        "{json}"
    );
    assert!(stdout.contains("\"foreign_key_violations\": 0"), "{json}");

    // One database is still an array.
    let one = litekeep(["check", "--db", s(&a), "--json"]);
    let stdout = one.success().trim();
    assert!(stdout.starts_with('[') && stdout.ends_with(']'), "{one}");
    assert_eq!(stdout.matches("\"integrity\"").count(), 1, "{one}");
}

#[test]
fn check_dir_finds_databases_by_their_header() {
    let dir = TempDir::new("check_dir");
    let root = dir.join("indexes");
    fs::create_dir_all(root.join("project/deep")).expect("create directories");
    let one = root.join("one.db");
    let two = root.join("project/deep/two.sqlite");
    make_db(&one, "CREATE TABLE t (a INTEGER);");
    make_db(&two, "CREATE TABLE u (b TEXT);");
    fs::write(root.join("readme.db"), "not a database").expect("write");
    fs::write(root.join("project/notes.txt"), "hello").expect("write");

    let run = litekeep(["check", "--dir", s(&root)]);
    let stdout = run.success();
    assert!(stdout.contains(&format!("{}: healthy", s(&one))), "{run}");
    assert!(stdout.contains(&format!("{}: healthy", s(&two))), "{run}");
    assert!(!stdout.contains("readme.db"), "{run}");
    assert!(!stdout.contains("notes.txt"), "{run}");

    // A directory without databases is a usage failure, not a silent success.
    let empty = dir.join("empty");
    fs::create_dir_all(&empty).expect("create directory");
    let run = litekeep(["check", "--dir", s(&empty)]);
    assert!(run.failure(1).contains("no database to check"), "{run}");
}

#[test]
fn check_not_a_database_fails() {
    let dir = TempDir::new("check_not_a_db");
    let text = text_file(&dir);
    let before = bytes(&text);

    let run = litekeep(["check", "--db", s(&text)]);
    let line = run.failure(1);
    // stderr alone says which file and why.
    assert!(
        line.contains(s(&text)) && line.contains("not a SQLite database"),
        "{run}"
    );
    assert!(run.stdout.contains(s(&text)), "{run}");
    assert!(run.stdout.contains("not a SQLite database"), "{run}");
    assert_unchanged(&text, &before);

    // With a healthy one next to it: still a failure, both reported.
    let good = migrated_db(&dir);
    let run = litekeep(["check", "--db", s(&text), "--db", s(&good), "--json"]);
    assert!(run.failure(1).contains("1 of 2"), "{run}");
    assert!(run.stdout.contains("\"error\""), "{run}");
    assert!(run.stdout.contains("\"integrity\""), "{run}");
    assert_unchanged(&text, &before);
}

#[test]
fn check_missing_file_is_named() {
    let dir = TempDir::new("check_missing");
    let missing = dir.join("missing.db");

    let run = litekeep(["check", "--db", s(&missing)]);
    let line = run.failure(1);
    assert!(
        line.contains(s(&missing)) && line.contains("does not exist"),
        "{run}"
    );
    // The cause, with the path, is printed with the report on stdout; stderr sums up.
    assert!(
        run.stdout.contains(&format!("{}: ERROR", s(&missing))),
        "{run}"
    );
    assert!(run.stdout.contains("does not exist"), "{run}");
    assert!(!missing.exists(), "a check must not create the file");
}

#[test]
fn check_foreign_key_violation_fails() {
    let dir = TempDir::new("check_foreign_key");
    let db = dir.join("app.db");
    make_db(
        &db,
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT);
         CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER REFERENCES files(id));
         INSERT INTO files (id, path) VALUES (1, 'a.rs');
         INSERT INTO symbols (id, file_id) VALUES (1, 1), (7, 42);",
    );
    let before = bytes(&db);

    let run = litekeep(["check", "--db", s(&db)]);
    let line = run.failure(1);
    assert!(
        line.contains(s(&db)) && line.contains("1 foreign key violation"),
        "{run}"
    );
    assert!(run.stdout.contains("PROBLEMS"), "{run}");
    assert!(run.stdout.contains("foreign keys: 1 violations"), "{run}");
    assert!(run.stdout.contains("symbols rowid 7"), "{run}");
    assert_unchanged(&db, &before);
}

#[test]
fn check_reports_a_leftover() {
    let dir = TempDir::new("check_leftover");
    let db = dir.join("app.db");
    django_leftover(&db);

    let run = litekeep(["check", "--db", s(&db)]);
    run.failure(1);
    assert!(run.stdout.contains("leftover tables: 1"), "{run}");
    assert!(run.stdout.contains("litekeep recover"), "{run}");
}

#[test]
fn check_without_a_database_is_refused() {
    let run = litekeep(["check"]);
    assert!(run.failure(1).contains("--db"), "{run}");
}

// ------------------------------------------------------------------------------------- lock --

/// Reads one line from a child's stdout (the "I hold the lock now" signal).
fn read_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the child's stdout");
    line
}

/// A child that holds a lock until its stdin is closed; on drop, closes stdin and reaps it.
struct Holder {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    /// Spawns `cmd` (stdin, stdout piped) and waits for its first line, `ready`.
    fn spawn(mut cmd: Command, ready: &str) -> Holder {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "spawn the lock holder {:?}: {e} (these tests need util-linux flock(1): apt-get install util-linux)",
                    cmd.get_program()
                )
            });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let line = read_line(&mut stdout);
        assert_eq!(line.trim(), ready, "the holder did not take the lock");
        Holder { child, stdout }
    }

    /// Closes stdin (the holder's `read` sees end of file), then waits; returns its exit code.
    fn release(mut self) -> Option<i32> {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        self.child.wait().expect("wait for the holder").code()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn lock_passes_on_the_exit_status() {
    let dir = TempDir::new("lock_exit_status");
    let db = dir.join("app.db");

    let run = litekeep(["lock", "--db", s(&db), "--", "sh", "-c", "exit 3"]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(run.stderr.is_empty(), "{run}");

    // Killed by a signal: 128 + its number, as shells do.
    let run = litekeep(["lock", "--db", s(&db), "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(run.code, Some(128 + 15), "{run}");
}

#[test]
fn lock_runs_the_command_while_holding_the_lock() {
    let dir = TempDir::new("lock_runs");
    let db = dir.join("app.db");
    let marker = dir.join("marker");
    let lock_file = dir.join("app.db.lock");

    // The command writes the marker, and records whether flock could take the lock meanwhile.
    let run = litekeep([
        "lock",
        "--db",
        s(&db),
        "--",
        "sh",
        "-c",
        "echo ran > \"$1\"; flock -n -x \"$2\" true; echo \"flock:$?\" >> \"$1\"",
        "sh",
        s(&marker),
        s(&lock_file),
    ]);
    run.success();
    assert_eq!(
        fs::read_to_string(&marker).expect("the command ran"),
        "ran\nflock:1\n",
        "the lock must be held while the command runs"
    );
    assert!(lock_file.exists(), "the lock file is <db>.lock");
    assert!(!db.exists(), "locking does not create the database");

    // Released afterwards.
    let free = Command::new("flock")
        .args(["-n", "-x", s(&lock_file), "true"])
        .status()
        .expect("run util-linux flock(1) (apt-get install util-linux)");
    assert!(
        free.success(),
        "the lock must be released when the command ends"
    );
}

#[test]
fn lock_times_out_while_flock_holds_it() {
    let dir = TempDir::new("lock_timeout");
    let db = dir.join("app.db");
    let lock_file = dir.join("app.db.lock");
    let marker = dir.join("marker");

    let mut flock = Command::new("flock");
    flock.args([
        "-o",
        "-x",
        s(&lock_file),
        "sh",
        "-c",
        "echo LOCKED; read line; exit 0",
    ]);
    let holder = Holder::spawn(flock, "LOCKED");
    let holder_pid = holder.child.id();

    let start = Instant::now();
    let run = litekeep([
        "lock",
        "--db",
        s(&db),
        "--timeout",
        "300ms",
        "--",
        "sh",
        "-c",
        "touch \"$1\"",
        "sh",
        s(&marker),
    ]);
    let elapsed = start.elapsed();
    let line = run.failure(EXIT_LOCKED);
    assert!(line.contains("timed out"), "{run}");
    assert!(line.contains(s(&lock_file)), "{run}");
    assert!(
        line.contains(&format!("held by pid {holder_pid}")),
        "names the holder (pid {holder_pid})\n{run}"
    );
    assert!(
        !marker.exists(),
        "the command must not run without the lock"
    );
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    assert_eq!(holder.release(), Some(0));
    // Free again: the same command now runs.
    let run = litekeep([
        "lock",
        "--db",
        s(&db),
        "--timeout",
        "2s",
        "--",
        "sh",
        "-c",
        "touch \"$1\"",
        "sh",
        s(&marker),
    ]);
    run.success();
    assert!(marker.exists());
}

#[test]
fn lock_shared_holders_coexist_and_exclude_an_exclusive_one() {
    let dir = TempDir::new("lock_shared");
    let db = dir.join("app.db");

    let mut first = litekeep_command();
    first.args([
        "lock",
        "--db",
        s(&db),
        "--shared",
        "--",
        "sh",
        "-c",
        "echo HELD; read line; exit 0",
    ]);
    let holder = Holder::spawn(first, "HELD");
    let holder_pid = holder.child.id();

    // A second shared holder gets in at once, while the first still holds it.
    let start = Instant::now();
    let second = litekeep([
        "lock",
        "--db",
        s(&db),
        "--shared",
        "--timeout",
        "200ms",
        "--",
        "echo",
        "second",
    ]);
    assert_eq!(second.success().trim(), "second", "{second}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // An exclusive one does not.
    let exclusive = litekeep(["lock", "--db", s(&db), "--timeout", "200ms", "--", "true"]);
    let line = exclusive.failure(EXIT_LOCKED);
    assert!(line.contains("exclusive"), "{exclusive}");
    assert!(
        line.contains(&format!("pid {holder_pid}")),
        "names the shared holder (pid {holder_pid})\n{exclusive}"
    );

    assert_eq!(
        holder.release(),
        Some(0),
        "the first holder's command exits 0"
    );
    let exclusive = litekeep(["lock", "--db", s(&db), "--timeout", "2s", "--", "true"]);
    exclusive.success();
}

#[test]
fn lock_bad_inputs() {
    let dir = TempDir::new("lock_bad_inputs");
    let db = dir.join("app.db");

    // A program that does not exist.
    let run = litekeep([
        "lock",
        "--db",
        s(&db),
        "--",
        "/nonexistent/litekeep-test-program",
    ]);
    let line = run.failure(1);
    assert!(
        line.contains("cannot run /nonexistent/litekeep-test-program"),
        "{run}"
    );

    // A directory that does not exist: the lock file cannot be created.
    let nowhere = dir.join("no-such-dir/app.db");
    let run = litekeep(["lock", "--db", s(&nowhere), "--", "true"]);
    let line = run.failure(1);
    assert!(line.contains(&format!("{}.lock", s(&nowhere))), "{run}");

    // Bad usage exits 2 (clap's message; its first line names the problem).
    let run = litekeep(["lock", "--db", s(&db)]);
    assert_eq!(run.code, Some(2), "no command\n{run}");
    assert!(run.stderr.starts_with("error:"), "{run}");
    let run = litekeep(["lock", "--db", s(&db), "--timeout", "5x", "--", "true"]);
    assert_eq!(run.code, Some(2), "bad duration\n{run}");
    assert!(
        run.stderr
            .lines()
            .next()
            .unwrap_or("")
            .contains("unknown time unit \"x\""),
        "{run}"
    );
}

// ------------------------------------------------------------------------------------- help --

#[test]
fn every_subcommand_help_has_an_example() {
    for sub in ["migrate", "recover", "check", "lock"] {
        let run = litekeep([sub, "--help"]);
        let stdout = run.success();
        assert!(stdout.contains("Example"), "litekeep {sub} --help\n{run}");
        assert!(
            stdout.contains(&format!("litekeep {sub} ")),
            "the example uses the subcommand\n{run}"
        );
    }
    let run = litekeep(["--help"]);
    for sub in ["migrate", "recover", "check", "lock"] {
        assert!(run.success().contains(sub), "{run}");
    }
}
