//! Crash safety and concurrency with real processes.
//!
//! - [`sigkill_mid_migration_leaves_old_or_new_schema`]: a child process migrates a 100,000-row
//!   table through a rebuild (and the FTS5 index over it through a drop, create and `'rebuild'`)
//!   and is killed with SIGKILL, at random moments and at random moments
//!   after it is seen holding the migration lock (so inside the transaction). Afterwards the file
//!   must hold either the old or the new schema, every row with every value, no `temp_*` table,
//!   a clean `integrity_check` and `foreign_key_check`; and a new `migrate` must finish the job.
//!   In WAL and in rollback-journal mode.
//! - [`writer_process_loses_nothing_during_migrations`]: a child process commits rows one by one
//!   in WAL mode and writes every acknowledged rowid to a ledger, while this process migrates the
//!   table back and forth six times. The writer must see no error and every acknowledged row must
//!   be there at the end.
//!
//! Children are `litekeep_faults::harness` children (this test binary re-executed with a role).
//! Kill times come from the harness's seeded generator: the seed is printed, and
//! `LK_SEED=<n>` replays a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use litekeep_faults::harness::{
    self, BOUND, Child, Ledger, Scratch, copy_db, foreign_key_check, integrity, open_plain,
};
use litekeep_lock::FileLock;
use litekeep_migrate::{Options, Schema, migrate};
use rusqlite::Connection;

const SCHEMA_VAR: &str = "LK_CRASH_SCHEMA";
const LEDGER_VAR: &str = "LK_CRASH_LEDGER";
const ROWS: i64 = 100_000;

/// The old schema: a parent table with an index, a trigger, a view, a child table whose
/// foreign key points at it, and an FTS5 index over its paths kept up by a trigger.
const V1: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, note TEXT);
CREATE INDEX files_size ON files(size);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER REFERENCES files(id), name TEXT);
CREATE TABLE touched (file_id INTEGER);
CREATE TRIGGER files_touch AFTER UPDATE ON files BEGIN INSERT INTO touched VALUES (new.id); END;
CREATE VIEW big_files AS SELECT path FROM files WHERE size > 100;
CREATE VIRTUAL TABLE files_fts USING fts5(path, content='files', content_rowid='id');
CREATE TRIGGER files_fts_add AFTER INSERT ON files BEGIN
  INSERT INTO files_fts (rowid, path) VALUES (new.id, new.path);
END;
";

/// The new schema: `size` changes type, which SQLite cannot ALTER: a rebuild; and the FTS5
/// index gets another tokenizer: dropped, created and rebuilt from `files`.
const V2: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, note TEXT);
CREATE INDEX files_size ON files(size);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER REFERENCES files(id), name TEXT);
CREATE TABLE touched (file_id INTEGER);
CREATE TRIGGER files_touch AFTER UPDATE ON files BEGIN INSERT INTO touched VALUES (new.id); END;
CREATE VIEW big_files AS SELECT path FROM files WHERE size > 100;
CREATE VIRTUAL TABLE files_fts USING fts5(path, content='files', content_rowid='id', tokenize='porter');
CREATE TRIGGER files_fts_add AFTER INSERT ON files BEGIN
  INSERT INTO files_fts (rowid, path) VALUES (new.id, new.path);
END;
";

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes the tests below spawn. Without a
/// role it returns at once and passes.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    let db = harness::db();
    match role.as_str() {
        "migrate" => {
            let schema = std::env::var(SCHEMA_VAR).expect("LK_CRASH_SCHEMA not set");
            harness::say("START");
            let opts = Options::default().lock_timeout(BOUND);
            match migrate(&db, &schema, &opts) {
                Ok(_) => harness::say("DONE"),
                Err(e) => harness::say(format!("ERROR {e}")),
            }
        }
        "writer" => writer(&db),
        other => panic!("unknown child role {other:?}"),
    }
}

