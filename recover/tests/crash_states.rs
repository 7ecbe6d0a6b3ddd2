//! Every tool's table rebuild, run statement by statement in autocommit mode and stopped after
//! each statement, then repaired: every original row present, `files` has the old or the new
//! definition, no leftover, references and views intact, `integrity_check` ok, and a second run
//! finds nothing.

mod common;

use common::{Order, fresh, rebuilds, scratch, verify};
use litekeep_recover::{Action, Case, Options, Tool, recover, scan};
use rusqlite::Connection;

#[test]
fn every_tool_every_stopping_point_is_repaired() {
    let dir = scratch("states");
    let db = dir.join("app.db");
    let mut repaired = 0;
    for rebuild in rebuilds() {
        let (pragmas, statements) = rebuild.statements();
        for stop in 0..=statements.len() {
            let want = fresh(&db, 60);
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(&pragmas).unwrap();
            let mut ran = 0;
            for sql in &statements[..stop] {
                // A statement SQLite refuses is where the tool would have stopped too (a
                // modern rename while a view names the dropped original, for one).
                if conn.execute_batch(sql).is_err() {
                    break;
                }
                ran += 1;
            }
            drop(conn);
            let what = format!("{rebuild:?} stopped after {ran} statements");
            let weak = matches!(rebuild.temp.as_str(), "temp_files" | "new_files");
            let mut report =
                recover(&db, &Options::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
            let left = report.left().next().cloned();
            if let Some(left) = left {
                // A name ordinary tables also have, with nothing naming the original: repaired
                // only when the application says it expects the original.
                assert!(weak, "{what}: left {left}");
                assert_eq!(left.case, Case::OriginalMissing, "{what}: {left}");
                assert!(left.to_string().contains("confirm"), "{what}: {left}");
                report = recover(&db, &Options::default().expect_table("files"))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    report.left().next().is_none(),
                    "{what}: {:?}",
                    report.findings
                );
            }
            if report.applied {
                repaired += 1;
            }
            for f in &report.findings {
                eprintln!("{what}: {f}");
            }
            verify(&db, &want, &what);
            let again = recover(&db, &Options::default()).unwrap();
            assert!(
                again.is_clean(),
                "{what}: second run found {:?}",
                again.findings
            );
        }
    }
    // Most stopping points leave something to repair; a test that repaired nothing tested nothing.
    assert!(repaired > 40, "only {repaired} states needed a repair");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_case_gets_its_repair() {
    let dir = scratch("cases");
    let db = dir.join("app.db");
    let rename_first = rebuilds()
        .into_iter()
        .find(|r| r.order == Order::RenameFirst && r.legacy)
        .unwrap();
    let (pragmas, statements) = rename_first.statements();
    // After the rename: original missing (case 1); after the create: original empty (case 2);
    // after the copy: every row in both (case 4).
    for (stop, case, action) in [
        (1, Case::OriginalMissing, Action::RenameBack),
        (2, Case::OriginalEmpty, Action::RestoreRows { rows: 60 }),
        (3, Case::TempEmptyOrSubset, Action::DropTemp),
    ] {
        let want = fresh(&db, 60);
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&pragmas).unwrap();
        for sql in &statements[..stop] {
            conn.execute_batch(sql).unwrap();
        }
        let found = scan(&conn).unwrap();
        drop(conn);
        assert_eq!(found.len(), 1, "stop {stop}: {found:?}");
        assert_eq!(
            (found[0].case, &found[0].action),
            (case, &action),
            "stop {stop}"
        );
        assert_eq!(found[0].tool, Tool::Litekeep);
        let report = recover(&db, &Options::default()).unwrap();
        assert_eq!(report.findings[0].action, action);
        verify(&db, &want, &format!("stop {stop}"));
    }
    // Case 3: both hold rows and the leftover has rows the original lacks, at free keys.
    let want = fresh(&db, 60);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&pragmas).unwrap();
    for sql in &statements[..3] {
        conn.execute_batch(sql).unwrap();
    }
    conn.execute_batch("DELETE FROM files WHERE id > 50")
        .unwrap();
    let found = scan(&conn).unwrap();
    drop(conn);
    assert_eq!(found[0].case, Case::BothHoldRows);
    assert_eq!(found[0].action, Action::InsertMissing { rows: 10 });
    recover(&db, &Options::default()).unwrap();
    verify(&db, &want, "case 3");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn references_rewritten_to_a_dropped_leftover_point_at_the_original_again() {
    let dir = scratch("dangling");
    let db = dir.join("app.db");
    let modern = rebuilds()
        .into_iter()
        .find(|r| r.order == Order::RenameFirst && !r.legacy)
        .unwrap();
    let (pragmas, statements) = modern.statements();
    let want = fresh(&db, 60);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&pragmas).unwrap();
    for sql in &statements {
        conn.execute_batch(sql).unwrap();
    }
    // The rename pointed symbols' foreign key and the view at temp_files, which is gone now.
    let target: String = conn
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_list('symbols')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(target, "temp_files");
    assert!(conn.prepare("SELECT * FROM big").is_err());
    let found = scan(&conn).unwrap();
    drop(conn);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].case, &found[0].action),
        (Case::DanglingReferences, &Action::Repoint)
    );
    recover(&db, &Options::default()).unwrap();
    verify(&db, &want, "dangling references");
    let _ = std::fs::remove_dir_all(&dir);
}
