//! The worker processes: what each role does in a loop until its stdin closes (or it is
//! killed), writing every acknowledged commit to its ledger.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::OptionalExtension;

use crate::access::{Access, Mode};
use crate::ledger::Ledger;
use crate::requests::{Write, Written};
use crate::schema;
use fastrand::Rng;

/// The roles, as named on the command line.
pub const ROLES: [&str; 5] = ["indexer", "embedder", "searcher", "migrator", "opener"];

/// What a worker needs to know.
pub struct Job<'a> {
    /// The role.
    pub role: &'a str,
    /// The database.
    pub db: &'a Path,
    /// naive, litekeep or owner.
    pub mode: Mode,
    /// Its ledger.
    pub ledger: &'a Path,
    /// Its random seed.
    pub seed: u64,
    /// Whether it belongs to the first wave (which opens with the schema, racing to set it up).
    pub first: bool,
    /// How a litekeep worker writes.
    pub writing: crate::writing::Writing,
}

/// Runs a worker to the end; the process's exit status.
pub fn run(job: &Job<'_>) -> i32 {
    let mut ledger = match Ledger::open(job.ledger) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "litekeep-stress worker: cannot open ledger {}: {e}",
                job.ledger.display()
            );
            return 3;
        }
    };
    let started = Instant::now();
    let writer = matches!(job.role, "indexer" | "embedder");
    let access = match Access::open(job.mode, job.db, job.first, writer, job.writing) {
        Ok(a) => a,
        Err(e) => {
            ledger.error(&format!("open: {e}"));
            return 1;
        }
    };
    if job.role == "opener" {
        // A cold process: open (above), one read, gone.
        return match access
            .read(|c| c.query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0)))
        {
            Ok(_) => {
                ledger.line(&format!("O {}", started.elapsed().as_micros()));
                0
            }
            Err(e) => {
                ledger.error(&e);
                1
            }
        };
    }
    let stop = stop_on_stdin_close();
    let mut rng = Rng::with_seed(job.seed);
    let mut state = State {
        nonce: fastrand::u64(..),
        ..State::default()
    };
    while !stop.load(Ordering::SeqCst) {
        if job.role == "migrator" {
            // Every 0.3–1.5 s; the pause is not part of the migration's latency.
            let until = Instant::now() + Duration::from_millis(300 + rng.u64(..1200));
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        let t = Instant::now();
        let outcome = match job.role {
            "indexer" => index(&access, &mut rng, &mut state),
            "embedder" => embed(&access, &mut rng, &mut state),
            "searcher" => search(&access, &mut rng, &mut state, &mut ledger),
            "migrator" => migrate(&access),
            other => {
                ledger.error(&format!("unknown role {other}"));
                return 2;
            }
        };
        let us = t.elapsed().as_micros();
        match outcome {
            Ok(Some(what)) => ledger.line(&format!("{} {us} {}", what.0, what.1)),
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                ledger.error(&e);
                // Back off a little so that a broken database does not flood the ledger.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    0
}

#[derive(Default)]
struct State {
    batch: u64,
    seen: VecDeque<String>,
    count: i64,
    /// This process's random part of its write ids.
    nonce: u64,
    /// Write requests made so far.
    ops: u64,
}

impl State {
    /// A write id no other request of the campaign has: this process's pid and random nonce,
    /// and a count.
    fn next_op(&mut self) -> String {
        self.ops += 1;
        format!("{}.{:x}.{}", std::process::id(), self.nonce, self.ops)
    }
}

/// A committed operation: its ledger tag and the rest of its line.
type Done = Option<(char, String)>;

/// One batch: 5 files, 3 symbols each, one code entry per symbol, one transaction.
fn index(access: &Access, rng: &mut Rng, state: &mut State) -> Result<Done, String> {
    state.batch += 1;
    let prefix = format!("p{}b{}", std::process::id(), state.batch);
    let paths: Vec<String> = (0..5).map(|k| format!("src/{prefix}/f{k}.rs")).collect();
    let op = state.next_op();
    let line = format!("{op} {}", paths.join(" "));
    let write = Write::Index {
        op,
        paths,
        size: rng.u64(..100_000) as i64,
    };
    access.write(&write)?;
    Ok(Some(('F', line)))
}

/// Updates the vectors of up to 4 existing entries, bumping their versions.
fn embed(access: &Access, rng: &mut Rng, state: &mut State) -> Result<Done, String> {
    let op = state.next_op();
    let write = Write::Embed {
        op: op.clone(),
        pick: rng.u64(..),
    };
    let updated = match access.write(&write)? {
        Written::Embedded(updated) => updated,
        other => return Err(format!("an embed was answered {other:?}")),
    };
    if updated.is_empty() {
        return Ok(None);
    }
    let pairs: Vec<String> = updated.iter().map(|(id, v)| format!("{id}:{v}")).collect();
    Ok(Some(('E', format!("{op} {}", pairs.join(" ")))))
}

/// Reads; every file once seen must still be there, and the count never goes down.
fn search(
    access: &Access,
    rng: &mut Rng,
    state: &mut State,
    ledger: &mut Ledger,
) -> Result<Done, String> {
    let checks: Vec<String> = (0..3.min(state.seen.len()))
        .map(|_| state.seen[rng.usize(..state.seen.len())].clone())
        .collect();
    let (count, newest, missing) = access.read(|c| {
        let count: i64 = c.query_row("SELECT count(*) FROM files", [], |r| r.get(0))?;
        let newest: Vec<String> = c
            .prepare_cached("SELECT path FROM files ORDER BY id DESC LIMIT 3")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut missing = Vec::new();
        for path in &checks {
            let found: Option<i64> = c
                .query_row("SELECT 1 FROM files WHERE path = ?1", [path], |r| r.get(0))
                .optional()?;
            if found.is_none() {
                missing.push(path.clone());
            }
        }
        Ok((count, newest, missing))
    })?;
    for path in missing {
        ledger.line(&format!("V file {path} was seen, then vanished"));
    }
    if count < state.count {
        ledger.line(&format!(
            "V files went from {} to {count} rows",
            state.count
        ));
    }
    state.count = count;
    for path in newest {
        if state.seen.len() >= 64 {
            state.seen.pop_front();
        }
        state.seen.push_back(path);
    }
    Ok(Some(('R', String::new())))
}

/// Flips the schema to the other version.
fn migrate(access: &Access) -> Result<Done, String> {
    let to_v2 = !is_v2(access)?;
    match access {
        Access::Litekeep(db) | Access::Owner(db, _) => {
            let target = if to_v2 { schema::V2 } else { schema::V1 };
            db.migrate(target, &litekeep::migrate::Options::default())
                .map_err(|e| e.to_string())?;
        }
        Access::Naive(path) => {
            // Seed 001: the rebuild committed statement by statement, no lock.
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            for sql in schema::naive_rebuild(to_v2) {
                conn.execute_batch(&sql)
                    .map_err(|e| format!("{e} (in `{sql}`)"))?;
            }
        }
    }
    Ok(Some(('M', if to_v2 { "2" } else { "1" }.to_owned())))
}

fn is_v2(access: &Access) -> Result<bool, String> {
    access
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'symbols_by_kind'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n > 0)
}

/// A flag set when stdin reaches end of file: the coordinator's way of saying "stop".
fn stop_on_stdin_close() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
        flag.store(true, Ordering::SeqCst);
    });
    stop
}
