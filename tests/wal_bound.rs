//! `Builder::wal_limit` against checkpoint starvation, with the readers in another process:
//! a child keeps read transactions open without a break (each new one begins before the last
//! one ends), which keeps SQLite's automatic (passive) checkpoints from ever starting the WAL
//! over, while this process commits about 30 MiB of WAL frames through `Database::write`.
//!
//! - with a 512 KiB limit, the WAL never grows past 8 MiB (it stays near the limit: the
//!   bound's slack is for checkpoints the readers hold up on a loaded machine);
//! - with the limit off, the same workload grows it past 8 MiB — the readers do starve
//!   SQLite's own checkpoints, so the first test can fail;
//! - either way, every committed row is there and `integrity_check` is ok.
//!
//! And the write gate: three processes write through it without a pause, with no limit, and
//! the WAL still starts over (its file never grows past [`GATED_BOUND`]). A checkpoint moved
//! after the gate is let go, alone, never caught up with the writers appending meanwhile (this
//! test saw a WAL of 170 MB): `src/checkpoint.rs` copies the last frames inline, in the commit
//! of the gate's holder.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use litekeep::Database;
use litekeep_faults::harness::{self, Child, Scratch, integrity, open_plain};

const SCHEMA: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);";
/// Commits of a run: one 1,000-byte row each, so one to two 4 KiB WAL frames each.
const COMMITS: i64 = 6_000;
const LIMIT: u64 = 512 * 1024;
/// What the bounded WAL must stay under, and the unbounded one must outgrow.
const BOUND: u64 = 16 * LIMIT;
/// Commits of each gated writer process (one or two 4 KiB WAL frames each).
const GATED_COMMITS: i64 = 4_000;
/// What the WAL of the gated writers must stay under: 6,000 frames, six times SQLite's
/// automatic checkpoint threshold. A WAL that never started over would hold 12,000 or more.
/// (The checkpoints run on a thread of each process, beside the writers, `src/checkpoint.rs`:
/// alone here the WAL peaks at 2,400-3,000 frames; on a loaded machine a round holding the
/// checkpoint lock for long let it reach 4,200.)
const GATED_BOUND: u64 = 6_000 * 4_120;

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes. Without a role it returns at once.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    let result = match role.as_str() {
        "overlapping-reader" => overlapping_reader(&harness::db()),
        "gated-writer" => gated_writer(&harness::db()),
        other => Err(format!("unknown role {other}")),
    };
    match result {
        Ok(msg) => harness::say(format!("OK {msg}")),
        Err(e) => harness::say(format!("ERROR {e}")),
    }
}

/// Two connections take turns: each read transaction begins (and reads, which pins its
/// snapshot) before the other one ends, so a read transaction is open at every moment until
/// stdin closes. Gives the number of transactions.
fn overlapping_reader(db: &Path) -> Result<String, String> {
    let err = |e: rusqlite::Error| e.to_string();
    let conns = [open_plain(db), open_plain(db)];
    for conn in &conns {
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    }
    let begin = |conn: &rusqlite::Connection| -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN")?;
        conn.query_row("SELECT max(id) FROM t", [], |r| r.get::<_, Option<i64>>(0))?;
        Ok(())
    };
    let stop = harness::stop_on_stdin_close();
    begin(&conns[0]).map_err(err)?;
    harness::say("READY");
    let (mut open, mut transactions) = (0, 1u64);
    while !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(5));
        let next = 1 - open;
        begin(&conns[next]).map_err(err)?;
        conns[open].execute_batch("COMMIT").map_err(err)?;
        open = next;
        transactions += 1;
    }
    conns[open].execute_batch("COMMIT").map_err(err)?;
    Ok(transactions.to_string())
}

