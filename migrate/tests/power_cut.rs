//! `migrate` through the `litekeep-faults` VFS: power cuts, failed file operations and a full
//! disk, in the middle of a table rebuild.
//!
//! The database: `files` (rows with text, integers, NULLs and blobs), an index on it, a view
//! over it and `symbols` with a FOREIGN KEY to it; v2 changes `files.size` from INTEGER to TEXT
//! and adds a column, which only a rebuild can do. Sizes are integers, which TEXT affinity turns
//! into their decimal text: rows are compared with `CAST(size AS TEXT)`.
//!
//! - [`a_power_cut_anywhere_in_a_wal_rebuild_leaves_old_or_new`], and its rollback-journal
//!   twin: a child (this binary re-executed, the VFS its default) runs `migrate` to v2. A
//!   counting run without faults says how many syncs, writes and truncates it makes; then the
//!   power is cut at every sync and truncate and at a sample of writes, each cut keeping a
//!   seeded random subset of the unsynced writes and tearing one. The parent reopens with the
//!   plain VFS, runs `litekeep_recover::recover`, and checks: `integrity_check` ok (before and
//!   after), `foreign_key_check` empty, no `temp_*` table, the schema exactly v1 or v2, every
//!   row with every value; then a new `migrate` to v2 finishes.
//! - [`a_failed_file_operation_fails_the_migration_cleanly`]: the Nth read, write, sync or
//!   truncate of a migration fails (in a child that loops in-process, with the VFS as its
//!   default, so that this process's default VFS stays SQLite's own): `migrate` returns an error
//!   naming the file and the operation, the file is v1 (or v2, when the failure came after the
//!   commit) and sound, and the same `migrate` succeeds once the fault clears.
//! - [`a_full_disk_rolls_the_rebuild_back`]: the same rebuild under a growth budget cut at a
//!   sample of points of its growth: `MigrateError::DiskFull`, saying the disk is full, the file
//!   as it was.
//!
//! CI runs a sample (5,000 rows); `LK_CAMPAIGN=1` tries every sync and truncate point with
//! three ways of cutting, 200 writes, 50,000 rows (100,000 for the full disk) and every failure
//! point. `LK_SEED=<n>` replays the random choices.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litekeep_faults::harness::{
    self, Child, Exit, Scratch, copy_db, foreign_key_check, integrity, journal_mode, open_plain,
    with_faults,
};
use litekeep_faults::{Config, Op};
use litekeep_migrate::{MigrateError, Options, Schema, migrate};

/// A template database the children's files are copied from.
const TEMPLATE_VAR: &str = "LK_POWER_CUT_TEMPLATE";
/// How many rows the template holds.
const ROWS_VAR: &str = "LK_POWER_CUT_ROWS";
/// The journal mode the template is in.
const MODE_VAR: &str = "LK_POWER_CUT_MODE";

const V1: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, note TEXT, digest BLOB);
CREATE INDEX files_size ON files(size);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL);
CREATE INDEX symbols_file ON symbols(file_id);
CREATE VIEW big_files AS SELECT path FROM files WHERE size > 100;
CREATE VIRTUAL TABLE notes USING fts5(path, body);
";

/// `files.size` becomes TEXT and `lang` is added: a rebuild; the FTS5 table `notes`, which
/// holds its rows itself, gets another tokenizer: its rows are copied out, it is dropped and
/// created, and they are copied back.
const V2: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, note TEXT, digest BLOB, lang TEXT NOT NULL DEFAULT 'rust');
CREATE INDEX files_size ON files(size);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL);
CREATE INDEX symbols_file ON symbols(file_id);
CREATE VIEW big_files AS SELECT path FROM files WHERE size > 100;
CREATE VIRTUAL TABLE notes USING fts5(path, body, tokenize='porter');
";

fn options() -> Options {
    Options::default().lock_timeout(Duration::from_secs(60))
}

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    match role.as_str() {
        "migrate" => child_migrate(),
        "migrate-then-cut" => {
            child_migrate();
            litekeep_faults::cut_power();
        }
        "io-errors" => child_io_errors(),
        "disk-full" => child_disk_full(),
        other => panic!("unknown role {other}"),
    }
}

