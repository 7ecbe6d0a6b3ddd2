//! Crash safety and concurrency with real processes.
//!
//! - [`sigkill_mid_migration_leaves_old_or_new_schema`]: a child process migrates a 100,000-row
//!   table through a rebuild and is killed with SIGKILL, at random moments and at random moments
//!   after it is seen holding the migration lock (so inside the transaction). Afterwards the file
//!   must hold either the old or the new schema, every row with every value, no `temp_*` table,
//!   a clean `integrity_check` and `foreign_key_check`; and a new `migrate` must finish the job.
//!   In WAL and in rollback-journal mode.
//! - [`writer_process_loses_nothing_during_migrations`]: a child process commits rows one by one
//!   in WAL mode and writes every acknowledged rowid to a ledger, while this process migrates the
//!   table back and forth six times. The writer must see no error and every acknowledged row must
//!   be there at the end.
//!
//! Children are this test binary re-executed with `--exact child_process_entry` and the
//! environment variable [`ROLE_VAR`]; they talk to the parent through stdout lines marked with
//! [`MARK`]. Kill times come from a small PRNG seeded from the clock; the seed is printed, and
//! `LK_CRASH_SEED=<n>` replays a run.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use litekeep_lock::FileLock;
use litekeep_migrate::{Options, Schema, migrate};
use rusqlite::Connection;

const ROLE_VAR: &str = "LK_CRASH_ROLE";
const DB_VAR: &str = "LK_CRASH_DB";
const SCHEMA_VAR: &str = "LK_CRASH_SCHEMA";
const LEDGER_VAR: &str = "LK_CRASH_LEDGER";
const MARK: &str = "@@lk:";
/// The longest any wait for a child may take before the test fails.
const BOUND: Duration = Duration::from_secs(60);
const ROWS: i64 = 100_000;

/// The old schema: a parent table with an index, a trigger, a view, and a child table whose
/// foreign key points at it.
const V1: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, note TEXT);
CREATE INDEX files_size ON files(size);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER REFERENCES files(id), name TEXT);
CREATE TABLE touched (file_id INTEGER);
CREATE TRIGGER files_touch AFTER UPDATE ON files BEGIN INSERT INTO touched VALUES (new.id); END;
CREATE VIEW big_files AS SELECT path FROM files WHERE size > 100;
";

/// The new schema: `size` changes type, which SQLite cannot ALTER: a rebuild.
const V2: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, note TEXT);
CREATE INDEX files_size ON files(size);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER REFERENCES files(id), name TEXT);
CREATE TABLE touched (file_id INTEGER);
CREATE TRIGGER files_touch AFTER UPDATE ON files BEGIN INSERT INTO touched VALUES (new.id); END;
CREATE VIEW big_files AS SELECT path FROM files WHERE size > 100;
";

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes the tests below spawn. Without
/// [`ROLE_VAR`] in the environment it returns at once and passes.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let db = PathBuf::from(std::env::var_os(DB_VAR).expect("LK_CRASH_DB not set"));
    match role.as_str() {
        "migrate" => {
            let schema = std::env::var(SCHEMA_VAR).expect("LK_CRASH_SCHEMA not set");
            say("START");
            let opts = Options::default().lock_timeout(BOUND);
            match migrate(&db, &schema, &opts) {
                Ok(_) => say("DONE"),
                Err(e) => say(&format!("ERROR {e}")),
            }
        }
        "writer" => writer(&db),
        other => panic!("unknown child role {other:?}"),
    }
}

fn say(msg: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARK}{msg}");
    let _ = out.flush();
}

/// Commits one row at a time until stdin closes; appends each acknowledged rowid to the ledger.
fn writer(db: &Path) {
    let ledger_path = std::env::var_os(LEDGER_VAR).expect("LK_CRASH_LEDGER not set");
    let mut ledger = OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger_path)
        .expect("open ledger");
    let conn = Connection::open(db).expect("writer open");
    conn.busy_timeout(BOUND).expect("busy_timeout");
    // Stop when the parent closes our stdin.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
        let _ = stop_tx.send(());
    });
    say("READY");
    let mut n: i64 = 0;
    while stop_rx.try_recv().is_err() {
        n += 1;
        let res = conn.execute(
            "INSERT INTO files (path, size, note) VALUES (?1, ?2, 'writer')",
            (format!("w{n}"), n),
        );
        match res {
            Ok(_) => {
                let id = conn.last_insert_rowid();
                writeln!(ledger, "{id} w{n}").expect("ledger write");
            }
            Err(e) => {
                say(&format!("ERROR {e}"));
                return;
            }
        }
    }
    say(&format!("STOPPED {n}"));
}