/// Commits [`GATED_COMMITS`] rows through the write gate, without a pause and with no WAL
/// limit, ids from `LK_FIRST_ID` on.
fn gated_writer(db: &Path) -> Result<String, String> {
    let first: i64 = std::env::var("LK_FIRST_ID")
        .map_err(|e| e.to_string())?
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    let db = Database::builder(db)
        .schema(SCHEMA)
        .write_gate(true)
        .wal_limit(0)
        .open()
        .map_err(|e| e.to_string())?;
    // All three start together, once each has opened the file: on a fast machine one could
    // otherwise be done before the next has started.
    harness::say("READY");
    harness::wait_for_go("LK_GO");
    for id in first..first + GATED_COMMITS {
        db.write(|tx| tx.execute("INSERT INTO t (id, body) VALUES (?1, zeroblob(1000))", [id]))
            .map_err(|e| e.to_string())?;
    }
    Ok(GATED_COMMITS.to_string())
}

// ---------------------------------------------------------------------------------------------
// The parent side.

fn wal_of(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Commits [`COMMITS`] rows through a handle with `limit` while an `overlapping-reader` child
/// reads; gives the largest size the WAL had after a commit. Checks every row and the file.
fn peak_wal_under_readers(name: &str, limit: u64) -> u64 {
    let dir = Scratch::new(name);
    let path = dir.join("t.db");
    let db = Database::builder(&path)
        .schema(SCHEMA)
        .wal_limit(limit)
        .open()
        .unwrap();
    let reader = Child::build("overlapping-reader").db(&path).spawn();
    reader.expect_line("READY");
    let wal = wal_of(&path);
    let mut peak = 0;
    for id in 1..=COMMITS {
        db.write(|tx| tx.execute("INSERT INTO t (id, body) VALUES (?1, zeroblob(1000))", [id]))
            .unwrap();
        peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    let said = reader.finish();
    assert!(said.starts_with("OK"), "the reader failed: {said}");
    drop(db);
    let conn = open_plain(&path);
    assert_eq!(integrity(&conn), "ok");
    let (n, sum, bytes): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(id), sum(length(body)) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (n, sum, bytes),
        (COMMITS, COMMITS * (COMMITS + 1) / 2, COMMITS * 1000)
    );
    eprintln!("{name}: limit {limit}, peak WAL {peak} bytes, reader {said}");
    peak
}

#[test]
fn the_wal_stays_near_its_limit_while_another_process_reads_without_a_break() {
    let peak = peak_wal_under_readers("wal-bounded", LIMIT);
    assert!(
        peak <= BOUND,
        "the WAL reached {peak} bytes with a limit of {LIMIT}"
    );
}

#[test]
fn without_a_limit_those_readers_let_the_wal_grow() {
    let peak = peak_wal_under_readers("wal-unbounded", 0);
    assert!(
        peak > BOUND,
        "the WAL stayed at {peak} bytes: the readers did not starve the checkpoints"
    );
}

#[test]
fn gated_writers_in_three_processes_keep_the_wal_starting_over() {
    let dir = Scratch::new("wal-gated");
    let path = dir.join("t.db");
    drop(Database::builder(&path).schema(SCHEMA).open().unwrap());
    let wal = wal_of(&path);
    let go = dir.join("go");
    let writers: Vec<Child> = (0..3)
        .map(|i| {
            Child::build("gated-writer")
                .db(&path)
                .env("LK_FIRST_ID", (1 + i * GATED_COMMITS).to_string())
                .env("LK_GO", &go)
                .spawn()
        })
        .collect();
    for writer in &writers {
        writer.expect_line("READY");
    }
    std::fs::write(&go, b"").unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let peak = thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                thread::sleep(Duration::from_millis(1));
            }
            peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()))
        });
        for writer in writers {
            let said = writer.finish();
            assert_eq!(said, format!("OK {GATED_COMMITS}"), "a writer failed");
        }
        done.store(true, Ordering::SeqCst);
        watcher.join().unwrap()
    });
    let conn = open_plain(&path);
    assert_eq!(integrity(&conn), "ok");
    let (n, sum): (i64, i64) = conn
        .query_row("SELECT count(*), sum(id) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let all = 3 * GATED_COMMITS;
    assert_eq!((n, sum), (all, all * (all + 1) / 2));
    eprintln!("3 gated writers: peak WAL {peak} bytes");
    assert!(
        peak <= GATED_BOUND,
        "the WAL reached {peak} bytes: the gated writers' checkpoints never let it start over"
    );
}
