//! Table rebuilds killed with SIGKILL at random moments, then repaired.
//!
//! [`sigkill_mid_rebuild_is_repaired`] makes a template database with [`ROWS`] rows in `files`
//! (default rollback journal) and, for a selection of the rebuilds of `common::rebuilds()`
//! (`temp_files` rename-first in both `legacy_alter_table` modes, and the create-first rebuilds
//! of Django, Alembic and sqlite-utils-style `new_files`), runs the rebuild in a child process,
//! statement by statement in autocommit mode as the tools do, and kills it with SIGKILL after a
//! random delay between 0 and 1.2 × the time an uninterrupted rebuild takes (measured once per
//! rebuild). Whatever the kill
//! left — a hot journal, a half-done statement rolled back, a leftover table, no `files` at all —
//! [`recover`] with `expect_table("files")` must succeed and leave nothing unrepaired, the
//! database must pass `common::verify` (every original row, old or new definition of `files`,
//! no leftover, references, view and trigger intact, `integrity_check` ok), and a second
//! `recover` must find nothing.
//!
//! The test counts the kills that landed while the child was still running and, of those, the
//! ones that left something to repair; it fails when either is zero, since it then tested nothing.
//!
//! Children are this test binary re-executed with `--exact child_process_entry` and the
//! environment variable [`ROLE_VAR`]; they talk to the parent through stdout lines marked with
//! [`MARK`]. Kill times come from a small PRNG seeded from the clock; the seed is printed, and
//! `LK_SIGKILL_SEED=<n>` replays a run (the same fractions of the measured rebuild time).

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::{Order, Rebuild, fresh, rebuilds, scratch, verify};
use litekeep_recover::{Options, recover};
use rusqlite::Connection;

const ROLE_VAR: &str = "LK_SIGKILL_ROLE";
const DB_VAR: &str = "LK_SIGKILL_DB";
const REBUILD_VAR: &str = "LK_SIGKILL_REBUILD";
const SEED_VAR: &str = "LK_SIGKILL_SEED";
const MARK: &str = "@@lk:";
/// The longest any wait for a child may take before the test fails.
const BOUND: Duration = Duration::from_secs(60);
/// Rows in `files`: enough for a rebuild to take a while, so that kills land inside it.
const ROWS: i64 = 200_000;
/// Kills per rebuild kind.
const KILLS: usize = 6;

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes [`sigkill_mid_rebuild_is_repaired`]
/// spawns. Without [`ROLE_VAR`] in the environment it returns at once and passes.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    assert_eq!(role, "rebuild", "unknown child role");
    let db = PathBuf::from(std::env::var_os(DB_VAR).expect("LK_SIGKILL_DB not set"));
    let index: usize = std::env::var(REBUILD_VAR)
        .expect("LK_SIGKILL_REBUILD not set")
        .parse()
        .expect("LK_SIGKILL_REBUILD not a number");
    let rebuild = &rebuilds()[index];
    let (pragmas, statements) = rebuild.statements();
    let conn = Connection::open(&db).expect("child open");
    conn.execute_batch(&pragmas).expect("child pragmas");
    say("START");
    for (i, sql) in statements.iter().enumerate() {
        // Autocommit: every statement is its own transaction, as the tools run them.
        if let Err(e) = conn.execute_batch(sql) {
            // Where the tool would have stopped too.
            say(&format!("REFUSED {i} {e}"));
            return;
        }
    }
    say("DONE");
}

fn say(msg: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARK}{msg}");
    let _ = out.flush();
}

// ---------------------------------------------------------------------------------------------
// The parent side.

struct Kid {
    child: Child,
    lines: Receiver<String>,
}

impl Kid {
    fn spawn(db: &Path, index: usize) -> Kid {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE_VAR, "rebuild")
            .env(DB_VAR, db)
            .env(REBUILD_VAR, index.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let out = child.stdout.take().expect("child stdout");
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

    /// Waits for the child to exit by itself and checks it succeeded.
    fn finish(mut self) {
        let status = self.child.wait().expect("wait child");
        assert!(status.success(), "child exited with {status}");
    }

    /// SIGKILL; true when the child was still running (the signal killed it).
    fn kill(mut self) -> bool {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, not yet
        // reaped (we wait for it only below), so it cannot name another process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let status = self.child.wait().expect("wait child");
        std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL)
    }
}

/// xorshift64*: enough randomness for kill times, replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var(SEED_VAR)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("sigkill test seed: {SEED_VAR}={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in [0, 1): kill times are fractions of the measured duration, so a replayed
    /// seed kills at the same points of the rebuild even though the duration varies.
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Removes `db` and its journals, then copies the template in.
fn fresh_copy(template: &Path, db: &Path) {
    remove_db(db);
    fs::copy(template, db).expect("copy template");
}

fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// Copies `db` and its hot journal, if any, to `to` untouched (opening them would roll the
/// journal back), so that a failure can describe what the kill left.
fn snapshot(db: &Path, to: &Path) {
    remove_db(to);
    fs::copy(db, to).expect("snapshot database");
    let journal = format!("{}-journal", db.display());
    if Path::new(&journal).exists() {
        fs::copy(&journal, format!("{}-journal", to.display())).expect("snapshot journal");
    }
}

