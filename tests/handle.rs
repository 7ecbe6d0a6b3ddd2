//! One `Database` per file per process: any path spelling, any thread, the same handle; a
//! different schema is a clear error. Plus retries, errors, and the async API.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use litekeep::{Database, Error};
use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lk-handle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_database_handle_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Database>();
}

#[test]
fn opening_again_by_any_spelling_returns_the_same_handle() {
    let dir = scratch("same");
    let db = Database::builder(dir.join("a.db"))
        .schema(SCHEMA)
        .open()
        .unwrap();
    let spellings = [
        dir.join("a.db"),
        dir.join(".").join("a.db"),
        dir.join("sub").join("..").join("a.db"),
    ];
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink(dir.join("a.db"), dir.join("link.db")).unwrap();
    for path in spellings.iter().chain([&dir.join("link.db")]) {
        let again = Database::builder(path).schema(SCHEMA).open().unwrap();
        assert_eq!(again, db, "{}", path.display());
        // Without a schema: the same handle too.
        assert_eq!(Database::open(path).unwrap(), db);
    }
    // From other threads at once.
    let handles: Vec<Database> = (0..8)
        .map(|_| {
            let path = dir.join("a.db");
            thread::spawn(move || Database::builder(path).schema(SCHEMA).open().unwrap())
        })
        .map(|t| t.join().unwrap())
        .collect();
    assert!(handles.iter().all(|h| *h == db));
    let other = Database::open(dir.join("b.db")).unwrap();
    assert_ne!(other, db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn asking_for_another_schema_in_the_same_process_is_an_error() {
    let dir = scratch("mismatch");
    let path = dir.join("a.db");
    let _db = Database::builder(&path).schema(SCHEMA).open().unwrap();
    let err = Database::builder(&path)
        .schema("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT);")
        .open()
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("a.db"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_closed_handle_is_reopened_fresh() {
    let dir = scratch("reopen");
    let path = dir.join("a.db");
    let db = Database::builder(&path).schema(SCHEMA).open().unwrap();
    db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('x')", []))
        .unwrap();
    drop(db);
    // The last handle is gone: a different schema now migrates the file.
    let db = Database::builder(&path)
        .schema("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT);")
        .open()
        .unwrap();
    let v: String = db
        .read(|c| c.query_row("SELECT v FROM t", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(v, "x");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rename_hints_migrate_once_and_later_opens_accept_them() {
    let dir = scratch("renames");
    let path = dir.join("a.db");
    let db = Database::builder(&path).schema(SCHEMA).open().unwrap();
    db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('x'), ('y')", []))
        .unwrap();
    drop(db);
    let v2 = "CREATE TABLE items (id INTEGER PRIMARY KEY, value TEXT NOT NULL DEFAULT '');";
    let open = || {
        Database::builder(&path)
            .schema(v2)
            .rename("t=items")
            .rename("items.v=items.value")
            .open()
    };
    for _ in 0..2 {
        // The second open finds both hints carried out.
        let db = open().unwrap();
        let values: Vec<String> = db
            .read(|c| {
                c.prepare("SELECT value FROM items ORDER BY id")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .unwrap();
        assert_eq!(values, ["x", "y"]);
    }
    let err = Database::builder(&path)
        .schema(v2)
        .rename("items.v")
        .open()
        .unwrap_err();
    assert!(err.to_string().contains("items.v"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn open_sets_wal_and_repairs_leftovers_first() {
    let dir = scratch("repair");
    let path = dir.join("a.db");
    // An interrupted Django rebuild: `t` dropped, `new__t` holds the rows.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE new__t (id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO new__t (v) VALUES ('a'), ('b');",
        )
        .unwrap();
    let db = Database::builder(&path).schema(SCHEMA).open().unwrap();
    let n: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(n, 2);
    let mode: String = db
        .read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(mode, "wal");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_keep_their_detail() {
    let dir = scratch("errors");
    // Malformed schema: the migrate error, pointing at the statement.
    let err = Database::builder(dir.join("a.db"))
        .schema("CREATE TABLE ok (a); CREATE TABLEX broken;")
        .open()
        .unwrap_err();
    assert!(matches!(err, Error::Migrate(_)), "{err}");
    assert!(err.to_string().contains("statement 2"), "{err}");
    // Not a database.
    let junk = dir.join("junk.db");
    std::fs::write(&junk, "this is not a database, just text that is long enough to have a header ........................................").unwrap();
    let before = std::fs::read(&junk).unwrap();
    let err = Database::open(&junk).unwrap_err();
    assert!(err.to_string().contains("junk.db"), "{err}");
    assert_eq!(std::fs::read(&junk).unwrap(), before);
    // A closure's own error comes back and rolls back.
    let db = Database::builder(dir.join("b.db"))
        .schema(SCHEMA)
        .open()
        .unwrap();
    let err = db
        .write(|tx| {
            tx.execute("INSERT INTO t (v) VALUES ('kept?')", [])?;
            tx.execute("INSERT INTO nowhere VALUES (1)", [])
        })
        .unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err}");
    let n: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(n, 0, "the failed transaction was not rolled back");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_write_blocked_past_its_budget_is_a_busy_error() {
    let dir = scratch("busy");
    let path = dir.join("a.db");
    let db = Database::builder(&path)
        .schema(SCHEMA)
        .busy_timeout(Duration::from_millis(200))
        .open()
        .unwrap();
    // Another connection (as another process would) holds the write lock.
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = db
        .write(|tx| tx.execute("INSERT INTO t (v) VALUES ('x')", []))
        .unwrap_err();
    let Error::Busy {
        attempts, waited, ..
    } = &err
    else {
        panic!("{err}")
    };
    // SQLite's own busy handler waits out most of the budget inside the first attempt.
    assert!(*attempts >= 1, "{err}");
    assert!(*waited >= Duration::from_millis(200), "{err}");
    blocker.execute_batch("ROLLBACK").unwrap();
    // Released: the next write goes through.
    db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('x')", []))
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn async_reads_and_writes_do_not_block_the_executor() {
    let dir = scratch("async");
    let path = dir.join("a.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Database::builder(&path)
            .schema(SCHEMA)
            .open_async()
            .await
            .unwrap();
        // Hold SQLite's write lock from another connection for 300 ms; meanwhile the
        // single-threaded executor must keep running other tasks.
        let blocker = Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            blocker.execute_batch("COMMIT").unwrap();
        });
        let write = async {
            db.write_async(|tx| tx.execute("INSERT INTO t (v) VALUES ('a')", []))
                .await
                .unwrap();
            std::time::Instant::now()
        };
        let ticks = async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            std::time::Instant::now()
        };
        let (written_at, ticked_at) = tokio::join!(write, ticks);
        // Had the write blocked the (only) executor thread, no tick could have happened
        // before it finished.
        assert!(
            ticked_at < written_at,
            "the executor was blocked by the write"
        );
        release.join().unwrap();
        let n: i64 = db
            .read_async(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 1);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_write_or_migration_inside_a_write_is_refused_at_once() {
    let dir = scratch("inside");
    for gate in [false, true] {
        let db = Database::builder(dir.join(format!("gate-{gate}.db")))
            .schema(SCHEMA)
            .write_gate(gate)
            .open()
            .unwrap();
        let (nested, migrated) = db
            .write(|tx| {
                tx.execute("INSERT INTO t (v) VALUES ('outer')", [])?;
                let nested = db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('inner')", []));
                let migrated = db.migrate(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT);",
                    &litekeep::migrate::Options::default(),
                );
                Ok((nested, migrated))
            })
            .unwrap();
        for (what, result) in [
            ("Database::write", nested.map(drop)),
            ("Database::migrate", migrated.map(drop)),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, Error::InsideWrite { what: w, .. } if *w == what),
                "gate {gate}: {err}"
            );
            assert!(err.to_string().contains("gate-"), "{err}");
        }
        // The outer write committed; both work again outside it, from any thread.
        let v: Vec<String> = db
            .read(|c| {
                c.prepare("SELECT v FROM t")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .unwrap();
        assert_eq!(v, ["outer"]);
        thread::scope(|s| {
            s.spawn(|| db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('again')", [])))
                .join()
                .unwrap()
                .unwrap();
        });
        db.migrate(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT);",
            &litekeep::migrate::Options::default(),
        )
        .unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