/// Migrates the database to v2 through the VFS configured by `LK_FAULTS`.
fn child_migrate() {
    litekeep_faults::init_from_env().expect("LK_FAULTS");
    let db = harness::db();
    harness::say("START");
    match migrate(&db, V2, &options()) {
        Ok(report) => {
            harness::say_counters("END");
            harness::say(format!("DONE applied={}", report.applied));
        }
        Err(e) => harness::say(format!("ERROR {e}")),
    }
}

/// What the child's in-process loops need from the parent.
struct Setup {
    db: PathBuf,
    template: PathBuf,
    rows: i64,
    mode: String,
    rng: harness::Rng,
}

fn child_setup(what: &str) -> Setup {
    litekeep_faults::register_as_default().expect("register the VFS as the default");
    Setup {
        db: harness::db(),
        template: harness::env_path(TEMPLATE_VAR),
        rows: std::env::var(ROWS_VAR)
            .expect("rows")
            .parse()
            .expect("rows"),
        mode: std::env::var(MODE_VAR).expect("mode"),
        rng: harness::rng(what),
    }
}

/// Fails the Nth read, write, sync and truncate of a migration, for a sample of N (every N in
/// a campaign); says one line per outcome, and `BARE …` for an error that does not name the
/// file and the operation. Panics on anything worse.
fn child_io_errors() {
    let mut s = child_setup("io-errors");
    let _serial = litekeep_faults::exclusive();
    copy_db(&s.template, &s.db);
    let (done, count) = with_faults(Config::new(), || migrate(&s.db, V2, &options()));
    done.expect("the migration without faults");
    harness::say(format!("COUNT {}", harness::counters_line(&count)));
    let (mut failed, mut absorbed, mut unreached) = (0, 0, 0);
    for op in [Op::Read, Op::Write, Op::Sync, Op::Truncate] {
        let all: Vec<u64> = (1..=count.get(op)).collect();
        for n in harness::sample(&all, 48, &mut s.rng) {
            copy_db(&s.template, &s.db);
            let (result, c) = with_faults(Config::new().fail_once(op, n), || {
                migrate(&s.db, V2, &options())
            });
            let what = format!("{} {op} #{n} of {}", s.mode, count.get(op));
            let state = old_or_new(&s.db, s.rows).unwrap_or_else(|e| panic!("{what}: {e}"));
            match result {
                Ok(_) if c.faults == 0 => unreached += 1,
                Ok(_) => {
                    // SQLite got over it (a failure while closing, after the commit).
                    assert_eq!(state, Version::New, "{what}: Ok but not migrated");
                    absorbed += 1;
                    harness::say(format!("ABSORBED {what}"));
                }
                Err(e) => {
                    failed += 1;
                    let msg = e.to_string();
                    let names_file = msg.contains(&s.db.display().to_string());
                    let names_op = msg.contains(harness::op_words(op));
                    let variant = format!("{e:?}");
                    let variant = variant.split([' ', '(']).next().unwrap_or_default();
                    let tag = if names_file && names_op {
                        "NAMED"
                    } else {
                        "BARE"
                    };
                    harness::say(format!("{tag} {what} [{variant}] state={state:?}: {msg}"));
                    if state == Version::New {
                        harness::say(format!("CHANGED {what}: {msg}"));
                    }
                }
            }
            let again = migrate(&s.db, V2, &options())
                .unwrap_or_else(|e| panic!("{what}: again after the fault cleared: {e}"));
            assert!(
                again.applied || state == Version::New,
                "{what}: nothing to apply"
            );
            let after = old_or_new(&s.db, s.rows).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(after, Version::New, "{what}: after the second migrate");
        }
    }
    harness::say(format!(
        "TALLY failed={failed} absorbed={absorbed} unreached={unreached}"
    ));
}

