//! Simulated power cuts, in real child processes (this binary re-executed):
//!
//! - a commit that was never synced (`synchronous=OFF`) is gone after a cut that keeps no held
//!   write, and there after one that keeps them all; the database is intact either way;
//! - with `synchronous=FULL`, in `journal_mode=DELETE` and WAL, a cut at every write, sync and
//!   truncate of the commit after a synced one, with several seeds and a torn write: the synced
//!   row is always there, the next transaction is all there or not at all, `integrity_check` ok;
//! - a cut at a seeded random point anywhere in the run (the closing checkpoint included) leaves
//!   a consistent database;
//! - a deletion is lost by a cut unless its directory was synced: in `journal_mode=DELETE` a
//!   commit made with `synchronous=FULL` is rolled back by a cut right after it (the journal
//!   comes back hot), one made with `EXTRA` survives.

use std::path::Path;

use litekeep_faults::harness::{
    self, Child, Exit, Scratch, integrity, open_faulty, open_plain, say,
};
use litekeep_faults::{Counters, EXIT_CRASHED};

const ROW1: usize = 3000;
const LATER: std::ops::RangeInclusive<i64> = 2..=5;
const LATER_LEN: usize = 2000;

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    let db = harness::db();
    litekeep_faults::init_from_env().expect("LK_FAULTS");
    match role.split_once(':') {
        Some(("unsynced", _)) => unsynced(&db),
        Some(("threads", _)) => threads(&db),
        Some(("commit-then-cut", sync)) => commit_then_cut(&db, sync),
        Some(("two-commits", how)) => {
            let (mode, sync) = how.split_once(':').unwrap_or((how, "FULL"));
            two_commits(&db, mode, sync)
        }
        _ => panic!("unknown role {role}"),
    }
}

/// Commits a row with no sync, then cuts the power.
fn unsynced(db: &Path) {
    let conn = open_faulty(db).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    conn.execute("INSERT INTO t (id, v) VALUES (2, 'unsynced')", [])
        .unwrap();
    say("INSERTED");
    litekeep_faults::cut_power();
}

/// Commits a row in `journal_mode=DELETE` with `synchronous` = `sync`, then cuts the power at
/// once: after the commit, before anything else syncs the directory.
fn commit_then_cut(db: &Path, sync: &str) {
    let conn = open_faulty(db).unwrap();
    conn.pragma_update(None, "synchronous", sync).unwrap();
    conn.execute("INSERT INTO t (id, v) VALUES (2, 'committed')", [])
        .unwrap();
    say("COMMITTED");
    litekeep_faults::cut_power();
}