// ---------------------------------------------------------------------------------------------
// The parent side.

struct Kid {
    child: Child,
    lines: Receiver<String>,
}

impl Kid {
    fn spawn(role: &str, envs: &[(&str, &Path)], schema: Option<&str>) -> Kid {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        if let Some(s) = schema {
            cmd.env(SCHEMA_VAR, s);
        }
        let mut child = cmd.spawn().expect("spawn child");
        let out: ChildStdout = child.stdout.take().expect("child stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // The test harness may print its own text before ours on the same line.
                if let Some(at) = line.find(MARK)
                    && tx.send(line[at + MARK.len()..].to_string()).is_err()
                {
                    break;
                }
            }
        });
        Kid { child, lines }
    }

    fn expect_line(&self, prefix: &str) -> String {
        let line = self
            .lines
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("child said nothing within {BOUND:?} (wanted {prefix})"));
        assert!(
            line.starts_with(prefix),
            "child said {line:?}, wanted {prefix}"
        );
        line
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL; true when the child was still running (the signal killed it).
    fn kill(mut self) -> bool {
        // SAFETY: kill(2) with a pid of our own unreaped child and a valid signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let status = self.child.wait().expect("wait child");
        std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL)
    }
}

/// xorshift64*: enough randomness for kill times, replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("LK_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    | 1
            });
        eprintln!("crash test seed: LK_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, d: Duration) -> Duration {
        let nanos = d.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lk-migrate-crash-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Makes the template database in `journal_mode` with [`ROWS`] rows and checkpoints it, so that
/// a copy of the main file alone is the whole database.
fn template(dir: &Path, journal_mode: &str) -> PathBuf {
    let path = dir.join(format!("template-{journal_mode}.db"));
    let conn = Connection::open(&path).expect("open template");
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode={journal_mode}"), [], |r| {
            r.get(0)
        })
        .expect("journal_mode");
    assert_eq!(mode.to_lowercase(), journal_mode.to_lowercase());
    conn.execute_batch(V1).expect("v1");
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO files (id, path, size, note)
           SELECT i, 'src/f' || i || '.rs', i * 7 % 1000,
                  CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END FROM n;
         INSERT INTO symbols (file_id, name) SELECT id, 'sym' || id FROM files WHERE id % 10 = 0;
         COMMIT;"
    ))
    .expect("rows");
    if journal_mode.eq_ignore_ascii_case("wal") {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
    }
    drop(conn);
    path
}

fn fresh_copy(template: &Path, db: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(format!("{}{suffix}", db.display()));
    }
    fs::copy(template, db).expect("copy template");
}

/// Every row of `files` as (id → path, size as text, note): the values a migration must keep.
fn rows(conn: &Connection) -> BTreeMap<i64, (String, Option<String>, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT id, path, CAST(size AS TEXT), note FROM files")
        .expect("prepare rows");
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .expect("query rows")
        .collect::<Result<_, _>>()
        .expect("read rows")
}

fn expected_rows() -> BTreeMap<i64, (String, Option<String>, Option<String>)> {
    (1..=ROWS)
        .map(|i| {
            let note = (i % 3 != 0).then(|| format!("n{i}"));
            (
                i,
                (
                    format!("src/f{i}.rs"),
                    Some((i * 7 % 1000).to_string()),
                    note,
                ),
            )
        })
        .collect()
}

/// The checks every state after a crash must pass. Returns true when the schema is the new one.
fn check_healthy(
    db: &Path,
    want_rows: &BTreeMap<i64, (String, Option<String>, Option<String>)>,
) -> bool {
    let conn = Connection::open(db).expect("open after crash");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "{}", db.display());
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(fk, 0, "foreign key violations in {}", db.display());
    let leftovers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE name LIKE 'temp%'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("list leftovers");
    assert!(leftovers.is_empty(), "leftover tables {leftovers:?}");
    let now = Schema::read(&conn).expect("read schema").fingerprint();
    let v1 = Schema::from_sql(V1).expect("v1").fingerprint();
    let v2 = Schema::from_sql(V2).expect("v2").fingerprint();
    assert!(
        now == v1 || now == v2,
        "schema is neither the old nor the new one"
    );
    assert!(rows(&conn) == *want_rows, "rows differ after the crash");
    // The view and the trigger still work on the table.
    let big: i64 = conn
        .query_row("SELECT count(*) FROM big_files", [], |r| r.get(0))
        .expect("view");
    assert!(big > 0);
    now == v2
}

