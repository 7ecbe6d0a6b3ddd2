//! Bad input gets a clear error that names the file, and the file is left byte for byte as it
//! was: not a database, a garbage (or encrypted) header, a truncated file, a read-only file, a
//! lock held by another process past the timeout, a corrupted page.
//!
//! The read-only test needs a user that file permissions apply to: run as root, it runs its
//! child (this test binary, through the shared harness) as `nobody` ([`Spawn::as_user`]).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::fresh;
use litekeep_faults::harness::{self, Child, Scratch};
use litekeep_recover::{Options, RecoverError, check, recover};
use rusqlite::Connection;

/// `nobody`'s uid and gid.
const NOBODY: u32 = 65534;

/// NOT A REAL TEST: the entry point of the child process [`a_read_only_file_is_an_error_and_untouched`]
/// spawns; returns at once without a role.
#[test]
fn child_process_entry() {
    match harness::role().as_deref() {
        None => {}
        Some("recover") => harness::say(outcome(&harness::db())),
        Some(other) => panic!("unknown role {other}"),
    }
}

/// What `recover` did with `db`, in one line: `READONLY <message>`, `OTHER <message>` or `OK`.
fn outcome(db: &Path) -> String {
    match recover(db, &Options::default()) {
        Err(e @ RecoverError::ReadOnly { .. }) => format!("READONLY {e}"),
        Err(e) => format!("OTHER {e}"),
        Ok(r) => format!("OK applied={}", r.applied),
    }
}

/// A database with a leftover to repair: a Django rebuild stopped after dropping the original.
fn with_leftover(path: &Path) {
    fresh(path, 30);
    Connection::open(path)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON;
             CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, lang TEXT);
             INSERT INTO new__files (id, path, size) SELECT id, path, size FROM files;
             DROP TABLE files;",
        )
        .unwrap();
}

fn names_file(err: &RecoverError, path: &Path) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let dir = Scratch::new("recover-notdb");
    for (name, bytes) in [
        ("notes.txt", b"just some notes, longer than a hundred bytes of text so that it is not too short for a header ....".repeat(2)),
        ("random.bin", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("short.db", b"SQLite format 3\0".to_vec()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = recover(&path, &Options::default()).unwrap_err();
        assert!(matches!(err, RecoverError::NotADatabase { .. }), "{name}: {err}");
        names_file(&err, &path);
        let err = check(&path, false).unwrap_err();
        assert!(matches!(err, RecoverError::NotADatabase { .. }), "{name}: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} changed");
    }
    let missing = dir.join("missing.db");
    let err = recover(&missing, &Options::default()).unwrap_err();
    assert!(matches!(err, RecoverError::NotFound { .. }), "{err}");
    assert!(!missing.exists(), "recover created the file");
}

#[test]
fn a_truncated_file_never_checks_ok_and_is_not_repaired() {
    let dir = Scratch::new("recover-truncated");
    let db = dir.join("app.db");
    with_leftover(&db);
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE blob (b); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
             INSERT INTO blob SELECT randomblob(300) FROM n;",
        )
        .unwrap();
    let full = std::fs::read(&db).unwrap();
    let cut = &full[..full.len() / 2];
    std::fs::write(&db, cut).unwrap();
    let health = check(&db, false).unwrap();
    assert!(!health.integrity_ok(), "{health}");
    assert!(!health.is_healthy());
    let quick = check(&db, true).unwrap();
    assert!(!quick.integrity_ok(), "{quick}");
    let err = recover(&db, &Options::default()).unwrap_err();
    assert!(matches!(err, RecoverError::Corrupt { .. }), "{err}");
    names_file(&err, &db);
    assert_eq!(std::fs::read(&db).unwrap(), cut);
}

#[test]
fn a_corrupted_page_is_reported_not_ok_and_not_repaired() {
    let dir = Scratch::new("recover-corrupt");
    let db = dir.join("app.db");
    with_leftover(&db);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE bulk (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX bulk_v ON bulk(v);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO bulk (v) SELECT 'value ' || i FROM n;",
    )
    .unwrap();
    let page_size = conn
        .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize;
    let root = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'bulk_v'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize;
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    // Scribble over the middle of the index's root page (pages count from 1).
    let at = (root - 1) * page_size + 8;
    for (i, b) in bytes[at..at + 200].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let health = check(&db, false).unwrap();
    assert!(!health.integrity_ok(), "{health}");
    assert!(health.to_json().contains("\"integrity\""));
    let err = recover(&db, &Options::default()).unwrap_err();
    assert!(matches!(err, RecoverError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
}

#[test]
fn a_lock_held_past_the_timeout_names_the_holder_and_changes_nothing() {
    let dir = Scratch::new("recover-locked");
    let db = dir.join("app.db");
    with_leftover(&db);
    let bytes = std::fs::read(&db).unwrap();
    let lock_file = litekeep_lock::lock_path_for(&db);
    std::fs::write(&lock_file, b"").unwrap();
    // util-linux flock(1) holds the lock in another process.
    let announce = format!("echo '{}LOCKED' && exec sleep 60", harness::MARK);
    let args: [&std::ffi::OsStr; 6] = [
        "-o".as_ref(),
        "-x".as_ref(),
        lock_file.as_os_str(),
        "sh".as_ref(),
        "-c".as_ref(),
        announce.as_ref(),
    ];
    let holder = Child::program("flock(1)", "flock", args).spawn();
    assert_eq!(holder.line(), "LOCKED");
    let result = recover(
        &db,
        &Options::default().lock_timeout(Duration::from_millis(300)),
    );
    let _ = holder.kill();
    let err = result.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RecoverError::Lock(_)), "{msg}");
    assert!(msg.contains("held by pid"), "{msg}");
    assert!(msg.contains(&lock_file.display().to_string()), "{msg}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
}

#[test]
fn a_read_only_file_is_an_error_and_untouched() {
    let dir = Scratch::new("recover-readonly");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.join("app.db");
    with_leftover(&db);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let bytes = std::fs::read(&db).unwrap();
    let outcome = if harness::is_root() {
        let exit = Child::build("recover")
            .db(&db)
            .as_user(NOBODY, NOBODY)
            .run();
        exit.assert_success();
        exit.lines
            .first()
            .cloned()
            .unwrap_or_else(|| exit.describe())
    } else {
        outcome(&db)
    };
    assert!(outcome.starts_with("READONLY"), "{outcome}");
    assert!(outcome.contains("app.db"), "{outcome}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    // A read-only file that needs nothing is fine to "recover": there is nothing to write.
    let clean = dir.join("clean.db");
    fresh(&clean, 5);
    std::fs::set_permissions(&clean, std::fs::Permissions::from_mode(0o444)).unwrap();
    if !harness::is_root() {
        assert!(recover(&clean, &Options::default()).unwrap().is_clean());
    }
}