/// Three threads, a connection each, commit rows (WAL, `synchronous=FULL`) and acknowledge
/// each one once its commit returned.
fn threads(db: &Path) {
    let conn = open_faulty(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .unwrap();
    let workers: Vec<_> = (0..3i64)
        .map(|t| {
            let db = db.to_path_buf();
            std::thread::spawn(move || {
                let conn = open_faulty(&db).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(30))
                    .unwrap();
                conn.pragma_update(None, "synchronous", "FULL").unwrap();
                for n in 0..100 {
                    let id = t * 1000 + n;
                    conn.execute(
                        "INSERT INTO t (id, v) VALUES (?1, ?2)",
                        (id, vec![(id % 251) as u8; 1500]),
                    )
                    .unwrap();
                    say(format!("ACK {id}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

fn counts(c: Counters) -> String {
    format!("{} {} {} {}", c.write, c.sync, c.truncate, c.mutations())
}

/// A fresh database in journal `mode` and `synchronous` mode `sync`: row 1 in one transaction,
/// rows 2..=5 in the next, telling the counters after each.
fn two_commits(db: &Path, mode: &str, sync: &str) {
    litekeep_faults::register().unwrap();
    let mut conn = open_faulty(db).unwrap();
    let got: String = conn
        .pragma_update_and_check(None, "journal_mode", mode, |r| r.get(0))
        .unwrap();
    assert_eq!(got.to_uppercase(), mode);
    conn.pragma_update(None, "synchronous", sync).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .unwrap();
    conn.execute("INSERT INTO t (id, v) VALUES (1, ?1)", [vec![1u8; ROW1]])
        .unwrap();
    say(format!("AFTER1 {}", counts(litekeep_faults::counters())));
    let tx = conn.transaction().unwrap();
    for id in LATER {
        tx.execute(
            "INSERT INTO t (id, v) VALUES (?1, ?2)",
            (id, vec![id as u8; LATER_LEN]),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    say(format!("AFTER2 {}", counts(litekeep_faults::counters())));
    drop(conn);
    say(format!("CLOSED {}", counts(litekeep_faults::counters())));
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// What a cut left, if it is sound: intact, row 1 whole if there, rows 2..=5 all or none.
/// Gives the ids.
fn after_cut(db: &Path) -> Result<Vec<i64>, String> {
    let conn = open_plain(db);
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("integrity_check: {e}"))?;
    if verdict != "ok" {
        return Err(format!("integrity_check: {verdict}"));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 't'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if tables == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT id, v FROM t ORDER BY id")
        .map_err(|e| e.to_string())?;
    let rows: Vec<(i64, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())?;
    for (id, v) in &rows {
        let len = if *id == 1 { ROW1 } else { LATER_LEN };
        if v != &vec![*id as u8; len] {
            return Err(format!("row {id} damaged"));
        }
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let all: Vec<i64> = std::iter::once(1).chain(LATER).collect();
    if !(ids.is_empty() || ids == [1] || ids == all) {
        return Err(format!("a transaction came back in part: {ids:?}"));
    }
    Ok(ids)
}

#[test]
fn an_unsynced_commit_is_lost_by_a_cut_unless_the_disk_got_it() {
    for mode in ["DELETE", "WAL"] {
        for (keep, want) in [("none", vec![1]), ("all", vec![1, 2])] {
            let dir = Scratch::new(&format!("unsynced-{mode}-{keep}"));
            let db = dir.join("t.db");
            {
                let conn = open_plain(&db);
                conn.pragma_update(None, "journal_mode", mode).unwrap();
                conn.execute_batch(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
                     INSERT INTO t VALUES (1, 'synced');",
                )
                .unwrap();
            }
            let faults = format!("crash=manual;keep={keep}");
            let out = run_child("unsynced:", &db, Some(&faults));
            let context = format!("{mode} {faults}: {}", out.stderr);
            assert_eq!(out.code(), Some(EXIT_CRASHED), "{context}");
            assert_eq!(out.lines, ["INSERTED"], "{context}");
            assert!(out.stderr.contains("power cut by cut_power()"), "{context}");
            assert_eq!(sound_ids(&db), Ok(want), "{context}");
        }
    }
}

/// In `journal_mode=DELETE` the commit point is the deletion of the journal, a directory
/// operation. `synchronous=FULL` does not sync the directory after it (SQLite documents
/// `EXTRA` for that): a cut right after the commit can lose the deletion, the journal comes
/// back hot, and the committed row is rolled back. With `EXTRA` it never is.
#[test]
fn a_delete_mode_commit_needs_extra_to_outlive_a_cut_right_after_it() {
    for (sync, want) in [("FULL", vec![1]), ("EXTRA", vec![1, 2])] {
        let dir = Scratch::new(&format!("delete-commit-{sync}"));
        let db = dir.join("t.db");
        {
            let conn = open_plain(&db);
            conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
            conn.execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
                 INSERT INTO t VALUES (1, 'before');",
            )
            .unwrap();
        }
        let out = run_child(
            &format!("commit-then-cut:{sync}"),
            &db,
            Some("crash=manual;keep=none"),
        );
        let context = format!("{sync}: {}", out.stderr);
        assert_eq!(out.code(), Some(EXIT_CRASHED), "{context}");
        assert_eq!(out.lines, ["COMMITTED"], "{context}");
        let journal_back = db.with_extension("db-journal").exists();
        assert_eq!(journal_back, sync == "FULL", "{context}");
        assert_eq!(sound_ids(&db), Ok(want), "{context}");
    }
}

/// The ids of `t`, if the file passes `integrity_check` (else the verdict).
fn sound_ids(db: &Path) -> Result<Vec<i64>, String> {
    let conn = open_plain(db);
    match integrity(&conn).as_str() {
        "ok" => {}
        other => return Err(other.to_owned()),
    }
    harness::column(&conn, "SELECT id FROM t ORDER BY id").map_err(|e| e.to_string())
}

/// The counting run: the counters after commit 1, after commit 2 and after the close.
fn count_points(dir: &Path, mode: &str) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let out = run_child(&format!("two-commits:{mode}"), &dir.join("count.db"), None);
    assert_eq!(out.code(), Some(0), "counting run: {}", out.stderr);
    let (after1, after2, closed) = (
        out.field("AFTER1 "),
        out.field("AFTER2 "),
        out.field("CLOSED "),
    );
    eprintln!(
        "{mode}: [write sync truncate mutations] after commit 1 {after1:?}, after commit 2 \
         {after2:?}, after close {closed:?}"
    );
    (after1, after2, closed)
}

/// Each crash point is tried these ways.
const HOW: [&str; 6] = [
    "seed=1;tear",
    "seed=2;tear",
    "seed=3;tear",
    "keep=all;tear",
    "keep=all",
    "keep=none",
];

/// Cuts the power at every write, sync and truncate of the second commit; gives how many cuts
/// left it whole.
fn every_point_of_the_second_commit(mode: &str) -> usize {
    let dir = Scratch::new(&format!("points-{mode}"));
    let (after1, after2, _) = count_points(&dir, mode);
    let mut points = Vec::new();
    for (i, op) in ["write", "sync", "truncate"].into_iter().enumerate() {
        for n in after1[i] + 1..=after2[i] {
            points.push(format!("crash={op}:{n}"));
        }
    }
    assert!(
        points.iter().any(|p| p.starts_with("crash=sync")),
        "{mode}: no sync in a FULL commit"
    );
    let (mut whole, mut none, mut tries) = (0, 0, 0);
    for point in &points {
        for how in HOW {
            let faults = format!("{point};{how}");
            let run = dir.join(format!("run-{tries}"));
            std::fs::create_dir_all(&run).unwrap();
            let db = run.join("t.db");
            let out = run_child(&format!("two-commits:{mode}"), &db, Some(&faults));
            let context = format!("{mode} {faults}: {}", out.stderr);
            assert_eq!(out.code(), Some(EXIT_CRASHED), "{context}");
            let ids = after_cut(&db).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert!(!ids.is_empty(), "{context}: the synced row 1 is gone");
            if ids.len() == 1 {
                none += 1;
            } else {
                whole += 1;
            }
            tries += 1;
            let _ = std::fs::remove_dir_all(&run);
        }
    }
    eprintln!(
        "{mode}: {} crash points x {} = {tries} cuts: second commit whole {whole}, absent {none}",
        points.len(),
        HOW.len()
    );
    whole
}

#[test]
fn a_synced_commit_survives_a_cut_anywhere_in_the_next_delete_mode() {
    // The commit point is the journal's deletion, after the last sync: a cut at any write or
    // sync before it finds a hot journal and rolls the transaction back.
    assert_eq!(every_point_of_the_second_commit("DELETE"), 0);
}

#[test]
fn a_synced_commit_survives_a_cut_anywhere_in_the_next_wal_mode() {
    // A cut instead of the commit's WAL sync that keeps every frame (untorn) leaves a valid
    // commit frame: recovery replays the transaction.
    assert!(every_point_of_the_second_commit("WAL") > 0);
}

#[test]
fn a_cut_at_a_random_point_leaves_a_consistent_database() {
    for mode in ["DELETE", "WAL"] {
        let dir = Scratch::new(&format!("random-{mode}"));
        let (_, _, closed) = count_points(&dir, mode);
        let mut seen = std::collections::BTreeSet::new();
        for seed in 1..=12 {
            let faults = format!("crash=random:{};seed={seed};tear", closed[3]);
            let run = dir.join(format!("run-{seed}"));
            std::fs::create_dir_all(&run).unwrap();
            let db = run.join("t.db");
            let out = run_child(&format!("two-commits:{mode}"), &db, Some(&faults));
            let context = format!("{mode} {faults}: {}", out.stderr);
            assert_eq!(out.code(), Some(EXIT_CRASHED), "{context}");
            let ids = after_cut(&db).unwrap_or_else(|e| panic!("{context}: {e}"));
            seen.insert(ids.len());
            let _ = std::fs::remove_dir_all(&run);
        }
        eprintln!("{mode}: rows left by 12 random cuts: {seen:?}");
    }
}

/// The control: with `synchronous=OFF` SQLite promises nothing across a power cut, and the
/// simulation must be able to show it (else it proves nothing for `FULL`).
#[test]
fn without_syncs_some_cut_loses_the_committed_row_or_corrupts() {
    let dir = Scratch::new("control");
    let role = "two-commits:DELETE:OFF";
    let out = run_child(role, &dir.join("count.db"), None);
    assert_eq!(out.code(), Some(0), "counting run: {}", out.stderr);
    let (after1, after2) = (out.field("AFTER1 "), out.field("AFTER2 "));
    assert_eq!(after2[1], 0, "synchronous=OFF synced");
    let mut broken = Vec::new();
    let mut tries = 0;
    for n in after1[0] + 1..=after2[0] {
        for seed in 1..=4 {
            let faults = format!("crash=write:{n};seed={seed};tear");
            let run = dir.join(format!("run-{tries}"));
            std::fs::create_dir_all(&run).unwrap();
            let db = run.join("t.db");
            let out = run_child(role, &db, Some(&faults));
            assert_eq!(out.code(), Some(EXIT_CRASHED), "{faults}: {}", out.stderr);
            match after_cut(&db) {
                Ok(ids) if ids.first() == Some(&1) => {}
                Ok(ids) => broken.push(format!("{faults}: rows {ids:?}")),
                Err(e) => broken.push(format!("{faults}: {e}")),
            }
            tries += 1;
            let _ = std::fs::remove_dir_all(&run);
        }
    }
    eprintln!(
        "synchronous=OFF: {} of {tries} cuts broke the database:",
        broken.len()
    );
    for b in &broken {
        eprintln!("  {b}");
    }
    assert!(
        !broken.is_empty(),
        "no cut of {tries} hurt an unsynced database"
    );
}

/// Threads of one process commit concurrently; a cut at some sync or write: every row
/// acknowledged (its commit returned, so its WAL frames were synced) is there, whole.
#[test]
fn acknowledged_commits_of_concurrent_threads_survive_a_cut() {
    let dir = Scratch::new("threads");
    let mut total_acked = 0;
    for (i, point) in [
        "sync:40",
        "sync:97",
        "write:150;tear",
        "sync:230;seed=4;tear",
    ]
    .into_iter()
    .enumerate()
    {
        let faults = format!("crash={point}");
        let run = dir.join(format!("run-{i}"));
        std::fs::create_dir_all(&run).unwrap();
        let db = run.join("t.db");
        let out = run_child("threads:", &db, Some(&faults));
        let context = format!("{faults}: {}", out.stderr);
        assert_eq!(out.code(), Some(EXIT_CRASHED), "{context}");
        let conn = open_plain(&db);
        assert_eq!(integrity(&conn), "ok", "{context}");
        let acked: Vec<i64> = out
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("ACK ")?.parse().ok())
            .collect();
        for id in &acked {
            let v: Vec<u8> = conn
                .query_row("SELECT v FROM t WHERE id = ?1", [id], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{context}: acknowledged row {id}: {e}"));
            assert_eq!(v, vec![(id % 251) as u8; 1500], "{context}: row {id}");
        }
        total_acked += acked.len();
        drop(conn);
        let _ = std::fs::remove_dir_all(&run);
    }
    assert!(total_acked > 0, "nothing was acknowledged before the cuts");
    eprintln!("threads: {total_acked} acknowledged rows over 4 cuts, all there");
}

/// Runs this binary's `child_process_entry` with `role`, the database and `faults` (the
/// `LK_FAULTS` value, if any), to its end.
fn run_child(role: &str, db: &Path, faults: Option<&str>) -> Exit {
    let child = Child::build(role).db(db);
    match faults {
        Some(faults) => child.faults(faults),
        None => child,
    }
    .run()
}