#[test]
fn sigkill_mid_migration_leaves_old_or_new_schema() {
    let dir = scratch("sigkill");
    let mut rng = Rng::from_env_or_clock();
    let want = expected_rows();
    for journal_mode in ["wal", "delete"] {
        let template = template(&dir, journal_mode);
        let db = dir.join(format!("db-{journal_mode}.db"));

        // One uninterrupted run to learn how long a migration takes here.
        fresh_copy(&template, &db);
        let kid = Kid::spawn("migrate", &[(DB_VAR, &db)], Some(V2));
        kid.expect_line("START");
        let t0 = Instant::now();
        kid.expect_line("DONE");
        let full = t0.elapsed();
        assert!(check_healthy(&db, &want));

        let (mut old, mut new, mut inside) = (0, 0, 0);
        for round in 0..12 {
            fresh_copy(&template, &db);
            let kid = Kid::spawn("migrate", &[(DB_VAR, &db)], Some(V2));
            kid.expect_line("START");
            let killed = if round % 2 == 0 {
                // Anywhere: while opening, planning, waiting, copying or committing.
                thread::sleep(rng.below(full + full / 5));
                kid.kill()
            } else {
                // Inside the locked section: wait until the child is seen holding the lock.
                let lock = FileLock::for_database(&db).expect("lock file");
                let deadline = Instant::now() + BOUND;
                let seen = loop {
                    if lock.holder().is_some_and(|h| h.pid == kid.pid()) {
                        break true;
                    }
                    if Instant::now() > deadline {
                        break false;
                    }
                    thread::sleep(Duration::from_micros(200));
                };
                thread::sleep(rng.below(full / 2));
                let killed = kid.kill();
                if seen && killed {
                    inside += 1;
                }
                killed
            };
            if check_healthy(&db, &want) {
                new += 1;
            } else {
                old += 1;
            }
            // Whatever the crash left, migrating again finishes the job.
            migrate(&db, V2, &Options::default()).expect("migrate after the crash");
            assert!(check_healthy(&db, &want));
            eprintln!("{journal_mode} round {round}: killed while running: {killed}");
        }
        eprintln!(
            "{journal_mode}: {old} crashes left the old schema, {new} the new one; \
             {inside} kills landed while the child held the migration lock (full run {full:?})"
        );
        assert!(
            inside > 0,
            "no kill landed inside the locked section: the test did not test the crash"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn writer_process_loses_nothing_during_migrations() {
    let dir = scratch("writer");
    let template = template(&dir, "wal");
    let db = dir.join("db.db");
    fresh_copy(&template, &db);
    let ledger = dir.join("ledger.txt");

    let mut kid = Kid::spawn("writer", &[(DB_VAR, &db), (LEDGER_VAR, &ledger)], None);
    kid.expect_line("READY");
    for (i, schema) in [V2, V1, V2, V1, V2, V1].into_iter().enumerate() {
        // Let the writer get some rows in between.
        thread::sleep(Duration::from_millis(50));
        let report = migrate(&db, schema, &Options::default().lock_timeout(BOUND))
            .unwrap_or_else(|e| panic!("migration {i} failed: {e}"));
        assert!(report.applied, "migration {i} did nothing");
    }
    thread::sleep(Duration::from_millis(50));
    drop(kid.child.stdin.take());
    let last = kid.expect_line("");
    assert!(last.starts_with("STOPPED"), "writer reported {last:?}");
    let status = kid.child.wait().expect("wait writer");
    assert!(status.success(), "writer exited with {status}");

    let conn = Connection::open(&db).expect("open");
    let acked = fs::read_to_string(&ledger).expect("read ledger");
    let mut count = 0;
    for line in acked.lines() {
        let (id, path) = line.split_once(' ').expect("ledger line");
        let id: i64 = id.parse().expect("ledger id");
        let found: Option<String> = conn
            .query_row("SELECT path FROM files WHERE id = ?1", [id], |r| r.get(0))
            .ok();
        assert_eq!(found.as_deref(), Some(path), "acknowledged row {id} lost");
        count += 1;
    }
    assert!(count > 0, "the writer committed nothing");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    let total: i64 = conn
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .expect("count");
    assert_eq!(total, ROWS + count, "rows appeared or vanished");
    eprintln!("writer committed {count} rows during 6 migrations; all present");
    let _ = fs::remove_dir_all(&dir);
}
