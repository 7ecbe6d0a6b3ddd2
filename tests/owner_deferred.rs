//! A request whose writes break a deferred foreign key (checked only at COMMIT) fails alone,
//! with an error of its own: the other requests of its group commit are applied.
//!
//! In one process (the owner): the batching is what is tested, not what crosses processes
//! (`tests/owner_service.rs` does that). A slow request holds the first batch while two more
//! queue behind it, so they share the next one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use litekeep::Database;
use litekeep_faults::harness::Scratch;
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "
CREATE TABLE parent (id INTEGER PRIMARY KEY);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
);";

#[derive(Debug, Serialize, Deserialize)]
enum Req {
    /// Holds its batch for a while (a parent row 100).
    Slow,
    /// A child of `parent`, which may not exist.
    Child(i64, i64),
    /// A parent row.
    Parent(i64),
}

#[test]
fn a_request_breaking_a_deferred_foreign_key_fails_alone_in_its_batch() {
    let dir = Scratch::new("owner-deferred");
    let path = dir.join("app.db");
    let db = Database::builder(&path).schema(SCHEMA).open().unwrap();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = batches.clone();
    // How many of the three callers are about to call: the slow request waits for all three,
    // then long enough for them to queue.
    let calling = Arc::new(AtomicUsize::new(0));
    let waiting = calling.clone();
    // The slow request is running (the others are sent only then, to queue behind it).
    let running = Arc::new(AtomicBool::new(false));
    let started = running.clone();
    let service = Arc::new(
        db.service(move |conn, req: &Req| {
            match req {
                Req::Slow => {
                    started.store(true, Ordering::SeqCst);
                    while waiting.load(Ordering::SeqCst) < 3 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    conn.execute("INSERT INTO parent VALUES (100)", [])?;
                }
                Req::Child(id, parent) => {
                    conn.execute("INSERT INTO child VALUES (?1, ?2)", [id, parent])?;
                }
                Req::Parent(id) => {
                    conn.execute("INSERT INTO parent VALUES (?1)", [id])?;
                }
            }
            Ok(())
        })
        .after_commit(move |n| seen.lock().unwrap().push(n))
        .join()
        .unwrap(),
    );
    assert!(service.is_owner());
    let slow = {
        let s = service.clone();
        std::thread::spawn(move || s.call(Req::Slow))
    };
    while !running.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Queued while the slow one runs: one good child, one orphan, one parent.
    let calls: Vec<_> = [Req::Child(1, 100), Req::Child(2, 999), Req::Parent(7)]
        .into_iter()
        .map(|req| {
            let (s, calling) = (service.clone(), calling.clone());
            std::thread::spawn(move || {
                calling.fetch_add(1, Ordering::SeqCst);
                s.call(req)
            })
        })
        .collect();
    slow.join().unwrap().unwrap();
    let results: Vec<_> = calls.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[2].is_ok(), "{:?}", results[2]);
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("foreign key") && err.contains("app.db"),
        "the orphan's error: {err}"
    );
    assert_eq!(
        *batches.lock().unwrap(),
        [1, 3],
        "the three queued calls were not one batch"
    );
    let (children, parents): (Vec<i64>, Vec<i64>) = db
        .read(|conn| {
            let ids = |sql: &str| -> rusqlite::Result<Vec<i64>> {
                conn.prepare(sql)?.query_map([], |r| r.get(0))?.collect()
            };
            Ok((
                ids("SELECT id FROM child ORDER BY id")?,
                ids("SELECT id FROM parent ORDER BY id")?,
            ))
        })
        .unwrap();
    assert_eq!(children, [1]);
    assert_eq!(parents, [7, 100]);
}
