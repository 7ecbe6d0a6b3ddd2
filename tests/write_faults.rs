//! `Database::write` and `Database::read` meeting failed file operations (through the
//! `litekeep-faults` VFS, this test binary's default): the Nth read, write, sync or truncate of
//! a write transaction fails once, or fails from then on (a disk gone bad: the ROLLBACK fails
//! too). Each time:
//!
//! - the write returns an error naming the file, or succeeds when the fault was absorbed;
//! - no transaction is left open: another connection takes the write lock at once (a writer
//!   stuck inside a failed transaction would hold it until its process ends, and every writer
//!   of every process would wait on it);
//! - once the fault clears, the same handle writes and reads again, and the file holds exactly
//!   the rows of the writes that returned `Ok`, and is sound.
//!
//! CI runs a sample of points; `LK_CAMPAIGN=1` every one; `LK_SEED=<n>` replays.

use std::path::Path;

use litekeep::{Database, Durability};
use litekeep_faults::harness::{self, Scratch, integrity, open_plain, with_faults};
use litekeep_faults::{Config, Op};
use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE acks (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
                      CREATE INDEX acks_body ON acks(body);";

/// Rows per write: enough pages that a transaction reads, writes and (with FULL) syncs.
const BATCH: i64 = 60;

fn insert_batch(db: &Database, first: i64) -> Result<(), litekeep::Error> {
    db.write(|tx| {
        let mut stmt = tx.prepare_cached("INSERT INTO acks (id, body) VALUES (?1, ?2)")?;
        for id in first..first + BATCH {
            stmt.execute((id, format!("row {id} {}", "x".repeat((id % 300) as usize))))?;
        }
        Ok(())
    })
}

/// Whether another connection can take the write lock right now (no busy wait).
fn write_lock_is_free(path: &Path) -> Result<(), String> {
    let other = Connection::open(path).map_err(|e| e.to_string())?;
    other
        .execute_batch("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; ROLLBACK;")
        .map_err(|e| format!("another connection cannot take the write lock: {e}"))
}

#[test]
fn a_failed_file_operation_fails_one_write_and_leaves_no_transaction_open() {
    litekeep_faults::register_as_default().expect("register the VFS as the default");
    let _serial = litekeep_faults::exclusive();
    let dir = Scratch::new("write-faults");
    let mut rng = harness::rng("write-faults");
    for durability in [Durability::Normal, Durability::Full] {
        let path = dir.join(format!("{durability:?}.db"));
        let (failed, absorbed) = every_fault_of_a_write(&path, durability, &mut rng);
        eprintln!("{durability:?}: {failed} writes failed, {absorbed} absorbed a fault");
        assert!(failed > 0, "{durability:?}: no fault ever reached a write");
    }
}

/// Fails a sample of operations of a write on a database at `path`; returns how many writes
/// failed and how many absorbed their fault.
fn every_fault_of_a_write(
    path: &Path,
    durability: Durability,
    rng: &mut harness::Rng,
) -> (usize, usize) {
    let db = Database::builder(path)
        .schema(SCHEMA)
        .durability(durability)
        .open()
        .unwrap();
    let mut next = 1;
    let (done, count) = with_faults(Config::new(), || insert_batch(&db, next));
    done.expect("a write without faults");
    next += BATCH;
    let mut committed = BATCH;
    let (mut failed, mut absorbed) = (0, 0);
    for persistent in [false, true] {
        for op in [Op::Read, Op::Write, Op::Sync, Op::Truncate] {
            // Counted on a write like the ones below; later writes grow a little.
            let all: Vec<u64> = (1..=count.get(op) + 2).collect();
            for n in harness::sample(&all, 6, rng) {
                let what = format!(
                    "{durability:?}: {op} #{n} {}",
                    if persistent { "and on" } else { "once" }
                );
                let config = if persistent {
                    Config::new().fail_from(op, n)
                } else {
                    Config::new().fail_once(op, n)
                };
                let (result, c) = with_faults(config, || insert_batch(&db, next));
                match result {
                    Ok(()) => {
                        committed += BATCH;
                        if c.faults > 0 {
                            absorbed += 1;
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        let msg = e.to_string();
                        assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
                    }
                }
                next += BATCH;
                write_lock_is_free(path).unwrap_or_else(|e| panic!("{what}: {e}"));
                insert_batch(&db, next)
                    .unwrap_or_else(|e| panic!("{what}: the next write after the fault: {e}"));
                committed += BATCH;
                next += BATCH;
                let seen: i64 = db
                    .read(|c| c.query_row("SELECT count(*) FROM acks", [], |r| r.get(0)))
                    .unwrap_or_else(|e| panic!("{what}: a read after the fault: {e}"));
                assert_eq!(seen, committed, "{what}: rows");
            }
        }
    }
    drop(db);
    let conn = open_plain(path);
    assert_eq!(integrity(&conn), "ok");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM acks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, committed);
    (failed, absorbed)
}
