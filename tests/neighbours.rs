//! A hostile neighbour in the database's directory: a symbolic link planted at the name of a
//! lock file litekeep uses makes every way in — `Database::open`, `migrate`, `recover`, and the
//! CLI's `lock`, `migrate`, `recover` and `serve` (its log too) — refuse with an error naming the file, and the file the
//! link points to stays byte for byte as it was (the lock crate's `tests/neighbours.rs` covers
//! the other things a neighbour can plant there).

#![cfg(feature = "cli")]

use std::fs;
use std::path::{Path, PathBuf};

use litekeep::Database;
use litekeep::lock::{Found, LockError, lock_path_for, write_gate_path_for};

mod cli_support;
use cli_support::*;

const VICTIM: &[u8] = b"IMPORTANT USER DATA\n";

/// A directory with a database holding one table, and the neighbour's victim.
fn setup(test: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(test);
    let db = dir.join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL);")
        .unwrap();
    drop(conn);
    let victim = dir.join("victim.txt");
    fs::write(&victim, VICTIM).unwrap();
    (dir, db, victim)
}

/// What Django leaves when a rebuild is interrupted after its drop, for recover to repair.
fn leave_a_leftover(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT NOT NULL);
         INSERT INTO new__files SELECT * FROM files;
         DROP TABLE files;",
    )
    .unwrap();
}

fn plant(link: &Path, victim: &Path) {
    std::os::unix::fs::symlink(victim, link).unwrap();
}

fn assert_refused_at(lock_error: Option<&LockError>, at: &Path) {
    match lock_error {
        Some(LockError::Refused { path, found }) => {
            assert_eq!(path, at);
            assert!(matches!(found, Found::Symlink { .. }), "{found}");
        }
        other => panic!("expected a refusal of {}, got {other:?}", at.display()),
    }
}

fn assert_victim_unchanged(victim: &Path) {
    assert_eq!(
        fs::read(victim).unwrap(),
        VICTIM,
        "the victim was written to"
    );
}

#[test]
fn database_open_refuses_a_symlink_at_the_lock_file_and_at_the_write_gate() {
    let lock: fn(&Path) -> PathBuf = |db| lock_path_for(db);
    let gate: fn(&Path) -> PathBuf = |db| write_gate_path_for(db);
    for (name, path_of) in [("lock", lock), ("gate", gate)] {
        let (_dir, db, victim) = setup(&format!("nb-open-{name}"));
        plant(&path_of(&db), &victim);
        let err = Database::builder(&db)
            .schema("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL);")
            .open()
            .err()
            .unwrap_or_else(|| panic!("{name}: opened through a planted link"));
        assert_refused_at(err.lock_error(), &path_of(&db));
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_victim_unchanged(&victim);
    }
}

#[test]
fn migrate_and_recover_refuse_a_symlink_at_the_lock_file() {
    let (_dir, db, victim) = setup("nb-lib");
    plant(&lock_path_for(&db), &victim);
    let err = litekeep::migrate::migrate(
        &db,
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);",
        &Default::default(),
    )
    .unwrap_err();
    let litekeep::migrate::MigrateError::Lock(lock_error) = &err else {
        panic!("expected a lock error, got {err}");
    };
    assert_refused_at(Some(lock_error), &lock_path_for(&db));
    leave_a_leftover(&db);
    let err = litekeep::recover::recover(&db, &Default::default()).unwrap_err();
    let litekeep::recover::RecoverError::Lock(lock_error) = &err else {
        panic!("expected a lock error, got {err}");
    };
    assert_refused_at(Some(lock_error), &lock_path_for(&db));
    assert_victim_unchanged(&victim);
}

#[test]
fn the_cli_refuses_a_symlink_at_the_lock_file_naming_it() {
    let (dir, db, victim) = setup("nb-cli");
    plant(&lock_path_for(&db), &victim);
    let schema = dir.write(
        "schema.sql",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);",
    );
    let lock_file = lock_path_for(&db);
    for args in [
        vec!["lock", "--db", s(&db), "--", "true"],
        vec!["migrate", "--db", s(&db), "--schema", s(&schema)],
    ] {
        let run = litekeep(&args);
        let line = run.failure(1);
        assert!(line.contains(s(&lock_file)), "{args:?}: {line}");
        assert!(line.contains("symbolic link"), "{args:?}: {line}");
        assert_victim_unchanged(&victim);
    }
    leave_a_leftover(&db);
    let run = litekeep(["recover", "--db", s(&db)]);
    let line = run.failure(1);
    assert!(line.contains("symbolic link"), "{line}");
    assert_victim_unchanged(&victim);
}

#[test]
fn a_symlink_at_a_journal_file_of_sqlite_is_refused_before_sqlite_opens_it() {
    for suffix in ["-wal", "-shm", "-journal"] {
        let (_dir, db, victim) = setup(&format!("nb-journal{suffix}"));
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        let planted = PathBuf::from(name);
        plant(&planted, &victim);
        let Err(err) = Database::open(&db) else {
            panic!("opened beside a planted link");
        };
        assert_refused_at(err.lock_error(), &planted);
        let err = litekeep::migrate::migrate(
            &db,
            "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);",
            &Default::default(),
        )
        .unwrap_err();
        let litekeep::migrate::MigrateError::Lock(lock_error) = &err else {
            panic!("expected a lock error, got {err}");
        };
        assert_refused_at(Some(lock_error), &planted);
        let err = litekeep::recover::check(&db, false).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_victim_unchanged(&victim);
    }
}

#[test]
fn serve_refuses_a_symlink_at_its_log_and_at_the_owner_lock() {
    // A foreground server logs to its stderr, not to `<db>.serve.log`.
    for (name, suffix, modes) in [
        ("log", ".serve.log", &[false][..]),
        ("owner", ".owner.lock", &[false, true][..]),
    ] {
        let (_dir, db, victim) = setup(&format!("nb-serve-{name}"));
        let mut planted = db.clone().into_os_string();
        planted.push(suffix);
        let planted = PathBuf::from(planted);
        plant(&planted, &victim);
        for &foreground in modes {
            let mut args = vec![
                "serve",
                "--db",
                s(&db),
                "--engine",
                "sqlite",
                "--idle",
                "1s",
            ];
            if foreground {
                args.push("--foreground");
            }
            let run = litekeep(&args);
            let line = run.failure(1);
            assert!(line.contains(s(&planted)), "{args:?}: {line}");
            assert!(line.contains("symbolic link"), "{args:?}: {line}");
            assert_victim_unchanged(&victim);
        }
    }
}
