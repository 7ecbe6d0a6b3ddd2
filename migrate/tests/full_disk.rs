//! A real full disk: a size-limited tmpfs ([`Tmpfs`]), where `ENOSPC` and `statvfs` are the
//! kernel's, not the fault VFS's.
//!
//! - [`a_rebuild_that_cannot_fit_is_refused_before_it_begins`]: with less free space than a
//!   rebuild's copy of its table and indexes, `migrate` refuses before writing anything
//!   (`DiskFull` with the free space and about how much it needs; not one write, as the fault
//!   VFS counts them; the file byte for byte as it was); with a little more than the estimate, the same
//!   migration succeeds — so the estimate is neither short nor far too cautious.
//! - [`a_wal_database_on_a_full_disk_says_the_disk_is_full`]: a WAL database whose `-shm`
//!   cannot be created on a full disk is `DiskFull`, not SQLite's bare "disk I/O error".
//!
//! Mounting needs root; elsewhere each test says why it skips.

mod common;

use std::path::Path;

use common::check_healthy;
use litekeep_faults::Config;
use litekeep_faults::harness::{Scratch, Tmpfs, remove_db, with_faults};
use litekeep_migrate::{MigrateError, Options, migrate};
use rusqlite::Connection;

const V1: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);
CREATE INDEX files_path ON files(path);
CREATE TABLE notes (body TEXT);
";

/// `size` becomes TEXT: a rebuild of `files` (and its index); `notes` stays.
const V2: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT);
CREATE INDEX files_path ON files(path);
CREATE TABLE notes (body TEXT);
";

fn mount(scratch: &Scratch, test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(&scratch.join("fs"), 12 << 20) {
        Ok(fs) => Some(fs),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// A v1 database at `db` in `mode`, with `files` (and its index) about 2.5 MiB and `notes` 1 MiB.
fn make_v1(db: &Path, mode: &str) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&format!("PRAGMA journal_mode = {mode}; {V1}"))
        .unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000)
         INSERT INTO files (path, size) SELECT printf('src/%.80c/%d.rs', 'x', i), i FROM n;
         INSERT INTO notes SELECT printf('%.1000c', 'n') FROM (SELECT 1 UNION ALL SELECT 2) a,
             (WITH RECURSIVE m(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM m WHERE j < 500) SELECT j FROM m);
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
}

/// The bytes of `files` and its index, as dbstat reads them.
fn files_bytes(db: &Path) -> u64 {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN ('files', 'files_path')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        .try_into()
        .unwrap()
}

/// Fills the disk of `fs` with a file `filler` until `leave` bytes are free (to a page).
fn leave_free(fs: &Tmpfs, leave: u64) {
    let filler = fs.path().join("filler");
    let _ = std::fs::remove_file(&filler);
    let free = fs.free();
    assert!(
        free > leave,
        "only {free} bytes free, cannot leave {leave}: {:?}",
        std::fs::read_dir(fs.path())
            .unwrap()
            .map(|e| e.map(|e| (e.file_name(), e.metadata().map(|m| m.len()).unwrap_or(0))))
            .collect::<Vec<_>>()
    );
    std::fs::write(&filler, vec![0u8; usize::try_from(free - leave).unwrap()]).unwrap();
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_rebuild_that_cannot_fit_is_refused_before_it_begins() {
    let scratch = Scratch::new("migrate-no-room");
    let Some(fs) = mount(
        &scratch,
        "a_rebuild_that_cannot_fit_is_refused_before_it_begins",
    ) else {
        return;
    };
    litekeep_faults::register_as_default().unwrap();
    for mode in ["wal", "delete"] {
        let db = fs.path().join(format!("{mode}.db"));
        make_v1(&db, mode);
        let copy = files_bytes(&db);
        assert!(copy > 2 << 20, "{mode}: files is only {copy} bytes");

        // Half the room the copy takes: refused before anything is written, which the fault
        // VFS (passing everything through, counting) tells apart from a rebuild that started,
        // hit the full disk and rolled back.
        leave_free(&fs, copy / 2);
        let bytes = std::fs::read(&db).unwrap();
        let (result, counted) = {
            let _serial = litekeep_faults::exclusive();
            with_faults(Config::new(), || migrate(&db, V2, &Options::default()))
        };
        assert_eq!(
            (counted.write, counted.growth, counted.disk_full),
            (0, 0, 0),
            "{mode}: the refused rebuild wrote: {result:?}"
        );
        let err = result.unwrap_err();
        let msg = err.to_string();
        let MigrateError::DiskFull {
            free: Some(free),
            needed: Some(needed),
            ..
        } = err
        else {
            panic!("{mode}: not DiskFull with free and needed: {msg}");
        };
        eprintln!("{mode}: {msg}");
        assert!(free < needed, "{mode}: {msg}");
        assert!(
            needed >= copy && needed <= copy + copy / 8 + (512 << 10),
            "{mode}: needs {needed} for a copy of {copy} bytes: {msg}"
        );
        assert!(msg.contains(&db.display().to_string()), "{msg}");
        assert!(
            msg.contains("needs about") && msg.contains("free space"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            bytes,
            "{mode}: refused but changed"
        );
        let wal = db.with_extension("db-wal");
        assert_eq!(
            size_of(&wal),
            0,
            "{mode}: the refused rebuild wrote to the WAL"
        );
        assert!(
            !db.with_extension("db-journal").exists(),
            "{mode}: a journal was left"
        );
        check_healthy(&db);

        // A little more than the estimate: the same migration fits.
        leave_free(&fs, needed + needed / 10);
        let report = migrate(&db, V2, &Options::default())
            .unwrap_or_else(|e| panic!("{mode}: with {} bytes free: {e}", needed + needed / 10));
        assert!(report.applied, "{mode}");
        check_healthy(&db);
        let _ = std::fs::remove_file(fs.path().join("filler"));
        remove_db(&db);
    }
}

#[test]
fn a_wal_database_on_a_full_disk_says_the_disk_is_full() {
    let scratch = Scratch::new("migrate-wal-full");
    let Some(fs) = mount(
        &scratch,
        "a_wal_database_on_a_full_disk_says_the_disk_is_full",
    ) else {
        return;
    };
    // Not beside the other test's counted migration (the fault VFS may be this process's default).
    let _serial = litekeep_faults::exclusive();
    let db = fs.path().join("app.db");
    make_v1(&db, "wal");
    // Every connection is closed: the -shm is gone, and a new one needs room for it.
    assert!(!db.with_extension("db-shm").exists());
    let bytes = std::fs::read(&db).unwrap();
    leave_free(&fs, 0);
    let err = migrate(&db, V2, &Options::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MigrateError::DiskFull { .. }), "{msg}");
    assert!(msg.contains("is full") && msg.contains("app.db"), "{msg}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    let _ = std::fs::remove_file(fs.path().join("filler"));
    migrate(&db, V2, &Options::default()).unwrap();
    check_healthy(&db);
}