/// Commits one row at a time until stdin closes; appends each acknowledged rowid to the ledger.
fn writer(db: &Path) {
    let mut ledger = Ledger::append_to(&harness::env_path(LEDGER_VAR)).expect("open ledger");
    let conn = Connection::open(db).expect("writer open");
    conn.busy_timeout(BOUND).expect("busy_timeout");
    // Stop when the parent closes our stdin.
    let stop = harness::stop_on_stdin_close();
    harness::say("READY");
    let mut n: i64 = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        n += 1;
        let res = conn.execute(
            "INSERT INTO files (path, size, note) VALUES (?1, ?2, 'writer')",
            (format!("w{n}"), n),
        );
        match res {
            Ok(_) => {
                let id = conn.last_insert_rowid();
                ledger.append(format!("{id} w{n}")).expect("ledger write");
            }
            Err(e) => {
                harness::say(format!("ERROR {e}"));
                return;
            }
        }
    }
    harness::say(format!("STOPPED {n}"));
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// A `migrate` child on `db` to `schema`, once it says it starts.
fn migrate_child(db: &Path, schema: &str) -> Child {
    let kid = Child::build("migrate")
        .db(db)
        .env(SCHEMA_VAR, schema)
        .spawn();
    kid.expect_line("START");
    kid
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
         INSERT INTO files_fts (files_fts) VALUES ('rebuild');
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
    let conn = open_plain(db);
    assert_eq!(integrity(&conn), "ok", "{}", db.display());
    let fk = foreign_key_check(&conn);
    assert!(
        fk.is_empty(),
        "foreign key violations in {}: {fk:?}",
        db.display()
    );
    let leftovers: Vec<String> = harness::column(
        &conn,
        "SELECT name FROM sqlite_schema WHERE name LIKE 'temp%'",
    )
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
    // The full-text index finds every path, and agrees with `files` (FTS5's own check, against
    // its content table).
    let found = fts_search(&conn, "rs");
    assert_eq!(
        found,
        want_rows.len() as i64,
        "search results after the crash"
    );
    conn.execute(
        "INSERT INTO files_fts (files_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap_or_else(|e| panic!("FTS5 index after the crash: {e}"));
    now == v2
}

/// How many rows of `files_fts` match `query`.
fn fts_search(conn: &Connection, query: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM files_fts WHERE files_fts MATCH ?1",
        [query],
        |r| r.get(0),
    )
    .expect("search")
}

#[test]
fn sigkill_mid_migration_leaves_old_or_new_schema() {
    let dir = Scratch::new("migrate-crash-sigkill");
    let mut rng = harness::rng("crash test");
    let want = expected_rows();
    for journal_mode in ["wal", "delete"] {
        let template = template(&dir, journal_mode);
        let db = dir.join(format!("db-{journal_mode}.db"));

        // One uninterrupted run to learn how long a migration takes here.
        copy_db(&template, &db);
        let kid = migrate_child(&db, V2);
        let t0 = Instant::now();
        kid.expect_line("DONE");
        let full = t0.elapsed();
        kid.wait();
        assert!(check_healthy(&db, &want));

        let (mut old, mut new, mut inside) = (0, 0, 0);
        for round in 0..12 {
            copy_db(&template, &db);
            let kid = migrate_child(&db, V2);
            let killed = if round % 2 == 0 {
                // Anywhere: while opening, planning, waiting, copying or committing.
                kid.kill_at_random(&mut rng, full + full / 5).killed()
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
                let killed = kid.kill_at_random(&mut rng, full / 2).killed();
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
}

#[test]
fn writer_process_loses_nothing_during_migrations() {
    let dir = Scratch::new("migrate-crash-writer");
    let template = template(&dir, "wal");
    let db = dir.join("db.db");
    copy_db(&template, &db);
    let ledger = dir.join("ledger.txt");

    let mut kid = Child::build("writer")
        .db(&db)
        .env(LEDGER_VAR, &ledger)
        .spawn();
    kid.expect_line("READY");
    for (i, schema) in [V2, V1, V2, V1, V2, V1].into_iter().enumerate() {
        // Let the writer get some rows in between.
        thread::sleep(Duration::from_millis(50));
        let report = migrate(&db, schema, &Options::default().lock_timeout(BOUND))
            .unwrap_or_else(|e| panic!("migration {i} failed: {e}"));
        assert!(report.applied, "migration {i} did nothing");
    }
    thread::sleep(Duration::from_millis(50));
    kid.close_stdin();
    let last = kid.line();
    assert!(last.starts_with("STOPPED"), "writer reported {last:?}");
    kid.wait().assert_success();

    let conn = open_plain(&db);
    let mut count = 0;
    for line in Ledger::read(&ledger) {
        let (id, path) = line.split_once(' ').expect("ledger line");
        let id: i64 = id.parse().expect("ledger id");
        let found: Option<String> = conn
            .query_row("SELECT path FROM files WHERE id = ?1", [id], |r| r.get(0))
            .ok();
        assert_eq!(found.as_deref(), Some(path), "acknowledged row {id} lost");
        count += 1;
    }
    assert!(count > 0, "the writer committed nothing");
    assert_eq!(integrity(&conn), "ok");
    let total: i64 = conn
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .expect("count");
    assert_eq!(total, ROWS + count, "rows appeared or vanished");
    // The writer's rows reached the full-text index through its trigger, across six rebuilds.
    let indexed = fts_search(&conn, "w*");
    assert_eq!(
        indexed, count,
        "the writer's rows are not all in the FTS5 index"
    );
    conn.execute(
        "INSERT INTO files_fts (files_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .expect("FTS5 index agrees with files");
    eprintln!("writer committed {count} rows during 6 migrations; all present");
}