/// The tables of a snapshot with their row counts, and whether it had a hot journal.
fn describe(path: &Path) -> String {
    let journal = Path::new(&format!("{}-journal", path.display())).exists();
    let mut out = format!("journal present: {journal}; tables:");
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => return format!("{out} cannot open: {e}"),
    };
    let tables: Vec<String> = match conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
    {
        Ok(t) => t,
        Err(e) => return format!("{out} cannot list: {e}"),
    };
    for t in tables {
        let n: Result<i64, _> = conn.query_row(
            &format!("SELECT count(*) FROM {}", litekeep_recover::quote_ident(&t)),
            [],
            |r| r.get(0),
        );
        match n {
            Ok(n) => {
                let _ = write!(out, " {t}={n}");
            }
            Err(e) => {
                let _ = write!(out, " {t}=<{e}>");
            }
        }
    }
    out
}

/// Repairs `db` after a crash and runs every check. Returns whether a repair was applied.
/// `crash` is an untouched copy of what the crash left, described in failure messages.
fn repair_and_check(db: &Path, crash: &Path, want: &common::Expected, what: &str) -> bool {
    let opts = Options::default().expect_table("files");
    let report = recover(db, &opts)
        .unwrap_or_else(|e| panic!("{what}: recover failed: {e}; state: {}", describe(crash)));
    let left: Vec<String> = report.left().map(ToString::to_string).collect();
    assert!(
        left.is_empty(),
        "{what}: left unrepaired {left:?}; state: {}",
        describe(crash)
    );
    for f in &report.findings {
        eprintln!("  {what}: {f}");
    }
    if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| verify(db, want, what))) {
        eprintln!("{what}: verify failed; state: {}", describe(crash));
        panic::resume_unwind(e);
    }
    let again = recover(db, &opts).unwrap_or_else(|e| panic!("{what}: second recover: {e}"));
    assert!(
        again.is_clean(),
        "{what}: second run found {:?}; state: {}",
        again.findings,
        describe(crash)
    );
    report.applied
}

/// The index in `common::rebuilds()` of the rebuild with this temporary name, order and mode.
fn pick(all: &[Rebuild], temp: &str, order: Order, legacy: bool) -> usize {
    all.iter()
        .position(|r| r.temp == temp && r.order == order && r.legacy == legacy)
        .unwrap_or_else(|| panic!("no rebuild {temp} {order:?} legacy={legacy}"))
}

#[test]
fn sigkill_mid_rebuild_is_repaired() {
    let started = Instant::now();
    let dir = scratch("sigkill");
    let mut rng = Rng::from_env_or_clock();
    let template = dir.join("template.db");
    let want = fresh(&template, ROWS);
    let db = dir.join("app.db");
    let crash = dir.join("crash.db");

    let all = rebuilds();
    let kinds = [
        pick(&all, "temp_files", Order::RenameFirst, true),
        pick(&all, "temp_files", Order::RenameFirst, false),
        pick(&all, "new__files", Order::CreateFirst, true),
        pick(&all, "_alembic_tmp_files", Order::CreateFirst, true),
        pick(&all, "new_files", Order::CreateFirst, true),
    ];

    let (mut kills, mut running, mut repaired) = (0, 0, 0);
    for index in kinds {
        let rebuild = &all[index];
        let kind = format!(
            "{} {:?} legacy={}",
            rebuild.temp, rebuild.order, rebuild.legacy
        );

        // One uninterrupted run to learn how long the rebuild takes here.
        fresh_copy(&template, &db);
        let kid = Kid::spawn(&db, index);
        kid.expect_line("START");
        let t0 = Instant::now();
        kid.expect_line("DONE");
        let full = t0.elapsed();
        kid.finish();
        snapshot(&db, &crash);
        repair_and_check(&db, &crash, &want, &format!("{kind}, uninterrupted"));

        let (mut kind_running, mut kind_repaired) = (0, 0);
        for round in 0..KILLS {
            fresh_copy(&template, &db);
            let kid = Kid::spawn(&db, index);
            kid.expect_line("START");
            let at = 1.2 * rng.fraction();
            let delay = full.mul_f64(at);
            thread::sleep(delay);
            let killed = kid.kill();
            kills += 1;
            let what = format!(
                "{kind}, kill {round} after {delay:?} ({at:.3} of a full run, killed running: \
                 {killed})"
            );
            snapshot(&db, &crash);
            let applied = repair_and_check(&db, &crash, &want, &what);
            if killed {
                kind_running += 1;
                if applied {
                    kind_repaired += 1;
                }
            }
            eprintln!("{what}: repair applied: {applied}");
        }
        eprintln!(
            "{kind}: uninterrupted run {full:?}; {kind_running} of {KILLS} kills hit the running \
             child, {kind_repaired} of those needed a repair"
        );
        running += kind_running;
        repaired += kind_repaired;
    }
    eprintln!(
        "{kills} kills: {running} hit a running child, {repaired} of those needed a repair \
         ({:?} in all)",
        started.elapsed()
    );
    assert!(
        running > 0,
        "no kill landed while the child was running: the test did not test anything"
    );
    assert!(
        repaired > 0,
        "no kill left anything to repair: the test did not test anything"
    );
    let _ = fs::remove_dir_all(&dir);
}