/// The rebuild under a growth budget at a sample of points of its growth (say 8 of them, 64 in
/// a campaign): a refused migration is `DiskFull`, and the file is as it was.
fn child_disk_full() {
    let mut s = child_setup("disk-full");
    let _serial = litekeep_faults::exclusive();
    copy_db(&s.template, &s.db);
    let (done, count) = with_faults(Config::new(), || migrate(&s.db, V2, &options()));
    done.expect("the migration without faults");
    let growth = count.growth;
    harness::say(format!("GROWTH {growth}"));
    let steps = harness::choose(8, 64);
    let mut budgets: Vec<u64> = (0..steps).map(|k| growth * k / steps).collect();
    // Points between two steps, drawn at random, and the last bytes of the growth.
    budgets.extend((0..steps / 4).map(|_| s.rng.u64(..growth)));
    budgets.extend([growth.saturating_sub(4096), growth.saturating_sub(1)]);
    budgets.sort_unstable();
    budgets.dedup();
    let (mut refused, mut absorbed) = (0, 0);
    for budget in budgets {
        copy_db(&s.template, &s.db);
        let (result, c) = with_faults(Config::new().disk_budget(budget), || {
            migrate(&s.db, V2, &options())
        });
        let what = format!("{} budget {budget} of {growth} bytes", s.mode);
        let state = old_or_new(&s.db, s.rows).unwrap_or_else(|e| panic!("{what}: {e}"));
        match result {
            Ok(_) => {
                // Only a refusal SQLite got over (while closing, after the commit).
                assert_eq!(state, Version::New, "{what}: Ok but not migrated");
                absorbed += 1;
                harness::say(format!("ABSORBED {what} ({} refusals)", c.disk_full));
            }
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                assert!(c.disk_full > 0, "{what}: failed without a full disk: {msg}");
                assert!(
                    matches!(e, MigrateError::DiskFull { .. }),
                    "{what}: not DiskFull: {e:?}"
                );
                assert!(msg.contains("is full"), "{what}: {msg}");
                assert!(msg.contains("needs about"), "{what}: {msg}");
                assert!(msg.contains(&s.db.display().to_string()), "{what}: {msg}");
                assert_eq!(state, Version::Old, "{what}: refused but changed: {msg}");
                harness::say(format!("REFUSED {what}: {msg}"));
            }
        }
        migrate(&s.db, V2, &options()).unwrap_or_else(|e| panic!("{what}: again with room: {e}"));
        let after = old_or_new(&s.db, s.rows).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(after, Version::New, "{what}");
    }
    harness::say(format!("TALLY refused={refused} absorbed={absorbed}"));
}

// ---------------------------------------------------------------------------------------------
// The data, and what every state must hold.

/// Row `i` of `files`: path, size as text, note, digest.
fn file_row(i: i64) -> (String, String, Option<String>, Vec<u8>) {
    (
        format!("src/f{i}.rs"),
        (i * 7 % 1000).to_string(),
        (i % 3 != 0).then(|| format!("n{i}")),
        format!("{:08x}", (i * 2_654_435_761) % 4_294_967_296).into_bytes(),
    )
}

/// The template: v1 with `rows` rows in `files` (and a symbol for every tenth) in journal
/// `mode`, checkpointed so that its main file alone is the whole database.
fn template(dir: &Path, mode: &str, rows: i64) -> PathBuf {
    let path = dir.join(format!("template-{mode}-{rows}.db"));
    harness::remove_db(&path);
    let conn = open_plain(&path);
    let got: String = conn
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .unwrap();
    assert!(got.eq_ignore_ascii_case(mode), "journal_mode {got}");
    conn.execute_batch(V1).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO files (id, path, size, note, digest)
           SELECT i, 'src/f' || i || '.rs', i * 7 % 1000,
                  CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END,
                  CAST(printf('%08x', (i * 2654435761) % 4294967296) AS BLOB) FROM n;
         INSERT INTO symbols (id, file_id, name) SELECT id / 10, id, 'sym' || id FROM files
           WHERE id % 10 = 0;
         INSERT INTO notes (rowid, path, body) SELECT id, path, 'searching ' || id FROM files;
         COMMIT;"
    ))
    .unwrap();
    if mode.eq_ignore_ascii_case("wal") {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    drop(conn);
    path
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Old,
    New,
}

