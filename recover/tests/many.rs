//! A directory of 200 small databases, as a code indexer keeps one per project, checked in
//! parallel: 200 reports, each right about its own file.

mod common;

use common::{fresh, scratch};
use litekeep_recover::{RecoverError, check_many, find_databases};
use rusqlite::Connection;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Healthy,
    Leftover,
    ForeignKeyViolation,
    NotADatabase,
}

const KINDS: [Kind; 4] = [
    Kind::Healthy,
    Kind::Leftover,
    Kind::ForeignKeyViolation,
    Kind::NotADatabase,
];

#[test]
fn two_hundred_files_get_two_hundred_correct_reports() {
    let dir = scratch("many");
    let mut paths = Vec::new();
    for i in 0..200 {
        let kind = KINDS[i % KINDS.len()];
        // Nested a level for every tenth project: the search must recurse.
        let sub = dir.join(format!("group{}", i / 10));
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join(format!("project{i}.db"));
        match kind {
            Kind::NotADatabase => {
                std::fs::write(&path, format!("not a database {i}\n").repeat(20)).unwrap()
            }
            _ => {
                fresh(&path, 10);
                let conn = Connection::open(&path).unwrap();
                conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
                if kind == Kind::Leftover {
                    conn.execute_batch(
                        "CREATE TABLE __new_files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT);",
                    )
                    .unwrap();
                }
                if kind == Kind::ForeignKeyViolation {
                    conn.execute_batch(
                        "INSERT INTO symbols (file_id, name) VALUES (999, 'orphan')",
                    )
                    .unwrap();
                }
            }
        }
        paths.push((path, kind));
    }
    let listed: Vec<_> = paths.iter().map(|(p, _)| p.clone()).collect();
    let reports = check_many(&listed, false);
    assert_eq!(reports.len(), 200);
    for ((path, kind), (reported, result)) in paths.iter().zip(&reports) {
        assert_eq!(path, reported, "reports came back out of order");
        match (kind, result) {
            (Kind::NotADatabase, Err(RecoverError::NotADatabase { .. })) => {}
            (Kind::Healthy, Ok(h)) => assert!(h.is_healthy(), "{h}"),
            (Kind::Leftover, Ok(h)) => {
                assert!(h.integrity_ok() && h.foreign_key_violations == 0, "{h}");
                assert_eq!(h.leftovers.len(), 1, "{h}");
                assert_eq!(h.leftovers[0].table, "__new_files");
            }
            (Kind::ForeignKeyViolation, Ok(h)) => {
                assert!(h.integrity_ok() && h.leftovers.is_empty(), "{h}");
                assert_eq!(h.foreign_key_violations, 1, "{h}");
                assert!(h.foreign_key_examples[0].contains("symbols"), "{h}");
            }
            (kind, other) => panic!("{}: {kind:?} reported as {other:?}", path.display()),
        }
    }
    // Finding the databases by their header skips the 50 that are not.
    let found = find_databases(&dir).unwrap();
    assert_eq!(found.len(), 150);
    assert!(found.iter().all(|p| {
        paths
            .iter()
            .any(|(q, k)| q == p && *k != Kind::NotADatabase)
    }));
    let _ = std::fs::remove_dir_all(&dir);
}