/// Whether the file at `db` is v1 or v2, whole and sound: `integrity_check` ok, no foreign key
/// violation, no leftover table, every row with every value, the view working.
fn old_or_new(db: &Path, rows: i64) -> Result<Version, String> {
    let conn = open_plain(db);
    let verdict = integrity(&conn);
    if verdict != "ok" {
        return Err(format!("integrity_check: {verdict}"));
    }
    let fk = foreign_key_check(&conn);
    if !fk.is_empty() {
        return Err(format!("foreign_key_check: {fk:?}"));
    }
    let err = |e: rusqlite::Error| e.to_string();
    let leftovers: Vec<String> = harness::column(
        &conn,
        "SELECT name FROM sqlite_schema WHERE name LIKE 'temp%' OR name LIKE '%new%'",
    )
    .map_err(err)?;
    if !leftovers.is_empty() {
        return Err(format!("leftover tables {leftovers:?}"));
    }
    let now = Schema::read(&conn)
        .map_err(|e| e.to_string())?
        .fingerprint();
    let version = if now == Schema::from_sql(V1).unwrap().fingerprint() {
        Version::Old
    } else if now == Schema::from_sql(V2).unwrap().fingerprint() {
        Version::New
    } else {
        let sql = litekeep_migrate::export_sql(&conn).unwrap_or_default();
        return Err(format!("the schema is neither v1 nor v2:\n{sql}"));
    };
    // The FTS5 table: every row found by a search, the index sound.
    let found: i64 = conn
        .query_row(
            "SELECT count(*) FROM notes WHERE notes MATCH 'rs'",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if found != rows {
        return Err(format!("notes: a search finds {found} rows of {rows}"));
    }
    conn.execute("INSERT INTO notes (notes) VALUES ('integrity-check')", [])
        .map_err(|e| format!("notes: FTS5 integrity-check: {e}"))?;
    let mut stmt = conn
        .prepare("SELECT id, path, CAST(size AS TEXT), note, digest FROM files ORDER BY id")
        .map_err(err)?;
    let mut found = stmt.query([]).map_err(err)?;
    let mut want = 1;
    while let Some(r) = found.next().map_err(err)? {
        let id: i64 = r.get(0).map_err(err)?;
        if id != want {
            return Err(format!("files: row {want} missing (next is {id})"));
        }
        let got = (
            r.get::<_, String>(1).map_err(err)?,
            r.get::<_, String>(2).map_err(err)?,
            r.get::<_, Option<String>>(3).map_err(err)?,
            r.get::<_, Vec<u8>>(4).map_err(err)?,
        );
        if got != file_row(id) {
            return Err(format!(
                "files: row {id} is {got:?}, not {:?}",
                file_row(id)
            ));
        }
        want += 1;
    }
    if want != rows + 1 {
        return Err(format!("files: rows {want}..={rows} missing"));
    }
    let symbols: (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(id * 10 = file_id AND name = 'sym' || file_id), 0) \
             FROM symbols",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    if symbols != (rows / 10, rows / 10) {
        return Err(format!("symbols: {symbols:?}, want {} whole", rows / 10));
    }
    conn.query_row("SELECT count(*) FROM big_files", [], |r| r.get::<_, i64>(0))
        .map_err(|e| format!("view big_files: {e}"))?;
    if version == Version::New {
        let odd: i64 = conn
            .query_row(
                "SELECT count(*) FROM files WHERE lang IS NOT 'rust'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if odd != 0 {
            return Err(format!("{odd} rows without the new column's default"));
        }
    }
    Ok(version)
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// What a series of cuts came to.
#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    cut: usize,
    unreached: usize,
    old: usize,
    new: usize,
    repaired: usize,
    lost_rows: usize,
    failures: Vec<String>,
}

/// Copies the template, runs the child with `faults`, checks what it left; then migrates again.
fn cut_once(template: &Path, db: &Path, rows: i64, faults: &Config, tally: &mut Tally) {
    copy_db(template, db);
    let mode = journal_mode(&open_plain(template));
    let exit = Child::build("migrate").db(db).faults(faults).run();
    tally.tried += 1;
    let checked = check_cut(db, rows, &exit, tally).and_then(|()| {
        let now = journal_mode(&open_plain(db));
        (now == mode)
            .then_some(())
            .ok_or_else(|| format!("journal mode {now}, was {mode}"))
    });
    if let Err(e) = checked {
        tally
            .failures
            .push(format!("{e}\n  child: {}", exit.describe()));
    }
}

fn check_cut(db: &Path, rows: i64, exit: &Exit, tally: &mut Tally) -> Result<(), String> {
    if exit.crashed() {
        tally.cut += 1;
    } else if exit.success() && exit.find("DONE").is_some() {
        tally.unreached += 1;
    } else {
        return Err("the child neither finished nor was cut".to_owned());
    }
    // Before anything repairs it: SQLite alone must find the file sound.
    let first = integrity(&open_plain(db));
    if first != "ok" {
        return Err(format!("integrity_check right after the cut: {first}"));
    }
    let report = litekeep_recover::recover(
        db,
        &litekeep_recover::Options::default().expect_table("files"),
    )
    .map_err(|e| format!("recover: {e}"))?;
    if report.applied {
        tally.repaired += 1;
    }
    let version = old_or_new(db, rows).inspect_err(|e| {
        if e.contains("missing") {
            tally.lost_rows += 1;
        }
    })?;
    match version {
        Version::Old => tally.old += 1,
        Version::New => tally.new += 1,
    }
    migrate(db, V2, &options()).map_err(|e| format!("migrate after the cut: {e}"))?;
    match old_or_new(db, rows)? {
        Version::New => Ok(()),
        Version::Old => Err("still v1 after migrating again".to_owned()),
    }
}

/// Every sync and truncate point of a migration, and a sample of its writes, in journal `mode`.
fn every_point_of_a_rebuild(mode: &str) {
    let started = Instant::now();
    let rows = harness::choose(5_000, 50_000);
    let mut rng = harness::rng(&format!("power cuts, {mode}"));
    let dir = Scratch::new(&format!("migrate-power-cut-{mode}"));
    let template = template(&dir, mode, rows);
    let db = dir.join("app.db");

    copy_db(&template, &db);
    let count = Child::build("migrate").db(&db).faults("default").run();
    count.assert_success();
    let c = count.counters("END");
    assert!(
        count.find("DONE applied=true").is_some(),
        "{}",
        count.describe()
    );
    assert_eq!(old_or_new(&db, rows), Ok(Version::New));
    eprintln!(
        "{mode}: a migration of {rows} rows makes {} syncs, {} truncates, {} writes ({:?})",
        c.sync, c.truncate, c.write, count.elapsed
    );
    assert!(c.sync >= 1, "{mode}: the migration never synced");

    let points = harness::cut_points(&c, harness::choose(12, 200), &mut rng);
    let mut tally = Tally::default();
    for faults in &points {
        cut_once(&template, &db, rows, faults, &mut tally);
    }
    eprintln!(
        "{mode}: {} points tried, {} cut ({} never reached): old schema {}, new {}; recover \
         repaired {}; rows lost in {}; {} failures ({:?})",
        tally.tried,
        tally.cut,
        tally.unreached,
        tally.old,
        tally.new,
        tally.repaired,
        tally.lost_rows,
        tally.failures.len(),
        started.elapsed()
    );
    assert!(
        tally.failures.is_empty(),
        "{mode}: {} of {} cuts left a bad state:\n{}",
        tally.failures.len(),
        tally.tried,
        tally.failures.join("\n")
    );
    assert!(tally.cut > 0, "{mode}: no cut happened");
    assert!(tally.old > 0, "{mode}: no cut came before the commit");
}

#[test]
fn a_power_cut_anywhere_in_a_wal_rebuild_leaves_old_or_new() {
    every_point_of_a_rebuild("WAL");
}

#[test]
fn a_power_cut_anywhere_in_a_rollback_journal_rebuild_leaves_old_or_new() {
    every_point_of_a_rebuild("DELETE");
}

/// Runs a child that loops in-process over failures (`role`), on a template of `rows` rows in
/// `mode`.
fn in_process_child(role: &str, mode: &str, rows: i64) -> Exit {
    let dir = Scratch::new(&format!("migrate-{role}-{mode}"));
    let template = template(&dir, mode, rows);
    let seed = harness::seed();
    let exit = Child::build(role)
        .db(dir.join("app.db"))
        .env(TEMPLATE_VAR, &template)
        .env(ROWS_VAR, rows.to_string())
        .env(MODE_VAR, mode)
        .env(harness::SEED_VAR, seed.to_string())
        .bound(Duration::from_secs(1800))
        .run();
    assert!(
        exit.success(),
        "{role} {mode} (LK_SEED={seed}): {}",
        exit.describe()
    );
    exit
}

/// A migration that returned is durable: the power cut right after it (every write not yet
/// synced lost, and every deletion whose directory was not synced: in rollback-journal mode
/// the commit is the journal's deletion) leaves the new schema, in both journal modes.
#[test]
fn a_power_cut_right_after_a_migration_keeps_it() {
    let dir = Scratch::new("migrate-then-cut");
    for mode in ["DELETE", "WAL"] {
        let template = template(&dir, mode, 2_000);
        let db = dir.join(format!("then-cut-{mode}.db"));
        copy_db(&template, &db);
        let exit = Child::build("migrate-then-cut")
            .db(&db)
            .faults("default;crash=manual;keep=none")
            .run();
        assert!(exit.crashed(), "{mode}: {}", exit.describe());
        assert!(
            exit.find("DONE applied=true").is_some(),
            "{mode}: {}",
            exit.describe()
        );
        assert_eq!(
            old_or_new(&db, 2_000),
            Ok(Version::New),
            "{mode}: the acknowledged migration was undone by the cut: {}",
            exit.describe()
        );
    }
}

#[test]
fn a_failed_file_operation_fails_the_migration_cleanly() {
    let mut bare = String::new();
    for mode in ["WAL", "DELETE"] {
        let exit = in_process_child("io-errors", mode, 1_000);
        for line in exit.all("BARE ") {
            let _ = writeln!(bare, "  {line}");
        }
        for line in exit.all("CHANGED ") {
            eprintln!("{mode}: an error after the commit: {line}");
        }
        let named = exit.all("NAMED ").count();
        eprintln!(
            "{mode}: [open read write sync truncate lock …] of a migration: {}; {}; {named} \
             errors named the file and the operation",
            exit.find("COUNT ").unwrap_or_default(),
            exit.find("TALLY ").unwrap_or_default()
        );
        assert!(named > 0, "{mode}: no failure came back as an error");
    }
    assert!(
        bare.is_empty(),
        "errors that do not name the file and the failed operation:\n{bare}"
    );
}

#[test]
fn a_full_disk_rolls_the_rebuild_back() {
    for mode in ["WAL", "DELETE"] {
        let exit = in_process_child("disk-full", mode, harness::choose(5_000, 100_000));
        let refused = exit.all("REFUSED ").count();
        eprintln!(
            "{mode}: the rebuild grows the files by {} bytes; {}",
            exit.find("GROWTH ").unwrap_or_default(),
            exit.find("TALLY ").unwrap_or_default()
        );
        if let Some(example) = exit.find("REFUSED ") {
            eprintln!("{mode}: e.g. {example}");
        }
        assert!(refused > 0, "{mode}: no budget refused the migration");
    }
}
